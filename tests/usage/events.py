"""Usage events as the real proxy builds and writes them (proxy.usage), for the usage tests."""

import datetime as dt
import uuid
from pathlib import Path

from proxy.usage import EventSink, timestamp
from proxy.usage import make_event as proxy_make_event


class _Quiet:
    def write(self, text):
        pass

    def flush(self):
        pass


def make_event(customer_id, *, when: dt.datetime, **overrides) -> dict:
    tags = {
        "applicationId": overrides.pop("application_id", "chatbot"),
        "costCenter": overrides.pop("cost_center", "cc-100"),
        "environment": overrides.pop("environment", "prod"),
        "userId": overrides.pop("user_id", "alice"),
    }
    values = {
        "request_id": str(uuid.uuid4()),
        "timestamp": timestamp(when.astimezone(dt.UTC)),
        "customer_id": str(customer_id),
        "token_id": str(uuid.uuid4()),
        "model_id": "anthropic.claude-3-haiku-20240307-v1:0",
        "model_alias": "haiku",
        "input_tokens": 100,
        "output_tokens": 20,
        "latency_ms": 250,
        "status": "success",
        "tags": tags,
        "client_ip": "127.0.0.1",
        "api_format": "bedrock",
        "http_status": 200,
    }
    values.update(overrides)
    return proxy_make_event(**values)


def write_events(root: Path, events: list[dict]) -> None:
    """Write stored events with the proxy's own sink (its partitioned JSON-lines layout)."""
    sink = EventSink(events_dir=str(root), stream=_Quiet())
    for event in events:
        when = dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        sink.emit(event, when, store=True)
