"""The HTTP side of a request: API Gateway's event (REST v1 or HTTP API v2) as a Request, the
route it asks for, and the CORS headers the proxy allows and exposes."""

from __future__ import annotations

import uuid
from typing import Any

from . import bedrock_runtime
from .errors import ProxyError

CORS_ALLOW_HEADERS = (
    "Authorization, Content-Type, X-Application-Id, X-Cost-Center, X-Environment, X-User-Id"
)
CORS_EXPOSE_HEADERS = (
    "X-Request-Id, Retry-After, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, "
    "X-RateLimit-Warning, X-RateLimit-Scope"
)


class Request:
    __slots__ = ("client_ip", "headers", "is_base64", "method", "path", "raw_body", "request_id")

    method: str
    path: str
    client_ip: str
    headers: dict[str, str]  # names in lower case
    raw_body: str
    is_base64: bool
    request_id: str

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> Request:
        self = cls()
        context = event.get("requestContext") or {}
        if event.get("version") == "2.0":
            http = context.get("http") or {}
            self.method = http.get("method", "GET")
            self.path = event.get("rawPath") or http.get("path") or "/"
            self.client_ip = http.get("sourceIp", "")
        else:
            self.method = event.get("httpMethod", "GET")
            self.path = event.get("path") or "/"
            self.client_ip = (context.get("identity") or {}).get("sourceIp", "")
        self.headers = {
            k.lower(): v for k, v in (event.get("headers") or {}).items() if v is not None
        }
        self.raw_body = event.get("body") or ""
        self.is_base64 = bool(event.get("isBase64Encoded"))
        self.request_id = context.get("requestId") or str(uuid.uuid4())
        return self


def route(method: str, path: str) -> str:
    path = path.rstrip("/") or "/"
    if bedrock_runtime.match(path):
        name = "bedrock"
    elif "/model/" in f"{path}/" and path.split("/model/", 1)[0] in ("", "/"):
        raise ProxyError(
            "not_found",
            "Unknown operation: use /model/{modelId}/invoke, /invoke-with-response-stream, "
            "/converse or /converse-stream.",
        )
    elif path.endswith("/chat/completions"):
        name = "chat"
    elif path.endswith("/embeddings"):
        name = "embeddings"
    elif path.endswith("/models"):
        name = "models"
    elif path == "/" or path.endswith(("/bedrock", "/invoke")):
        name = "invoke"
    else:
        raise ProxyError("not_found")
    allowed = "GET" if name == "models" else "POST"
    if method != allowed:
        raise ProxyError("method_not_allowed", f"Use {allowed} on {path}.")
    return name
