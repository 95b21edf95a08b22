"""The three request formats, each mapped to one Bedrock call and back.

(a) native: `{"modelId": ..., <the model's native body>}`            -> InvokeModel
(b) tagged: `{"model": alias, "prompt": {"messages", "parameters"}, "tags"}` -> Converse
(c) OpenAI:   `POST /v1/chat/completions` (see openai_format.py)         -> Converse
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import models
from .errors import ProxyError

TAG_HEADERS = {
    "applicationId": "x-application-id",
    "costCenter": "x-cost-center",
    "environment": "x-environment",
    "userId": "x-user-id",
}
TAG_NAMES = tuple(TAG_HEADERS)
MAX_TAG_LENGTH = 128


@dataclass
class ModelCall:
    api_format: str  # "native" | "prompt" | "openai"
    model_id: str
    model_alias: str
    operation: str  # "invoke_model" | "converse"
    params: dict[str, Any]  # keyword arguments of the boto3 call (modelId added by the caller)
    tags: dict[str, str] = field(default_factory=dict)
    stream: bool = False
    include_usage: bool = False
    requested_model: str = ""
    max_output_tokens: int | None = None  # native bodies: the model's own output cap, if sent


# Held against the monthly quota while a call runs when the request sets no output cap.
DEFAULT_OUTPUT_HOLD = 1000


def quota_hold(call: ModelCall) -> int:
    """Tokens to hold against the monthly quota while the call runs, since Bedrock reports the
    exact count only afterwards: about four characters a token for the input (the whole native
    body, so a little over), and the requested output cap, else DEFAULT_OUTPUT_HOLD."""
    if call.operation == "converse":
        params = call.params
        chars = sum(len(block.get("text", "")) for block in params.get("system", []))
        chars += sum(
            len(block.get("text", ""))
            for message in params["messages"]
            for block in message["content"]
        )
        output = params.get("inferenceConfig", {}).get("maxTokens")
    else:
        chars, output = len(call.params["body"]), call.max_output_tokens
    return -(-chars // 4) + (output if output is not None else DEFAULT_OUTPUT_HOLD)


def output_cap_refused(name: str, model_id: str) -> ProxyError:
    """400 for an output cap above what the model can produce, naming the parameter."""
    limit = models.max_output_tokens(model_id)
    return ProxyError(
        "invalid_request",
        f"'{name}' asks for more output than {model_id[:100]} can produce: at most {limit} tokens.",
    )


def check_output_cap(name: str, value: object, model_id: str) -> None:
    """An integer output cap above the model's maximum (models.max_output_tokens) is refused;
    other types are left to the caller's own checks (or to Bedrock)."""
    if (
        isinstance(value, int)
        and not isinstance(value, bool)
        and value > models.max_output_tokens(model_id)
    ):
        raise output_cap_refused(name, model_id)


def _native_caps(native: dict[str, Any]) -> list[tuple[str, object]]:
    names: tuple[str, ...] = ("max_tokens", "max_tokens_to_sample", "max_gen_len")
    caps: list[tuple[str, object]] = [(name, native.get(name)) for name in names]
    for parent, names in (
        ("textGenerationConfig", ("maxTokenCount",)),
        ("inferenceConfig", ("max_new_tokens", "maxTokens")),
    ):
        section = native.get(parent)
        if isinstance(section, dict):
            caps.extend((f"{parent}.{name}", section.get(name)) for name in names)
    return caps


def native_output_cap(native: dict[str, Any], model_id: str | None = None) -> int | None:
    """max_tokens (Anthropic, Mistral), max_tokens_to_sample (Claude 2 text completions),
    max_gen_len (Llama), textGenerationConfig.maxTokenCount (Titan),
    inferenceConfig.max_new_tokens (Nova). With `model_id`, a cap above the model's maximum
    output is refused (400 naming it)."""
    found: int | None = None
    for name, value in _native_caps(native):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            if model_id is not None:
                check_output_cap(name, value, model_id)
            if found is None:
                found = value
    return found


