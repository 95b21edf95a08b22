"""The proxy's CloudWatch metrics, written as log lines in CloudWatch's embedded metric format
(EMF): one JSON line per request on stdout, beside the usage event. On Lambda, CloudWatch Logs
turns each line into metric values itself: no PutMetricData call, no agent, nothing on the
request's path but building and writing one line.

    {"_aws": {"Timestamp": <ms>, "CloudWatchMetrics": [{"Namespace": NAMESPACE,
      "Dimensions": [["Mode"], ["ModelId"], ["ApplicationId"], ["CostCenter"], ["Environment"]],
      "Metrics": [{"Name": "Requests", "Unit": "Count"}, ...]}]},
     "Mode": "buffered", "ModelId": "...", "ApplicationId": "...", ...,
     "Requests": 1, "Errors": 0, "InputTokens": 12, "OutputTokens": 40, "LatencyMs": 850,
     "CostMicros": 875}

Each dimension set makes its own metrics: every metric by `Mode` ("buffered" or "stream": the
alarms in deploy/template.yaml read the buffered latency, a stream lasting as long as its
answer), by model, and by each cost tag. A dimension set is left out of a line whose request
had no such value (no model, an untagged call).

Cardinality is cost: each distinct dimension value is a custom metric per metric name, and tag
values are whatever callers send. So values are cut to MAX_VALUE_LENGTH characters of a safe
alphabet, and a container publishes at most MAX_VALUES_PER_DIMENSION distinct values of each
dimension; later new values are published as OTHER. The usage events keep the exact values.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from . import usage

if TYPE_CHECKING:
    from .limits import Admission

logger = logging.getLogger("proxy")

NAMESPACE = "BedrockUsagePortal/Proxy"
# Metric name -> CloudWatch unit. Errors: answers with a 5xx status, and streams ended by an
# error after their 200 was sent. CostMicros: the call's cost at the price it was admitted at,
# in micro-units of the portal's currency (0 for refused, failed, free and unpriced calls).
METRICS = {
    "Requests": "Count",
    "Errors": "Count",
    "InputTokens": "Count",
    "OutputTokens": "Count",
    "LatencyMs": "Milliseconds",
    "CostMicros": "None",
}
MODE = "Mode"
MODES = ("buffered", "stream")
MODEL = "ModelId"
# Dimension -> the usage event's tag it comes from.
TAG_DIMENSIONS = {
    "ApplicationId": "applicationId",
    "CostCenter": "costCenter",
    "Environment": "environment",
}
DIMENSION_SETS = ([MODE], [MODEL], *([name] for name in TAG_DIMENSIONS))

MAX_VALUE_LENGTH = 64
MAX_VALUES_PER_DIMENSION = 100
OTHER = "other"
_DEFINITIONS = [{"Name": name, "Unit": unit} for name, unit in METRICS.items()]
_UNSAFE = re.compile(r"[^A-Za-z0-9._:/@+=-]+")


class TextStream(Protocol):
    """Where the lines go: sys.stdout, or any text stream (a test's StringIO)."""

    def write(self, text: str, /) -> object: ...

    def flush(self) -> object: ...


_seen: dict[str, set[str]] = {}
_seen_lock = threading.Lock()


def dimension_value(name: str, raw: object) -> str | None:
    """The value published for `raw`: a safe, short text, OTHER once this container has
    published MAX_VALUES_PER_DIMENSION others for `name`; None when there is nothing to show."""
    if not isinstance(raw, str):
        return None
    value = _UNSAFE.sub("_", raw.strip())[:MAX_VALUE_LENGTH].strip("_")
    if not value:
        return None
    seen = _seen.setdefault(name, set())
    if value in seen:
        return value
    with _seen_lock:
        if len(seen) >= MAX_VALUES_PER_DIMENSION:
            return OTHER
        seen.add(value)
    return value


def is_error(event: Mapping[str, Any]) -> bool:
    status = event.get("http_status")
    if not isinstance(status, int) or status >= 500:
        return True
    return bool(event.get("stream") and event.get("error_code"))


def document(event: Mapping[str, Any], now: datetime, cost_micros: int = 0) -> dict[str, object]:
    """The EMF document of one request's usage event (proxy/usage.make_event)."""
    doc: dict[str, object] = {MODE: MODES[1] if event.get("stream") else MODES[0]}
    dimensions = [[MODE]]
    tags = event.get("tags") or {}
    candidates = [(MODEL, event.get("model_id"))]
    candidates += [(name, tags.get(tag)) for name, tag in TAG_DIMENSIONS.items()]
    for name, raw in candidates:
        value = dimension_value(name, raw)
        if value is not None:
            doc[name] = value
            dimensions.append([name])
    doc.update(
        Requests=1,
        Errors=int(is_error(event)),
        InputTokens=int(event.get("input_tokens") or 0),
        OutputTokens=int(event.get("output_tokens") or 0),
        LatencyMs=max(0, int(event.get("latency_ms") or 0)),
        CostMicros=max(0, int(cost_micros)),
    )
    directive = {
        "Namespace": NAMESPACE,
        "Dimensions": dimensions,
        "Metrics": _DEFINITIONS,
    }
    doc["_aws"] = {"Timestamp": int(now.timestamp() * 1000), "CloudWatchMetrics": [directive]}
    return doc


def emit(
    event: dict[str, Any],
    now: datetime,
    admission: Admission | None = None,
    stream: TextStream | None = None,
) -> None:
    """Write the request's EMF line; never fails the request (a lost metric is logged)."""
    try:
        cost = 0
        if admission is not None and event.get("status") == "success":
            cost = usage.call_cost(admission, event)
        line = json.dumps(document(event, now, cost), separators=(",", ":"))
        out = stream or sys.stdout
        out.write(line + "\n")
        out.flush()
    except Exception as exc:
        logger.error("request metrics not written: %s", type(exc).__name__)
