"""Streamed answers: the upstream's events relayed to the client in its own format as they
arrive, and metered from the stream's own usage reports.

Upstream events are what botocore yields: for Converse, `{"messageStart": {...}}`,
`{"contentBlockDelta": {...}}`, ..., `{"metadata": {"usage": ...}}`; for InvokeModel,
`{"chunk": {"bytes": b"<the model's JSON>"}}`, whose last chunk carries
`amazon-bedrock-invocationMetrics`. Each renderer turns them into bytes for one client:
OpenAI server-sent events, Bedrock's event-stream frames, or our own SSE for the native and
tagged formats.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol

from . import bedrock_runtime, eventstream, formats, openai_format, upstream
from .errors import ProxyError, error_body
from .upstream import StreamEvent

_INVOCATION_METRICS = {
    "input_tokens": "inputTokenCount",
    "output_tokens": "outputTokenCount",
    "cache_read_tokens": "cacheReadInputTokenCount",
    "cache_write_tokens": "cacheWriteInputTokenCount",
}


def _chunk_json(event: StreamEvent) -> dict[str, Any]:
    try:
        payload = json.loads(event["chunk"].get("bytes") or b"{}")
    except (ValueError, TypeError):
        return {}
    return payload if isinstance(payload, dict) else {}


class Meter:
    """What the stream has produced so far. `usage()` is exact once the stream reported its
    counts (Converse's `metadata` event, InvokeModel's invocation metrics); before that (a
    client that went away mid-stream) it is the documented estimate: the input tokens the
    stream already reported, else the request's estimate, and the output text relayed so far
    at four characters a token."""

    def __init__(self, call: formats.ModelCall) -> None:
        self.call = call
        self.exact: dict[str, int] | None = None
        self.input_reported: int | None = None
        self.output_reported: int | None = None
        self.output_chars = 0
        self.stop_reason: str | None = None

    def observe(self, event: StreamEvent) -> None:
        if "contentBlockDelta" in event:
            delta = event["contentBlockDelta"].get("delta") or {}
            text = delta.get("text") or (delta.get("toolUse") or {}).get("input") or ""
            self.output_chars += len(text)
        elif "messageStop" in event:
            self.stop_reason = event["messageStop"].get("stopReason")
        elif "metadata" in event:
            self.exact = upstream.converse_usage(event["metadata"])
        elif "chunk" in event:
            self._observe_chunk(_chunk_json(event))

    def _observe_chunk(self, payload: dict[str, Any]) -> None:
        metrics = payload.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, dict):
            self.exact = {name: _int(metrics.get(key)) for name, key in _INVOCATION_METRICS.items()}
        kind = payload.get("type")
        sent = payload.get("usage")
        usage: dict[str, Any] = sent if isinstance(sent, dict) else {}
        if kind == "message_start":
            message_usage = (payload.get("message") or {}).get("usage") or {}
            if "input_tokens" in message_usage:
                self.input_reported = _int(message_usage["input_tokens"])
        elif kind == "content_block_delta":
            delta = payload.get("delta") or {}
            self.output_chars += len(str(delta.get("text") or delta.get("partial_json") or ""))
        elif kind == "message_delta":
            if "output_tokens" in usage:
                self.output_reported = _int(usage["output_tokens"])
            self.stop_reason = (payload.get("delta") or {}).get("stop_reason") or self.stop_reason
        elif "outputText" in payload:  # Titan
            self.output_chars += len(str(payload.get("outputText") or ""))
        elif "generation" in payload:  # Llama
            self.output_chars += len(str(payload.get("generation") or ""))

    @property
    def is_exact(self) -> bool:
        return self.exact is not None

    def usage(self) -> dict[str, int]:
        if self.exact is not None:
            return dict(self.exact)
        estimated_input = formats.quota_hold(self.call) - (
            self.call.max_output_tokens
            or self.call.params.get("inferenceConfig", {}).get("maxTokens")
            or formats.DEFAULT_OUTPUT_HOLD
        )
        output = self.output_reported
        if output is None:
            output = math.ceil(self.output_chars / 4)
        return {
            **upstream.ZERO_USAGE,
            "input_tokens": self.input_reported
            if self.input_reported is not None
            else max(0, estimated_input),
            "output_tokens": output,
        }


def _int(value: Any) -> int:
    try:
        return max(0, int(value))
    except (TypeError, ValueError):
        return 0


# --- renderers: upstream events -> bytes for the client --------------------------------------


def _sse(payload: object) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, separators=(",", ":"))
    return f"data: {data}\n\n".encode()


DONE = _sse("[DONE]")


class Renderer(Protocol):
    """Upstream events -> the bytes one client format takes, and an error inside the stream."""

    content_type: str

    def render(self, events: Iterable[StreamEvent]) -> Iterator[bytes]: ...

    def error(self, exc: ProxyError, request_id: str) -> bytes: ...


class OpenAIStream:
    content_type = "text/event-stream"

    def __init__(
        self, call: formats.ModelCall, meter: Meter, request_id: str, created: int
    ) -> None:
        self.call, self.meter = call, meter
        self.base: dict[str, Any] = {
            "id": f"chatcmpl-{request_id}",
            "object": "chat.completion.chunk",
            "created": created,
            "model": call.requested_model,
        }

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}
        return _sse({**self.base, "choices": [choice]})

    def render(self, events: Iterable[StreamEvent]) -> Iterator[bytes]:
        started = False
        tools: dict[int, int] = {}  # Converse content block index -> OpenAI tool call index
        for event in events:
            if not started and ("messageStart" in event or "contentBlockDelta" in event):
                started = True
                yield self._chunk({"role": "assistant", "content": ""})
            if "contentBlockStart" in event:
                block = event["contentBlockStart"]
                tool_use = (block.get("start") or {}).get("toolUse")
                if tool_use:
                    index = tools.setdefault(block.get("contentBlockIndex", 0), len(tools))
                    call = {
                        "index": index,
                        "id": tool_use.get("toolUseId"),
                        "type": "function",
                        "function": {"name": tool_use.get("name"), "arguments": ""},
                    }
                    yield self._chunk({"tool_calls": [call]})
            elif "contentBlockDelta" in event:
                block = event["contentBlockDelta"]
                delta = block.get("delta") or {}
                if delta.get("text"):
                    yield self._chunk({"content": delta["text"]})
                elif "toolUse" in delta and block.get("contentBlockIndex", 0) in tools:
                    index = tools[block.get("contentBlockIndex", 0)]
                    arguments = (delta["toolUse"] or {}).get("input") or ""
                    call = {"index": index, "function": {"arguments": arguments}}
                    yield self._chunk({"tool_calls": [call]})
            elif "messageStop" in event:
                reason = event["messageStop"].get("stopReason")
                yield self._chunk({}, openai_format.FINISH_REASONS.get(reason, "stop"))
        if self.call.include_usage:
            usage = openai_format.usage_block(self.meter.usage())
            yield _sse({**self.base, "choices": [], "usage": usage})
        yield DONE

    def error(self, exc: ProxyError, request_id: str) -> bytes:
        return _sse(error_body(exc, request_id)) + DONE


class PromptStream:
    """The tagged format streamed: `delta` events with text, then `done` with the usage."""

    content_type = "text/event-stream"

    def __init__(
        self, call: formats.ModelCall, meter: Meter, request_id: str, created: int
    ) -> None:
        self.call, self.meter, self.request_id = call, meter, request_id

    def render(self, events: Iterable[StreamEvent]) -> Iterator[bytes]:
        for event in events:
            if "contentBlockDelta" in event:
                text = (event["contentBlockDelta"].get("delta") or {}).get("text")
                if text:
                    yield _sse({"type": "delta", "text": text})
        yield _sse(
            {
                "type": "done",
                "id": self.request_id,
                "model": self.call.model_alias or self.call.model_id,
                "model_id": self.call.model_id,
                "stop_reason": self.meter.stop_reason,
                "usage": self.meter.usage(),
                "tags": self.call.tags,
            }
        )
        yield DONE

    def error(self, exc: ProxyError, request_id: str) -> bytes:
        return _sse(error_body(exc, request_id)) + DONE


class NativeStream:
    """The `modelId` body streamed: each of the model's own chunks as one SSE event."""

    content_type = "text/event-stream"

    def __init__(
        self, call: formats.ModelCall, meter: Meter, request_id: str, created: int
    ) -> None:
        self.meter = meter

    def render(self, events: Iterable[StreamEvent]) -> Iterator[bytes]:
        for event in events:
            if "chunk" in event:
                yield _sse((event["chunk"].get("bytes") or b"").decode("utf-8", "replace"))
        yield DONE

    def error(self, exc: ProxyError, request_id: str) -> bytes:
        return _sse(error_body(exc, request_id)) + DONE


class BedrockStream:
    """Bedrock Runtime's event-stream frames, re-encoded event by event."""

    content_type = eventstream.CONTENT_TYPE

    def __init__(
        self, call: formats.ModelCall, meter: Meter, request_id: str, created: int
    ) -> None:
        pass

    def render(self, events: Iterable[StreamEvent]) -> Iterator[bytes]:
        for event in events:
            ((name, payload),) = event.items()
            if name == "chunk":
                payload = {"bytes": base64.b64encode(payload.get("bytes") or b"").decode()}
            else:
                payload = json.loads(json.dumps(payload, default=bedrock_runtime.json_default))
            yield eventstream.event(name, payload)

    def error(self, exc: ProxyError, request_id: str) -> bytes:
        return eventstream.exception(bedrock_runtime.stream_error_type(exc), exc.message)


# (call, meter, request id, created) -> the renderer of one stream
RendererFactory = Callable[[formats.ModelCall, Meter, str, int], Renderer]
RENDERERS: dict[str, RendererFactory] = {
    "openai": OpenAIStream,
    "prompt": PromptStream,
    "native": NativeStream,
    "bedrock": BedrockStream,
}
