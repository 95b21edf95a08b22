"""The Bedrock call (or the sandbox), exact token counts, and Bedrock errors -> ProxyError."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Protocol

from botocore.exceptions import BotoCoreError, ClientError, ReadTimeoutError

from . import models, sandbox
from .errors import ProxyError
from .formats import ModelCall

# One event of a Bedrock stream as botocore yields it, e.g. {"contentBlockDelta": {...}} or
# {"chunk": {"bytes": b"..."}}.
StreamEvent = dict[str, Any]

ZERO_USAGE: dict[str, int] = {
    "input_tokens": 0,
    "output_tokens": 0,
    "cache_read_tokens": 0,
    "cache_write_tokens": 0,
}

_ERRORS: dict[str, tuple[str, str | None]] = {
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


class BedrockRuntime(Protocol):
    """What the proxy calls on boto3's bedrock-runtime client: these four operations, with
    keyword arguments as boto3 takes them, each answering boto3's response dict. (`*args,
    **kwargs` of Any: a typed client's own signatures match too.)"""

    def converse(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def converse_stream(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def invoke_model(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...

    def invoke_model_with_response_stream(self, *args: Any, **kwargs: Any) -> dict[str, Any]: ...


class Result:
    __slots__ = ("content_type", "raw", "response", "usage")

    def __init__(
        self,
        response: dict[str, Any],
        usage: dict[str, int],
        raw: bytes | None = None,
        content_type: str = "",
    ) -> None:
        self.response, self.usage = response, usage
        self.raw, self.content_type = raw, content_type  # InvokeModel: the model's own bytes


def call(bedrock: BedrockRuntime | None, model_call: ModelCall, *, enabled: bool = True) -> Result:
    if models.is_sandbox(model_call.model_id):
        return sandbox.answer(model_call)
    if models.is_embed_sandbox(model_call.model_id):
        from . import embeddings  # here: embeddings imports this module

        return embeddings.sandbox_native(model_call)
    if bedrock is None or not enabled:
        raise ProxyError("bedrock_not_configured")
    with mapped_errors():
        method = getattr(bedrock, model_call.operation)
        response: dict[str, Any] = method(modelId=model_call.model_id, **model_call.params)
    if model_call.operation == "converse":
        return Result(response, converse_usage(response))
    raw = response["body"].read()
    try:
        body = json.loads(raw or b"{}")
    except ValueError:  # a model answering something else than JSON (the SDK path passes it on)
        body = {}
    body = body if isinstance(body, dict) else {}
    headers = response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
    content_type = response.get("contentType") or "application/json"
    return Result(body, invoke_usage(headers, body), raw=raw, content_type=content_type)


def open_stream(
    bedrock: BedrockRuntime | None, model_call: ModelCall, *, enabled: bool = True
) -> Iterator[StreamEvent]:
    """Start a streamed call and return its events (see relay.py). Refusals that come before
    the first event (validation, throttling, access) raise ProxyError here, so the client gets
    a plain error answer; a failure later surfaces while iterating, as ProxyError too."""
    if models.is_sandbox(model_call.model_id):
        return sandbox.stream(model_call)
    if models.is_embed_sandbox(model_call.model_id):
        raise ProxyError("invalid_request", "Embeddings models do not stream; use InvokeModel.")
    if bedrock is None or not enabled:
        raise ProxyError("bedrock_not_configured")
    converse = model_call.operation == "converse"
    method = bedrock.converse_stream if converse else bedrock.invoke_model_with_response_stream
    with mapped_errors():
        response = method(modelId=model_call.model_id, **model_call.params)
    return _events(response["stream"] if converse else response["body"])


def _events(stream: Iterable[StreamEvent]) -> Iterator[StreamEvent]:
    try:
        yield from stream
    except ClientError as exc:  # an exception event inside the stream (EventStreamError)
        raise _mapped(exc) from None
    except ReadTimeoutError:
        raise ProxyError("bedrock_timeout", "The model stopped sending mid-stream.") from None
    except BotoCoreError as exc:
        raise ProxyError(
            "bedrock_unavailable", f"The stream from Bedrock broke ({type(exc).__name__})."
        ) from None
    finally:
        close = getattr(stream, "close", None)  # botocore's EventStream closes its connection
        if close is not None:
            close()


@contextmanager
def mapped_errors(
    timeout_hint: str = "ask for fewer tokens (max_tokens) or retry.",
) -> Iterator[None]:
    """Bedrock's refusals and failures of one call as the proxy's errors (one attempt)."""
    try:
        yield
    except ClientError as exc:
        raise _mapped(exc) from None
    except ReadTimeoutError:
        raise ProxyError(
            "bedrock_timeout",
            f"The model did not answer within the proxy's time limit; {timeout_hint}",
        ) from None
    except BotoCoreError as exc:  # endpoint unreachable, no credentials
        raise ProxyError(
            "bedrock_unavailable",
            f"Bedrock could not be reached ({type(exc).__name__}).",
            headers={"Retry-After": "5"},
        ) from None


def _mapped(exc: ClientError) -> ProxyError:
    code = exc.response.get("Error", {}).get("Code", "")
    code = code[:1].upper() + code[1:]  # in-stream errors name the member: throttlingException
    message = exc.response.get("Error", {}).get("Message", "")
    ours, retry_after = _ERRORS.get(code, ("bedrock_error", None))
    headers = {"Retry-After": retry_after} if retry_after else {}
    text = f"Bedrock {code}: {message}"[:500] if code else None
    if code == "AccessDeniedException":
        text = "Bedrock refused the proxy's access to this model (AccessDeniedException)."
    return ProxyError(ours, text, headers=headers)


def converse_usage(response: dict[str, Any]) -> dict[str, int]:
    usage = response.get("usage") or {}
    return {
        "input_tokens": int(usage.get("inputTokens", 0)),
        "output_tokens": int(usage.get("outputTokens", 0)),
        "cache_read_tokens": int(usage.get("cacheReadInputTokens", 0)),
        "cache_write_tokens": int(usage.get("cacheWriteInputTokens", 0)),
    }


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def invoke_usage(headers: Mapping[str, str], body: dict[str, Any]) -> dict[str, int]:
    """Bedrock's count headers first; else the native body's own usage fields."""
    headers = {k.lower(): v for k, v in headers.items()}
    if "x-amzn-bedrock-input-token-count" in headers:
        return {
            "input_tokens": _int(headers.get("x-amzn-bedrock-input-token-count")),
            "output_tokens": _int(headers.get("x-amzn-bedrock-output-token-count")),
            "cache_read_tokens": _int(headers.get("x-amzn-bedrock-cache-read-input-token-count")),
            "cache_write_tokens": _int(headers.get("x-amzn-bedrock-cache-write-input-token-count")),
        }
    sent = body.get("usage")
    usage: dict[str, Any] = sent if isinstance(sent, dict) else {}
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
