"""Bedrock Runtime's own REST paths, so the AWS SDK talks to the proxy unchanged:

    POST /model/{modelId}/invoke                      -> InvokeModel
    POST /model/{modelId}/invoke-with-response-stream -> InvokeModelWithResponseStream
    POST /model/{modelId}/converse                    -> Converse
    POST /model/{modelId}/converse-stream             -> ConverseStream

`boto3.client("bedrock-runtime", endpoint_url=PROXY)` with the customer's token in
AWS_BEARER_TOKEN_BEDROCK sends it as `Authorization: Bearer ...`. Bodies, answers, streamed
frames (eventstream.py) and errors have Bedrock's shapes: an error is `{"message": ...}` with
its type in the `x-amzn-ErrorType` header, which botocore maps to its exception classes.
Converse bodies are read against botocore's own model of the operation (blobs arrive base64
in JSON), so what the SDK can send, the proxy understands.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote

from . import formats, models
from .errors import ProxyError

if TYPE_CHECKING:
    from botocore.model import ListShape, MapShape, Shape, StructureShape

ROUTE = re.compile(
    r"(?:^|/)model/(?P<model>.+)/"
    r"(?P<operation>invoke|invoke-with-response-stream|converse|converse-stream)$"
)
# operation in the path -> (boto3 method of the non-streamed call, streamed)
OPERATIONS = {
    "invoke": ("invoke_model", False),
    "invoke-with-response-stream": ("invoke_model", True),
    "converse": ("converse", False),
    "converse-stream": ("converse", True),
}
_ARN = re.compile(
    r"^arn:aws[a-z-]*:bedrock:[a-z0-9-]*:\d{0,12}:"
    r"(?P<kind>foundation-model|inference-profile|application-inference-profile|"
    r"provisioned-model|custom-model)/(?P<id>.+)$"
)

# Our error codes -> (Bedrock's error type, HTTP status). Everything else: by status.
ERROR_TYPES = {
    "model_not_allowed": ("AccessDeniedException", 403),
    "unknown_model": ("ValidationException", 400),
    "rpm_limit_exceeded": ("ThrottlingException", 429),
    "tpm_limit_exceeded": ("ThrottlingException", 429),
    "daily_limit_exceeded": ("ThrottlingException", 429),
    "monthly_quota_exceeded": ("ThrottlingException", 429),
    # Money: not worth retrying until the month resets or the credit is topped up.
    "budget_exceeded": ("ServiceQuotaExceededException", 400),
    "insufficient_credit": ("AccessDeniedException", 403),
    "model_not_priced": ("AccessDeniedException", 403),
    "bedrock_throttled": ("ThrottlingException", 429),
    "bedrock_unavailable": ("ServiceUnavailableException", 503),
    "service_unavailable": ("ServiceUnavailableException", 503),
    "bedrock_timeout": ("ModelTimeoutException", 408),
    "bedrock_validation": ("ValidationException", 400),
    "bedrock_error": ("ModelErrorException", 424),
    # Permanent here (no Bedrock in this environment): not a status the SDK retries.
    "bedrock_not_configured": ("ResourceNotFoundException", 404),
    "not_found": ("UnknownOperationException", 404),
    "internal_error": ("InternalServerException", 500),
}
# Error types as they appear inside a stream (the stream member's name).
STREAM_ERROR_TYPES = {
    "ThrottlingException": "throttlingException",
    "ServiceUnavailableException": "serviceUnavailableException",
    "ModelTimeoutException": "modelTimeoutException",
    "ValidationException": "validationException",
    "InternalServerException": "internalServerException",
}


def match(path: str) -> tuple[str, str] | None:
    found = ROUTE.search(path)
    return (found["model"], found["operation"]) if found else None


def error_type(exc: ProxyError) -> tuple[str, int]:
    if exc.code in ERROR_TYPES:
        return ERROR_TYPES[exc.code]
    if exc.type == "authentication_error":
        return "AccessDeniedException", exc.status
    return "ValidationException", exc.status


def error_response_parts(exc: ProxyError) -> tuple[int, dict[str, str], dict[str, str]]:
    kind, status = error_type(exc)
    return status, {"message": exc.message}, {"x-amzn-ErrorType": kind}


def stream_error_type(exc: ProxyError) -> str:
    kind, _ = error_type(exc)
    return STREAM_ERROR_TYPES.get(kind, "modelStreamErrorException")


def model_from_path(raw: str) -> tuple[str, str]:
    """(model id, alias) from the path's (URL-encoded) model id, inference profile id or ARN."""
    try:
        requested = unquote(raw, errors="strict")
    except UnicodeDecodeError:
        raise ProxyError(
            "invalid_request", "The model id in the path is not valid UTF-8."
        ) from None
    if len(requested) > 2048 or formats.tag_problem(requested):
        raise ProxyError("invalid_request", "The model id in the path is not valid.")
    arn = _ARN.match(requested)
    if arn:
        if arn["kind"] not in ("foundation-model", "inference-profile"):
            raise ProxyError(
                "invalid_request",
                f"{arn['kind']} ARNs are not served by this proxy; use a model id or a "
                "system inference profile id (GET /v1/models lists them).",
            )
        return models.resolve(arn["id"])
    return models.resolve(requested)


def _raw_body(raw: str, is_base64: bool) -> bytes:
    if not is_base64:
        return raw.encode("utf-8", errors="surrogateescape")
    try:
        return base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise ProxyError("invalid_request", "The body is not valid base64.") from None


