"""(c) The OpenAI-compatible surface: POST /v1/chat/completions and GET /v1/models -> Converse.

`stream: true` is served from ConverseStream: each chunk leaves as Bedrock produces it
(relay.py), `stream_options.include_usage` adds the usage chunk, `data: [DONE]` comes last.
Behind API Gateway's buffered integration the same chunks arrive as one body, which the
OpenAI SDKs parse unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import formats, models, openai_tools
from .errors import ProxyError

# Converse's stopReason -> OpenAI's finish_reason (looked up with the answer's stopReason, which
# may be absent: None)
FINISH_REASONS: dict[str | None, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "content_filtered": "content_filter",
    "guardrail_intervened": "content_filter",
}
# Parameters Bedrock cannot honour: refused (naming them) unless they ask for the default, so a
# client never believes it got what it asked for. name -> (values that mean "the default", why)
_UNHONOURED: dict[str, tuple[tuple[object, ...], str]] = {
    "functions": ((None, []), "use 'tools'"),
    "function_call": ((None,), "use 'tool_choice'"),
    "logprobs": ((None, False), "Bedrock returns no log probabilities"),
    "top_logprobs": ((None, 0), "Bedrock returns no log probabilities"),
    "n": ((None, 1), "only one choice (n = 1) is produced"),
    "audio": ((None,), "audio output is not available"),
    "modalities": ((None, ["text"]), "only text output is available"),
    "presence_penalty": ((None, 0, 0.0), "Bedrock's Converse has no presence penalty"),
    "frequency_penalty": ((None, 0, 0.0), "Bedrock's Converse has no frequency penalty"),
    "logit_bias": ((None, {}), "Bedrock's Converse has no logit bias"),
    "prediction": ((None,), "predicted outputs are not available"),
    "web_search_options": ((None,), "web search is not available"),
    "response_format": ((None, {"type": "text"}), "structured output formats are not available"),
}


def _refuse_unhonoured(body: dict[str, Any]) -> None:
    for name, (defaults, why) in _UNHONOURED.items():
        value = body.get(name)
        if not any(value == d and type(value) is type(d) for d in defaults):
            raise ProxyError("invalid_request", f"'{name}' is not supported: {why}.")


def parse(
    body: dict[str, Any], headers: Mapping[str, str], defaults: dict[str, Any] | None
) -> formats.ModelCall:
    requested = models.requested_name(body.get("model"))
    model_id, alias = models.resolve(requested)
    _refuse_unhonoured(body)
    stream = formats.stream_flag(body.get("stream", False))
    stream_options = body.get("stream_options") or {}
    if not isinstance(stream_options, dict):
        raise ProxyError("invalid_request", "'stream_options' must be an object.")
    system, messages = openai_tools.converse_messages(body.get("messages"))
    tools = openai_tools.tool_config(body.get("tools"), body.get("tool_choice"), messages)
    params = {name: body.get(name) for name in formats._PARAM_NAMES}
    config, extra = formats.inference_config(params, defaults, model_id)
    body_tags = body.get("metadata") if isinstance(body.get("metadata"), dict) else None
    tags = formats.tags_from(
        {k: v for k, v in (body_tags or {}).items() if k in formats.TAG_NAMES} or None, headers
    )
    if isinstance(body.get("user"), str) and body["user"] and "userId" not in tags:
        user = body["user"][: formats.MAX_TAG_LENGTH]
        tags["userId"] = formats.check_tag("userId", user, "'user'")
    return formats.ModelCall(
        api_format="openai",
        model_id=model_id,
        model_alias=alias,
        operation="converse",
        params=formats.converse_params(system, messages, config, extra, tools),
        tags=tags,
        stream=stream,
        include_usage=bool(stream_options.get("include_usage")),
        requested_model=requested,
    )


def usage_block(usage: dict[str, int]) -> dict[str, Any]:
    prompt = usage["input_tokens"] + usage["cache_read_tokens"] + usage["cache_write_tokens"]
    return {
        "prompt_tokens": prompt,
        "completion_tokens": usage["output_tokens"],
        "total_tokens": prompt + usage["output_tokens"],
        "prompt_tokens_details": {"cached_tokens": usage["cache_read_tokens"]},
    }


def render(
    call: formats.ModelCall,
    response: dict[str, Any],
    usage: dict[str, int],
    request_id: str,
    created: int,
) -> dict[str, Any]:
    return {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": created,
        "model": call.requested_model,
        "choices": [
            {
                "index": 0,
                "message": _message(response),
                "finish_reason": FINISH_REASONS.get(response.get("stopReason"), "stop"),
                "logprobs": None,
            }
        ],
        "usage": usage_block(usage),
    }


def _message(response: dict[str, Any]) -> dict[str, Any]:
    calls = openai_tools.tool_calls(response)
    text = formats.converse_text(response)
    message: dict[str, Any] = {"role": "assistant", "content": text if text or not calls else None}
    if calls:
        message["tool_calls"] = calls
    return message


def render_models(allowed: list[str], created: int) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"id": model_id, "object": "model", "created": created, "owned_by": "bedrock-proxy"}
            for model_id in models.listable(allowed)
        ],
    }
