"""The Bedrock call (or the sandbox), exact token counts, and Bedrock errors -> ProxyError."""

from __future__ import annotations

import json
import math

from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

from . import models
from .errors import ProxyError
from .formats import ModelCall

ZERO_USAGE = {
    "input_tokens": 0,
    "output_tokens": 0,
    "cache_read_tokens": 0,
    "cache_write_tokens": 0,
}

_ERRORS = {
    "ThrottlingException": ("bedrock_throttled", "2"),
    "ServiceQuotaExceededException": ("bedrock_throttled", "10"),
    "ServiceUnavailableException": ("bedrock_unavailable", "5"),
    "ModelNotReadyException": ("bedrock_unavailable", "10"),
    "InternalServerException": ("bedrock_unavailable", "2"),
    "ModelTimeoutException": ("bedrock_timeout", None),
    "ValidationException": ("bedrock_validation", None),
    "ModelErrorException": ("bedrock_error", None),
    "ResourceNotFoundException": ("bedrock_validation", None),
}


class Result:
    __slots__ = ("response", "usage")

    def __init__(self, response: dict, usage: dict):
        self.response, self.usage = response, usage


def call(bedrock, model_call: ModelCall, *, enabled: bool = True) -> Result:
    if models.is_sandbox(model_call.model_id):
        return sandbox(model_call)
    if bedrock is None or not enabled:
        raise ProxyError("bedrock_not_configured")
    try:
        method = getattr(bedrock, model_call.operation)
        response = method(modelId=model_call.model_id, **model_call.params)
    except ClientError as exc:
        raise _mapped(exc) from None
    except ReadTimeoutError:
        raise ProxyError(
            "bedrock_timeout",
            "The model did not answer within the proxy's time limit; ask for fewer tokens "
            "(max_tokens) or retry.",
        ) from None
    except BotoCoreError as exc:  # endpoint unreachable, no credentials
        raise ProxyError(
            "bedrock_unavailable",
            f"Bedrock could not be reached ({type(exc).__name__}).",
            headers={"Retry-After": "5"},
        ) from None
    if model_call.operation == "converse":
        return Result(response, converse_usage(response))
    body = json.loads(response["body"].read() or b"{}")
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    return Result(body, invoke_usage(headers, body))


def _mapped(exc: ClientError) -> ProxyError:
    code = exc.response.get("Error", {}).get("Code", "")
    message = exc.response.get("Error", {}).get("Message", "")
    ours, retry_after = _ERRORS.get(code, ("bedrock_error", None))
    headers = {"Retry-After": retry_after} if retry_after else {}
    text = f"Bedrock {code}: {message}"[:500] if code else None
    if code == "AccessDeniedException":
        text = "Bedrock refused the proxy's access to this model (AccessDeniedException)."
    return ProxyError(ours, text, headers=headers)


def converse_usage(response: dict) -> dict:
    usage = response.get("usage") or {}
    return {
        "input_tokens": int(usage.get("inputTokens", 0)),
        "output_tokens": int(usage.get("outputTokens", 0)),
        "cache_read_tokens": int(usage.get("cacheReadInputTokens", 0)),
        "cache_write_tokens": int(usage.get("cacheWriteInputTokens", 0)),
    }


def _int(value) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def invoke_usage(headers: dict, body: dict) -> dict:
    """Bedrock's count headers first; else the native body's own usage fields."""
    headers = {k.lower(): v for k, v in headers.items()}
    if "x-amzn-bedrock-input-token-count" in headers:
        return {
            "input_tokens": _int(headers.get("x-amzn-bedrock-input-token-count")),
            "output_tokens": _int(headers.get("x-amzn-bedrock-output-token-count")),
            "cache_read_tokens": _int(headers.get("x-amzn-bedrock-cache-read-input-token-count")),
            "cache_write_tokens": _int(headers.get("x-amzn-bedrock-cache-write-input-token-count")),
        }
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    if "input_tokens" in usage:  # Anthropic messages API
        return {
            "input_tokens": _int(usage.get("input_tokens")),
            "output_tokens": _int(usage.get("output_tokens")),
            "cache_read_tokens": _int(usage.get("cache_read_input_tokens")),
            "cache_write_tokens": _int(usage.get("cache_creation_input_tokens")),
        }
    if "inputTokens" in usage:  # Nova
        return {
            "input_tokens": _int(usage.get("inputTokens")),
            "output_tokens": _int(usage.get("outputTokens")),
            "cache_read_tokens": _int(usage.get("cacheReadInputTokenCount")),
            "cache_write_tokens": _int(usage.get("cacheWriteInputTokenCount")),
        }
    if "inputTextTokenCount" in body:  # Titan text
        output = sum(_int(r.get("tokenCount")) for r in body.get("results") or [])
        return {
            **ZERO_USAGE,
            "input_tokens": _int(body["inputTextTokenCount"]),
            "output_tokens": output,
        }
    if "prompt_token_count" in body:  # Llama
        return {
            **ZERO_USAGE,
            "input_tokens": _int(body.get("prompt_token_count")),
            "output_tokens": _int(body.get("generation_token_count")),
        }
    return dict(ZERO_USAGE)


# --- the sandbox: deterministic, free, no AWS call ---------------------------------------


def sandbox_tokens(text: str) -> int:
    """About four characters per token, at least one: deterministic for customers' tests."""
    return max(1, math.ceil(len(text) / 4))


def _prompt_text(model_call: ModelCall) -> tuple[str, str]:
    """(all input text, last user text)."""
    if model_call.operation == "converse":
        params = model_call.params
        texts = [b["text"] for b in params.get("system", [])]
        last = ""
        for message in params["messages"]:
            joined = "".join(b.get("text", "") for b in message["content"])
            texts.append(joined)
            if message["role"] == "user":
                last = joined
        return "\n".join(texts), last
    body = json.loads(model_call.params["body"])
    texts, last = [], ""
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        texts.append(str(content))
        if message.get("role") == "user":
            last = str(content)
    if not texts and isinstance(body.get("inputText") or body.get("prompt"), str):
        last = body.get("inputText") or body.get("prompt")
        texts.append(last)
    return "\n".join(texts), last


def sandbox(model_call: ModelCall) -> Result:
    prompt, last = _prompt_text(model_call)
    answer = f"Echo: {last}"
    usage = {
        **ZERO_USAGE,
        "input_tokens": sandbox_tokens(prompt),
        "output_tokens": sandbox_tokens(answer),
    }
    if model_call.operation == "converse":
        response = {
            "output": {"message": {"role": "assistant", "content": [{"text": answer}]}},
            "stopReason": "end_turn",
            "usage": {
                "inputTokens": usage["input_tokens"],
                "outputTokens": usage["output_tokens"],
                "totalTokens": usage["input_tokens"] + usage["output_tokens"],
            },
            "metrics": {"latencyMs": 0},
        }
    else:  # Anthropic messages shape, the native format seed 002 uses
        response = {
            "id": "msg_sandbox",
            "type": "message",
            "role": "assistant",
            "model": models.SANDBOX_MODEL_ID,
            "content": [{"type": "text", "text": answer}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage["input_tokens"],
                "output_tokens": usage["output_tokens"],
            },
        }
    return Result(response, usage)
