"""POST /v1/embeddings: OpenAI's embeddings request -> InvokeModel on Bedrock's embeddings models,
metered by input tokens (embeddings have no output tokens).

- Titan Text Embeddings v2 embeds one text per call: one InvokeModel per input, a few at a time.
- Cohere Embed v3 embeds up to 96 texts per call: one InvokeModel per batch of 96.
- `sandbox.embed-v1` answers without AWS: deterministic unit vectors, free.

The texts go to the model as they are (JSON-escaped) and are never stored; what is stored, the
tags and `user`, follows the same printable-text rules as the chat formats.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
import struct
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeGuard, TypeVar

from . import formats, models, upstream
from .errors import ProxyError
from .sandbox import sandbox_tokens

MAX_INPUTS = 128  # per request
COHERE_BATCH = 96  # texts per InvokeModel (Bedrock's limit for Cohere Embed v3)
TITAN_DIMENSIONS = (256, 512, 1024)
COHERE_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")
COHERE_DEFAULT_INPUT_TYPE = "search_document"
# Characters per input each model takes; longer inputs are refused before any model call, so a
# request never fails half-way through its calls for that reason.
MAX_CHARS = {
    models.TITAN_EMBED_V2: 50_000,
    models.COHERE_EMBED_ENGLISH_V3: 2048,
    models.COHERE_EMBED_MULTILINGUAL_V3: 2048,
    models.EMBED_SANDBOX_MODEL_ID: 50_000,
}
SANDBOX_DIMENSIONS = 64
# Titan takes one text per call: this many calls run at the same time (one request, up to 128
# inputs, so the request's time stays about that of a few calls).
WORKERS = 8
ENCODINGS = ("float", "base64")

_COHERE = (models.COHERE_EMBED_ENGLISH_V3, models.COHERE_EMBED_MULTILINGUAL_V3)

T = TypeVar("T")
R = TypeVar("R")


def _names() -> str:
    return ", ".join(models.EMBEDDING_MODELS)


# --- the request ------------------------------------------------------------------------------


def parse(body: dict[str, Any], headers: Mapping[str, str]) -> formats.ModelCall:
    requested = models.requested_name(body.get("model"))
    model_id, alias = models.resolve(requested)
    if not models.is_embeddings(model_id):
        raise ProxyError(
            "invalid_request",
            f"Model {requested[:100]!r} does not make embeddings; use one of: {_names()}.",
        )
    texts = _texts(body.get("input"), model_id)
    params: dict[str, Any] = {
        "texts": texts,
        "encoding_format": _encoding(body.get("encoding_format")),
        "dimensions": _dimensions(body.get("dimensions"), model_id),
        "input_type": _input_type(body.get("input_type"), model_id),
    }
    return formats.ModelCall(
        api_format="embeddings",
        model_id=model_id,
        model_alias=alias,
        operation="embed",
        params=params,
        tags=_tags(body, headers),
        requested_model=requested,
    )


def _texts(value: object, model_id: str) -> list[str]:
    if value is None:
        raise ProxyError("invalid_request", "'input' is required: a string or a list of strings.")
    if isinstance(value, str):
        if not value:
            raise ProxyError("invalid_request", "'input' is empty; send non-empty text.")
        value = [value]
    elif not isinstance(value, list):
        raise ProxyError(
            "invalid_request",
            f"'input' must be a string or a list of strings, not {_kind(value)}.",
        )
    if not value:
        raise ProxyError("invalid_request", "'input' must not be an empty list.")
    if len(value) > MAX_INPUTS:
        raise ProxyError(
            "invalid_request",
            f"'input' has {len(value)} items; at most {MAX_INPUTS} per request.",
        )
    limit = MAX_CHARS[model_id]
    for i, text in enumerate(value):
        if _is_int(text) or (isinstance(text, list) and text and all(map(_is_int, text))):
            raise ProxyError(
                "invalid_request",
                "'input' as token ids (integers) is not supported; send the text itself.",
            )
        if not isinstance(text, str):
            raise ProxyError(
                "invalid_request", f"'input[{i}]' must be a string, not {_kind(text)}."
            )
        if not text:
            raise ProxyError("invalid_request", f"'input[{i}]' is empty; send non-empty text.")
        if len(text) > limit:
            raise ProxyError(
                "invalid_request",
                f"'input[{i}]' has {len(text)} characters; {model_id} takes at most {limit}.",
            )
    return list(value)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _kind(value: object) -> str:
    names: dict[type, str] = {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        dict: "an object",
    }
    if isinstance(value, list):
        return "a list"
    return names.get(type(value), "null" if value is None else type(value).__name__)


def _encoding(value: object) -> str:
    if value is None:
        return "float"
    if not isinstance(value, str) or value not in ENCODINGS:
        raise ProxyError("invalid_request", "'encoding_format' must be 'float' or 'base64'.")
    return value


def _dimensions(value: object, model_id: str) -> int | None:
    if value is None:
        return None
    if model_id != models.TITAN_EMBED_V2:
        raise ProxyError(
            "invalid_request",
            f"'dimensions' is not supported by {model_id}; only {models.TITAN_EMBED_V2} takes it.",
        )
    if not _is_int(value) or value not in TITAN_DIMENSIONS:
        raise ProxyError(
            "invalid_request",
            f"'dimensions' must be 256, 512 or 1024 for {models.TITAN_EMBED_V2}.",
        )
    return value


def _input_type(value: object, model_id: str) -> str | None:
    """Cohere's `input_type` (an extension: `extra_body` in the OpenAI SDKs)."""
    if value is None:
        return COHERE_DEFAULT_INPUT_TYPE if model_id in _COHERE else None
    if model_id not in _COHERE:
        raise ProxyError(
            "invalid_request", f"'input_type' is not supported by {model_id}; only Cohere's."
        )
    if not isinstance(value, str) or value not in COHERE_INPUT_TYPES:
        raise ProxyError(
            "invalid_request", f"'input_type' must be one of: {', '.join(COHERE_INPUT_TYPES)}."
        )
    return value


