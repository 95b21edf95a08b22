"""A small generator of the proxy's usage events, written with the proxy's file layout."""

import datetime as dt
import json
import uuid
from pathlib import Path


def make_event(customer_id, *, when: dt.datetime, **overrides) -> dict:
    tags = {
        "applicationId": overrides.pop("application_id", "chatbot"),
        "costCenter": overrides.pop("cost_center", "cc-100"),
        "environment": overrides.pop("environment", "prod"),
        "userId": overrides.pop("user_id", "alice"),
    }
    event = {
        "request_id": str(uuid.uuid4()),
        "timestamp": when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "customer_id": str(customer_id),
        "token_id": str(uuid.uuid4()),
        "model_id": "anthropic.claude-3-haiku-20240307-v1:0",
        "model_alias": "haiku",
        "input_tokens": 100,
        "output_tokens": 20,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "latency_ms": 250,
        "status": "success",
        "tags": tags,
        "client_ip": "203.0.113.7",
    }
    event.update(overrides)
    return event


def write_events(root: Path, events: list[dict], *, name: str = "part-0.jsonl") -> None:
    """Append events to `usage-events/year=/month=/day=/<name>` by their timestamp's day."""
    for event in events:
        when = dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00"))
        folder = root / "usage-events" / f"year={when:%Y}" / f"month={when:%m}" / f"day={when:%d}"
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / name).open("a") as handle:
            handle.write(json.dumps(event) + "\n")