# Control characters (Unicode category Cc: U+0000-U+001F, U+007F-U+009F) and lone surrogates
# (U+D800-U+DFFF, which json.loads makes of "\ud800"): a tag is stored in every usage event
# and billed row, and PostgreSQL text cannot hold NUL.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def tag_problem(value: str) -> str | None:
    """What makes a tag value unusable, or None: "a control character (U+0000)"."""
    found = _UNPRINTABLE.search(value)
    if found is None:
        return None
    code = ord(found.group())
    kind = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
    return f"{kind} (U+{code:04X})"


def check_tag(name: str, value: str, source: str = "") -> str:
    """`value` if it is printable text, else a 400 naming the tag (and where it came from)."""
    if problem := tag_problem(value):
        where = f"{source} (tag {name})" if source else f"Tag {name}"
        raise ProxyError("invalid_request", f"{where} contains {problem}; use printable text.")
    return value


def tags_from(body_tags: object, headers: Mapping[str, str]) -> dict[str, str]:
    """applicationId/costCenter/environment/userId: the body wins over X-* headers."""
    if body_tags is not None and not isinstance(body_tags, dict):
        raise ProxyError("invalid_request", "'tags' must be an object.")
    sent: dict[str, Any] = body_tags or {}
    tags = {}
    for name, header in TAG_HEADERS.items():
        from_body = name in sent
        value = sent[name] if from_body else headers.get(header)
        if value is None or value == "":
            continue
        if not isinstance(value, str) or len(value) > MAX_TAG_LENGTH:
            raise ProxyError("invalid_request", f"Tag {name} must be a string of <= 128 chars.")
        source = "" if from_body else f"Header {header.title()}"
        tags[name] = check_tag(name, value, source)
    return tags


# --- (a) native body -> InvokeModel ----------------------------------------------------


def parse_native(body: dict[str, Any], headers: Mapping[str, str]) -> ModelCall:
    native = dict(body)
    requested = native.pop("modelId")
    model_id, alias = models.resolve(requested)
    tags = tags_from(native.pop("tags", None), headers)
    stream = stream_flag(native.pop("stream", False))
    return ModelCall(
        api_format="native",
        model_id=model_id,
        model_alias=alias,
        operation="invoke_model",
        params={
            "body": json.dumps(native).encode(),
            "contentType": "application/json",
            "accept": "application/json",
        },
        tags=tags,
        stream=stream,
        requested_model=requested,
        max_output_tokens=native_output_cap(native, model_id),
    )


def stream_flag(value: object) -> bool:
    """`"stream": true` asks for the answer as it is produced (never passed to the model)."""
    if value is None:  # OpenAI's API takes null for "not streamed"
        return False
    if not isinstance(value, bool):
        raise ProxyError("invalid_request", "'stream' must be a boolean.")
    return value


# --- Converse helpers shared by (b) and (c) ----------------------------------------------

_PARAM_NAMES = {
    "max_tokens": "maxTokens",
    "max_completion_tokens": "maxTokens",
    "temperature": "temperature",
    "top_p": "topP",
    "stop": "stopSequences",
}