def _tags(body: dict[str, Any], headers: Mapping[str, str]) -> dict[str, str]:
    metadata = body.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise ProxyError("invalid_request", "'metadata' must be an object.")
    tags = formats.tags_from(
        {k: v for k, v in (metadata or {}).items() if k in formats.TAG_NAMES} or None, headers
    )
    user = body.get("user")
    if user is not None and not isinstance(user, str):
        raise ProxyError("invalid_request", "'user' must be a string.")
    if user and "userId" not in tags:
        tags["userId"] = formats.check_tag("userId", user[: formats.MAX_TAG_LENGTH], "'user'")
    return tags


def quota_hold(call: formats.ModelCall) -> int:
    """Tokens held against the monthly quota while the call runs: about four characters a token
    of the input; embeddings have no output."""
    return -(-sum(len(text) for text in call.params["texts"]) // 4)


# --- the calls --------------------------------------------------------------------------------


def call(
    bedrock: upstream.BedrockRuntime | None,
    model_call: formats.ModelCall,
    *,
    enabled: bool = True,
    workers: int | None = None,
) -> upstream.Result:
    """The vectors, in input order, and the usage: input tokens summed over the calls. One
    attempt per call; the first failure fails the request (and nothing of it is billed)."""
    if models.is_embed_sandbox(model_call.model_id):
        return sandbox(model_call)
    if bedrock is None or not enabled:
        raise ProxyError(
            "bedrock_not_configured",
            "Bedrock is not available in this environment; use the sandbox model "
            f"{models.EMBED_SANDBOX_MODEL_ID}.",
        )
    params, model_id = model_call.params, model_call.model_id
    texts: list[str] = params["texts"]
    batches: list[list[str]]
    payloads: list[dict[str, Any]]
    if model_id == models.TITAN_EMBED_V2:
        batches = [[text] for text in texts]
        payloads = [_titan_payload(text, params.get("dimensions")) for text in texts]
    else:
        batches = [texts[i : i + COHERE_BATCH] for i in range(0, len(texts), COHERE_BATCH)]
        input_type = params.get("input_type") or COHERE_DEFAULT_INPUT_TYPE
        payloads = [{"texts": batch, "input_type": input_type} for batch in batches]

    def one(index: int) -> tuple[list[list[Any]], int]:
        answer, headers = _invoke(bedrock, model_id, payloads[index])
        return _vectors(answer, batches[index]), _tokens(headers, answer, batches[index])

    done = _run(one, range(len(payloads)), WORKERS if workers is None else workers)
    vectors = [vector for batch_vectors, _ in done for vector in batch_vectors]
    tokens = sum(count for _, count in done)
    return upstream.Result({"embeddings": vectors}, {**upstream.ZERO_USAGE, "input_tokens": tokens})


def _titan_payload(text: str, dimensions: int | None) -> dict[str, Any]:
    payload: dict[str, Any] = {"inputText": text, "normalize": True}
    if dimensions is not None:
        payload["dimensions"] = dimensions
    return payload


def _run(function: Callable[[T], R], items: Iterable[T], workers: int) -> list[R]:
    """function(item) for each item, in order; concurrently when there are several. The first
    failure (in item order) is raised once the calls already running have ended."""
    items = list(items)
    if len(items) == 1 or workers <= 1:
        return [function(item) for item in items]
    with ThreadPoolExecutor(min(workers, len(items)), thread_name_prefix="embed") as pool:
        futures = [pool.submit(function, item) for item in items]
        try:
            return [future.result() for future in futures]
        except BaseException:
            for future in futures:
                future.cancel()
            raise


def _invoke(
    bedrock: upstream.BedrockRuntime, model_id: str, payload: dict[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """One InvokeModel: (the model's JSON answer, the HTTP headers); Bedrock's errors mapped as
    upstream.call maps them."""
    hint = "send fewer or shorter inputs, or retry."
    with upstream.mapped_errors(hint):
        response = bedrock.invoke_model(
            modelId=model_id,
            body=json.dumps(payload).encode(),
            contentType="application/json",
            accept="application/json",
        )
        raw = response["body"].read()
    try:
        answer = json.loads(raw or b"{}")
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise ProxyError("bedrock_error", "The embeddings model's answer was not a JSON object.")
    return answer, response.get("ResponseMetadata", {}).get("HTTPHeaders", {})


def _vectors(answer: dict[str, Any], batch: list[str]) -> list[list[Any]]:
    """Titan: {"embedding": [...]}; Cohere: {"embeddings": [[...], ...]} (or, when embedding
    types were asked for, {"embeddings": {"float": [[...], ...]}})."""
    vectors: object
    if "embedding" in answer:
        vectors = [answer["embedding"]]
    else:
        vectors = answer.get("embeddings")
        if isinstance(vectors, dict):
            vectors = vectors.get("float")
    if (
        not isinstance(vectors, list)
        or len(vectors) != len(batch)
        or not all(isinstance(vector, list) and vector for vector in vectors)
    ):
        raise ProxyError("bedrock_error", "The embeddings model answered without the vectors.")
    return vectors


def _tokens(headers: Mapping[str, str], answer: dict[str, Any], batch: list[str]) -> int:
    """Bedrock's X-Amzn-Bedrock-Input-Token-Count header, else the answer's own count (Titan's
    inputTextTokenCount); if Bedrock reported none, four characters a token (never zero)."""
    headers = {k.lower(): v for k, v in headers.items()}
    reported: tuple[Any, ...] = (
        headers.get("x-amzn-bedrock-input-token-count"),
        answer.get("inputTextTokenCount"),
        ((answer.get("meta") or {}).get("billed_units") or {}).get("input_tokens")
        if isinstance(answer.get("meta"), dict)
        else None,
    )
    for value in reported:
        try:
            count = int(value)
        except (TypeError, ValueError):
            continue
        if count >= 0:
            return count
    return sum(sandbox_tokens(text) for text in batch)


# --- the answer -------------------------------------------------------------------------------


def render(
    model_call: formats.ModelCall, result: upstream.Result, request_id: str
) -> dict[str, Any]:
    """OpenAI's embeddings answer. `request_id` is in the X-Request-Id header; OpenAI's body has
    no id."""
    encoding = model_call.params.get("encoding_format", "float")
    tokens = result.usage["input_tokens"]
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(vector, encoding)}
            for i, vector in enumerate(result.response["embeddings"])
        ],
        "model": model_call.requested_model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def encode(vector: list[Any], encoding: str) -> list[Any] | str:
    """'float': the list; 'base64': little-endian float32 bytes, base64 (what OpenAI sends, and
    what its SDKs decode)."""
    if encoding != "base64":
        return vector
    try:
        packed = struct.pack(f"<{len(vector)}f", *vector)
    except (struct.error, OverflowError, TypeError):
        raise ProxyError(
            "bedrock_error", "The embeddings model answered a non-float vector."
        ) from None
    return base64.b64encode(packed).decode("ascii")


# --- the sandbox: deterministic, free, no AWS call ---------------------------------------------


def sandbox_vector(text: str, dimensions: int = SANDBOX_DIMENSIONS) -> list[float]:
    """A unit vector derived from SHA-256 of the text: the same text, the same vector; its
    values are exact float32, so base64 and float answers carry the same numbers."""
    data = text.encode("utf-8", "surrogatepass")  # a lone surrogate is text too, here
    blocks = -(-dimensions * 2 // 32)
    digest = b"".join(hashlib.sha256(i.to_bytes(4, "big") + data).digest() for i in range(blocks))
    raw = struct.unpack(f"<{dimensions}h", digest[: dimensions * 2])
    norm = math.sqrt(sum(value * value for value in raw)) or 1.0
    unit = [value / norm for value in raw]
    return list(struct.unpack(f"<{dimensions}f", struct.pack(f"<{dimensions}f", *unit)))


def sandbox(model_call: formats.ModelCall) -> upstream.Result:
    texts = model_call.params["texts"]
    tokens = sum(sandbox_tokens(text) for text in texts)
    return upstream.Result(
        {"embeddings": [sandbox_vector(text) for text in texts]},
        {**upstream.ZERO_USAGE, "input_tokens": tokens},
    )


def sandbox_native(model_call: formats.ModelCall) -> upstream.Result:
    """The embeddings sandbox on the native and Bedrock Runtime surfaces (InvokeModel): a
    Titan-shaped answer to {"inputText": ...}, a Cohere-shaped one to {"texts": [...]}."""
    refusal = ProxyError(
        "invalid_request",
        f"{models.EMBED_SANDBOX_MODEL_ID} makes embeddings: use POST /v1/embeddings, or "
        "InvokeModel with {'inputText': text} or {'texts': [text, ...]}.",
    )
    if model_call.operation != "invoke_model":
        raise refusal
    try:
        body = json.loads(model_call.params["body"])
    except (ValueError, RecursionError):
        raise refusal from None
    body = body if isinstance(body, dict) else {}
    text, texts = body.get("inputText"), body.get("texts")
    answer: dict[str, Any]
    if isinstance(text, str) and text:
        vector = sandbox_vector(text)
        tokens = sandbox_tokens(text)
        answer = {
            "embedding": vector,
            "inputTextTokenCount": tokens,
            "embeddingsByType": {"float": vector},
        }
    elif (
        isinstance(texts, list)
        and 0 < len(texts) <= COHERE_BATCH
        and all(isinstance(t, str) and t for t in texts)
    ):
        tokens = sum(sandbox_tokens(t) for t in texts)
        answer = {
            "id": "sandbox",
            "response_type": "embeddings_floats",
            "texts": texts,
            "embeddings": [sandbox_vector(t) for t in texts],
        }
    else:
        raise refusal
    return upstream.Result(answer, {**upstream.ZERO_USAGE, "input_tokens": tokens})
