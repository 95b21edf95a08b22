"""A proxy answer whose body is produced piece by piece, and its buffered equivalent.

`ProxyApp.handle_streaming(event)` answers every request with a `StreamingResponse`: status and
headers first, then the body as an iterator of byte chunks. A streamed model answer yields each
chunk as the model produces it; every other answer is one chunk. Whoever serves it (the local
runner, the Lambda runtime in response-streaming mode) writes each chunk as it comes and calls
`close()` when the client goes away, which stops the upstream call and settles the usage of
what was produced. `to_buffered()` turns one into API Gateway's buffered proxy result for the
buffered entry point (`handler.lambda_handler`).
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

# Bodies that are not text: API Gateway's buffered result must carry them base64-encoded.
BINARY_CONTENT_TYPES = ("application/vnd.amazon.eventstream",)


class StreamingApp(Protocol):
    """What the local runner and the response-streaming runtime serve (handler.ProxyApp)."""

    def handle_streaming(self, event: dict[str, Any]) -> StreamingResponse: ...


@dataclass
class StreamingResponse:
    status: int
    headers: dict[str, str]
    chunks: Iterable[bytes] = field(default_factory=tuple)
    # Runs after the chunks are closed, even if none was ever asked for.
    on_close: Callable[[], None] | None = None

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.chunks:
            if chunk:
                yield chunk

    def close(self) -> None:
        """Stop producing (the client disconnected): a generator's `finally` runs now."""
        close = getattr(self.chunks, "close", None)
        try:
            if close is not None:
                close()
        finally:
            if self.on_close is not None:
                self.on_close()

    @property
    def content_type(self) -> str:
        for name, value in self.headers.items():
            if name.lower() == "content-type":
                return value
        return ""

    @classmethod
    def from_buffered(cls, result: dict[str, Any]) -> StreamingResponse:
        body = result.get("body") or ""
        data = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        return cls(result["statusCode"], dict(result.get("headers") or {}), (data,))


def to_buffered(response: StreamingResponse) -> dict[str, Any]:
    """The whole body at once, as API Gateway's (v1 or v2) proxy integration result."""
    try:
        data = b"".join(response)
    finally:
        response.close()
    binary = response.content_type.split(";")[0].strip() in BINARY_CONTENT_TYPES
    return {
        "statusCode": response.status,
        "headers": response.headers,
        "body": base64.b64encode(data).decode() if binary else data.decode("utf-8"),
        "isBase64Encoded": binary,
    }