def parse(
    model: str, operation: str, raw: str, is_base64: bool, headers: Mapping[str, str]
) -> formats.ModelCall:
    model_id, alias = model_from_path(model)
    boto_operation, stream = OPERATIONS[operation]
    tags = formats.tags_from(None, headers)
    params: dict[str, Any]
    if boto_operation == "invoke_model":
        body = _raw_body(raw, is_base64)
        if not body:
            raise ProxyError("invalid_request", "The body is empty; send the model's request.")
        params = {
            "body": body,
            "contentType": headers.get("content-type") or "application/json",
            "accept": headers.get("x-amzn-bedrock-accept")
            or headers.get("accept")
            or "application/json",
        }
        try:
            native = json.loads(body)
        except (ValueError, RecursionError):
            native = None
        cap = formats.native_output_cap(native, model_id) if isinstance(native, dict) else None
        return formats.ModelCall(
            api_format="bedrock",
            model_id=model_id,
            model_alias=alias,
            operation="invoke_model",
            params=params,
            tags=tags,
            stream=stream,
            requested_model=model,
            max_output_tokens=cap,
        )
    params = converse_params(_json_object(raw, is_base64))
    max_tokens = (params.get("inferenceConfig") or {}).get("maxTokens")
    formats.check_output_cap("inferenceConfig.maxTokens", max_tokens, model_id)
    return formats.ModelCall(
        api_format="bedrock",
        model_id=model_id,
        model_alias=alias,
        operation="converse",
        params=params,
        tags=tags,
        stream=stream,
        requested_model=model,
    )


def _json_object(raw: str, is_base64: bool) -> dict[str, Any]:
    try:
        body = json.loads(_raw_body(raw, is_base64) or b"{}")
    except (ValueError, UnicodeDecodeError):
        raise ProxyError("invalid_request", "The body is not valid JSON.") from None
    except RecursionError:
        raise ProxyError("invalid_request", "The body is nested too deeply.") from None
    if not isinstance(body, dict):
        raise ProxyError("invalid_request", "The body must be a JSON object.")
    return body


@cache
def _converse_input_shape() -> StructureShape:
    import botocore.session

    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    shape = model.operation_model("Converse").input_shape
    assert shape is not None, "Converse has an input shape"
    return shape


def converse_params(body: dict[str, Any]) -> dict[str, Any]:
    """The Converse request as boto3 takes it: checked against the operation's model, blobs
    decoded from base64. A field the model does not know is refused, naming it."""
    from botocore.exceptions import ParamValidationError
    from botocore.validate import validate_parameters

    shape = _converse_input_shape()
    body.pop("modelId", None)
    params: dict[str, Any] = _decode(shape, body, "")
    if not isinstance(params.get("messages"), list) or not params["messages"]:
        raise ProxyError("invalid_request", "'messages' must be a non-empty list.")
    for number, message in enumerate(params["messages"]):
        if not isinstance(message, dict) or message.get("role") not in ("user", "assistant"):
            raise ProxyError(
                "invalid_request", f"messages[{number}].role must be 'user' or 'assistant'."
            )
        if not isinstance(message.get("content"), list) or not message["content"]:
            raise ProxyError(
                "invalid_request", f"messages[{number}].content must be a non-empty list."
            )
    try:
        validate_parameters({**params, "modelId": "x"}, shape)
    except ParamValidationError as exc:
        detail = str(exc).replace("Parameter validation failed:\n", "")
        raise ProxyError("invalid_request", detail[:500]) from None
    return params


def _decode(shape: Shape, value: Any, where: str) -> Any:
    """`value` (JSON) as boto3 takes it for `shape`: blobs decoded from base64, fields checked."""
    kind = shape.type_name
    if kind == "structure" and isinstance(value, dict):
        members = cast("StructureShape", shape).members
        out = {}
        for name, item in value.items():
            if name not in members:
                raise ProxyError("invalid_request", f"Unknown field {where}{name}.")
            out[name] = _decode(members[name], item, f"{where}{name}.")
        return out
    if kind == "list" and isinstance(value, list):
        member = cast("ListShape", shape).member
        return [_decode(member, item, where) for item in value]
    if kind == "map" and isinstance(value, dict):
        value_shape = cast("MapShape", shape).value
        return {key: _decode(value_shape, item, where) for key, item in value.items()}
    if kind == "blob" and isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ProxyError("invalid_request", f"{where.rstrip('.')} is not base64.") from None
    return value  # validate_parameters reports wrong types with the field's name


def json_default(value: object) -> str:
    """Bedrock answers may carry blobs (bytes): base64 in JSON, as the service sends them."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def converse_answer(response: dict[str, Any]) -> str:
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    return json.dumps(body, separators=(",", ":"), default=json_default)


COUNT_HEADERS = {
    "input_tokens": "X-Amzn-Bedrock-Input-Token-Count",
    "output_tokens": "X-Amzn-Bedrock-Output-Token-Count",
    "cache_read_tokens": "X-Amzn-Bedrock-Cache-Read-Input-Token-Count",
    "cache_write_tokens": "X-Amzn-Bedrock-Cache-Write-Input-Token-Count",
}


def invoke_headers(usage: dict[str, int]) -> dict[str, str]:
    return {header: str(usage.get(name, 0)) for name, header in COUNT_HEADERS.items()}