def inference_config(
    params: dict[str, Any], defaults: dict[str, Any] | None, model_id: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(inferenceConfig, additionalModelRequestFields); the customer's defaults fill gaps
    (custom model parameters)."""
    sent = {k: v for k, v in params.items() if v is not None}
    merged = {**(defaults or {}), **sent}
    config: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for name, value in merged.items():
        if name in _PARAM_NAMES:
            target = _PARAM_NAMES[name]
            if target == "stopSequences":
                value = [value] if isinstance(value, str) else value
                if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
                    raise ProxyError("invalid_request", "'stop' must be a string or a list.")
            elif target == "maxTokens":
                if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                    raise ProxyError("invalid_request", f"'{name}' must be a positive integer.")
                if value > models.max_output_tokens(model_id):
                    if name in sent:
                        raise output_cap_refused(name, model_id)
                    # The customer's default, above what this model can produce: its maximum.
                    value = models.max_output_tokens(model_id)
            elif not isinstance(value, int | float) or isinstance(value, bool):
                raise ProxyError("invalid_request", f"'{name}' must be a number.")
            config[target] = value
        elif name == "top_k":
            if not isinstance(value, int) or isinstance(value, bool):
                raise ProxyError("invalid_request", "'top_k' must be an integer.")
            if model_id.startswith("amazon.nova"):
                extra = {"inferenceConfig": {"topK": value}}
            elif model_id.startswith("anthropic."):
                extra = {"top_k": value}
    return config, extra


def converse_messages(messages: object) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """OpenAI-style [{role, content: str | [{type: text, text}]}] -> (system, messages)."""
    if not isinstance(messages, list) or not messages:
        raise ProxyError("invalid_request", "'messages' must be a non-empty list.")
    system: list[dict[str, Any]] = []
    converted: list[dict[str, Any]] = []
    for message in messages:
        if not isinstance(message, dict):
            raise ProxyError("invalid_request", "Each message must be an object.")
        role, text = message.get("role"), _text(message.get("content"))
        if role in ("system", "developer"):
            system.append({"text": text})
        elif role in ("user", "assistant"):
            if converted and converted[-1]["role"] == role:  # Converse wants alternation
                converted[-1]["content"].append({"text": text})
            else:
                converted.append({"role": role, "content": [{"text": text}]})
        else:
            raise ProxyError("invalid_request", f"Unsupported message role {str(role)[:20]!r}.")
    if not converted:
        raise ProxyError("invalid_request", "At least one user message is required.")
    return system, converted


def _text(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise ProxyError("invalid_request", "Only text content parts are supported.")
            parts.append(str(part.get("text", "")))
        return "".join(parts)
    raise ProxyError("invalid_request", "Message content must be a string or a list of parts.")


def converse_params(
    system: list[dict[str, Any]],
    messages: list[dict[str, Any]],
    config: dict[str, Any],
    extra: dict[str, Any],
    tools: dict[str, Any] | None = None,
) -> dict[str, Any]:
    params: dict[str, Any] = {"messages": messages}
    if tools:
        params["toolConfig"] = tools
    if system:
        params["system"] = system
    if config:
        params["inferenceConfig"] = config
    if extra:
        params["additionalModelRequestFields"] = extra
    return params


def converse_text(response: dict[str, Any]) -> str:
    content = response.get("output", {}).get("message", {}).get("content", [])
    return "".join(block.get("text", "") for block in content if "text" in block)


# --- (b) tagged: alias + prompt + tags -> Converse -------------------------------------


def parse_prompt(
    body: dict[str, Any], headers: Mapping[str, str], defaults: dict[str, Any] | None
) -> ModelCall:
    prompt = body.get("prompt")
    if not isinstance(prompt, dict):
        raise ProxyError("invalid_request", "'prompt' must be an object with 'messages'.")
    requested = models.requested_name(body.get("model"))
    model_id, alias = models.resolve(requested)
    parameters = prompt.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProxyError("invalid_request", "'prompt.parameters' must be an object.")
    system, messages = converse_messages(prompt.get("messages"))
    config, extra = inference_config(parameters, defaults, model_id)
    return ModelCall(
        api_format="prompt",
        model_id=model_id,
        model_alias=alias,
        operation="converse",
        params=converse_params(system, messages, config, extra),
        tags=tags_from(body.get("tags"), headers),
        stream=stream_flag(body.get("stream", False)),
        requested_model=requested,
    )


def render_prompt(
    call: ModelCall, response: dict[str, Any], usage: dict[str, int], request_id: str
) -> dict[str, Any]:
    return {
        "id": request_id,
        "model": call.model_alias or call.model_id,
        "model_id": call.model_id,
        "output": {"role": "assistant", "content": converse_text(response)},
        "stop_reason": response.get("stopReason"),
        "usage": usage,
        "tags": call.tags,
    }
