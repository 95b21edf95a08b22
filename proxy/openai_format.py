"""(c) The OpenAI-compatible surface: POST /v1/chat/completions and GET /v1/models -> Converse.

Streaming: API Gateway (REST and HTTP APIs) buffers a Lambda's response, so true token-by-token
streaming is impossible here. `stream: true` is answered with the whole completion as one
buffered `text/event-stream` body (chunks, an optional usage chunk, `data: [DONE]`), which the
OpenAI SDKs parse unchanged. The usage is exact because the call is a plain Converse.
"""

from __future__ import annotations

import json

from . import formats, models
from .errors import ProxyError

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}
_UNSUPPORTED = ("tools", "functions", "tool_choice", "function_call", "logprobs", "audio")


def parse(body: dict, headers: dict, defaults: dict) -> formats.ModelCall:
    requested = body.get("model")
    model_id, alias = models.resolve(requested)
    for name in _UNSUPPORTED:
        if body.get(name):
            raise ProxyError("invalid_request", f"'{name}' is not supported by this proxy.")
    if body.get("n", 1) != 1:
        raise ProxyError("invalid_request", "Only n = 1 is supported.")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ProxyError("invalid_request", "'stream' must be a boolean.")
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise ProxyError("invalid_request", "'stream_options' must be an object.")
    system, messages = formats.converse_messages(body.get("messages"))
    params = {name: body.get(name) for name in formats._PARAM_NAMES}
    config, extra = formats.inference_config(params, defaults, model_id)
    body_tags = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
    tags = formats.tags_from(
        {k: v for k, v in (body_tags or {}).items() if k in formats.TAG_NAMES} or None, headers
    )
    if isinstance(body.get("user"), str) and body["user"] and "userId" not in tags:
        tags["userId"] = body["user"][: formats.MAX_TAG_LENGTH]
    return formats.ModelCall(
        api_format="openai",
        model_id=model_id,
        model_alias=alias,
        operation="converse",
        params=formats.converse_params(system, messages, config, extra),
        tags=tags,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage")),
        requested_model=requested,
    )


def _usage(usage: dict) -> dict:
    prompt = usage["input_tokens"] + usage["cache_read_tokens"] + usage["cache_write_tokens"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage["output_tokens"],
        "total_tokens": prompt + usage["output_tokens"],
        "prompt_tokens_details": {"cached_tokens": usage["cache_read_tokens"]},
    }


def render(call, response: dict, usage: dict, request_id: str, created: int) -> dict:
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": created,
        "model": call.requested_model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": formats.converse_text(response)},
                "finish_reason": FINISH_REASONS.get(response.get("stopReason"), "stop"),
                "logprobs": None,
            }
        ],
        "usage": _usage(usage),
    }


def render_stream(call, response: dict, usage: dict, request_id: str, created: int) -> str:
    """The buffered SSE body: role chunk, content chunk, finish chunk, [usage chunk], [DONE]."""
    base = {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion.chunk",
        "created": created,
        "model": call.requested_model,
    }
    finish = FINISH_REASONS.get(response.get("stopReason"), "stop")
    deltas = [
        ({"role": "assistant", "content": ""}, None),
        ({"content": formats.converse_text(response)}, None),
        ({}, finish),
    ]
    chunks = [
        {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": reason}]}
        for delta, reason in deltas
    ]
    if call.include_usage:
        chunks.append({**base, "choices": [], "usage": _usage(usage)})
    lines = [f"data: {json.dumps(chunk, separators=(',', ':'))}\n\n" for chunk in chunks]
    return "".join(lines) + "data: [DONE]\n\n"


def render_models(allowed: list[str], created: int) -> dict:
    return {
        "object": "list",
        "data": [
            {"id": model_id, "object": "model", "created": created, "owned_by": "bedrock-proxy"}
            for model_id in models.listable(allowed)
        ],
    }
