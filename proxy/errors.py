"""One error shape everywhere: {"error": {"type", "code", "message", "request_id"}}.

A money refusal (`budget_exceeded`, `insufficient_credit`) adds one field to the same object,
`limit`: what refused, in numbers a client can use without parsing the message (amounts are
decimal strings, never floats), e.g. {"kind": "monthly_budget", "scope": "customer",
"cap": "10.00", "spent": "10.12", "currency": "USD", "resets_at": "2026-12-01T00:00:00Z"}.
Clients that read only the four fields above are unaffected."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# code -> (HTTP status, type, default message)
ERRORS: dict[str, tuple[int, str, str]] = {
    "missing_token": (401, "authentication_error", "Send 'Authorization: Bearer <token>'."),
    "malformed_token": (401, "authentication_error", "The bearer token is not well formed."),
    "unknown_token": (401, "authentication_error", "The bearer token is not known."),
    "token_expired": (401, "authentication_error", "The token has expired."),
    "token_grace_ended": (
        401,
        "authentication_error",
        "The token was rotated and its grace period has ended; use its replacement.",
    ),
    "token_revoked": (401, "authentication_error", "The token has been revoked."),
    "customer_suspended": (403, "authentication_error", "The account is suspended."),
    "customer_closed": (403, "authentication_error", "The account is closed."),
    "ip_not_allowed": (403, "authentication_error", "This client address is not allowed."),
    "model_not_allowed": (403, "model_access_error", "This model is not enabled for the account."),
    "unknown_model": (400, "model_access_error", "Unknown model; GET /v1/models lists them."),
    "rpm_limit_exceeded": (429, "rate_limit_error", "Requests-per-minute limit reached."),
    "tpm_limit_exceeded": (429, "rate_limit_error", "Tokens-per-minute limit reached."),
    "daily_limit_exceeded": (429, "rate_limit_error", "Daily request limit reached."),
    "monthly_quota_exceeded": (429, "rate_limit_error", "Monthly token quota used up."),
    "budget_exceeded": (429, "rate_limit_error", "Monthly budget reached."),
    "insufficient_credit": (
        402,
        "billing_error",
        "Prepaid credit is used up; top up to continue.",
    ),
    "model_not_priced": (
        403,
        "model_access_error",
        "This model has no price, so it cannot be used with a budget or prepaid credit.",
    ),
    "invalid_json": (400, "validation_error", "The body is not valid JSON."),
    "invalid_request": (400, "validation_error", "The request is not valid."),
    "body_too_large": (413, "validation_error", "The body is too large."),
    "unsupported_content_type": (415, "validation_error", "Send Content-Type: application/json."),
    "not_found": (404, "validation_error", "No such route."),
    "method_not_allowed": (405, "validation_error", "Method not allowed on this route."),
    "origin_not_allowed": (403, "validation_error", "This origin is not allowed (CORS)."),
    "bedrock_throttled": (
        503,
        "upstream_error",
        "Bedrock is throttling requests for this model; retry after the Retry-After delay.",
    ),
    "bedrock_unavailable": (503, "upstream_error", "Bedrock is unavailable; retry later."),
    "bedrock_timeout": (504, "upstream_error", "The model timed out; retry later."),
    "bedrock_validation": (400, "upstream_error", "Bedrock rejected the request."),
    "bedrock_error": (502, "upstream_error", "Bedrock returned an error."),
    "bedrock_not_configured": (
        502,
        "upstream_error",
        "Bedrock is not available in this environment; use the sandbox model sandbox.echo-v1.",
    ),
    "service_unavailable": (
        503,
        "api_error",
        "The service is briefly unavailable; retry after the Retry-After delay.",
    ),
    "internal_error": (500, "api_error", "Internal error; retry, and quote the request id."),
}


class ProxyError(Exception):
    """Raised anywhere in the request path; the handler turns it into the JSON error shape."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        limit: Mapping[str, str | bool] | None = None,
    ) -> None:
        status, kind, default = ERRORS[code]
        super().__init__(message or default)
        self.code, self.status, self.type = code, status, kind
        self.message = message or default
        self.headers = dict(headers or {})
        # The limit that refused, as structured fields of the error body (money refusals).
        self.limit = dict(limit) if limit else None


def error_body(exc: ProxyError, request_id: str) -> dict[str, dict[str, Any]]:
    error: dict[str, Any] = {
        "type": exc.type,
        "code": exc.code,
        "message": exc.message,
        "request_id": request_id,
    }
    if exc.limit is not None:
        error["limit"] = exc.limit
    return {"error": error}
