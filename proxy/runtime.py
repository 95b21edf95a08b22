"""The Lambda Runtime API loop of the response-streaming proxy function.

    python -m proxy.runtime        (what deploy/bootstrap runs; needs AWS_LAMBDA_RUNTIME_API)

Lambda's managed Python runtime only answers buffered, so the function behind API Gateway's
streaming methods runs this loop itself (a custom runtime: the image deploy/proxy.Dockerfile,
whose entry point is deploy/bootstrap; see docs/proxy.md). For each invocation it asks the
Runtime API for the next event, lets `ProxyApp.handle_streaming` answer it, and posts the answer
in Lambda's response-streaming mode: API Gateway's JSON prelude (status and headers), eight NUL
bytes, then every body chunk as an HTTP/1.1 chunk the moment the app produces it. Answers that
are not streamed (a buffered answer, an event that did not come from API Gateway) take the same
way with one body chunk.

Failures: before the answer starts, `/invocation/{id}/error`; once it has started (the status
is gone), the `Lambda-Runtime-Function-Error-Type` / `-Error-Body` trailers; the app cannot be
built, `/runtime/init/error` and exit. When the Runtime API itself fails, the process exits and
Lambda starts a new execution environment. Standard library only: the app (and boto3) is
imported when it is built, so a missing module is reported as an init error.

Nothing here logs an event, a header or a body: a failed invocation is logged, and reported to
Lambda, by exception type and code location only, so neither a bearer token nor a prompt can
reach the logs.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import os
import re
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:  # the app is imported when it is built (_build_app), never here
    from .handler import ProxyApp
    from .streaming import StreamingApp

logger = logging.getLogger("proxy.runtime")

API_PREFIX = "/2018-06-01/runtime"

# The body of a streamed HTTP answer, as API Gateway (STREAM transfer mode) and Lambda function
# URLs read it: a JSON prelude {"statusCode", "headers", "multiValueHeaders", "cookies"}, then a
# delimiter of 8 NUL bytes, then the raw payload; the prelude must arrive within the first 16 KB
# ("Lambda proxy integration format for response streaming", API Gateway developer guide,
# response-transfer-mode-lambda). The content type and the 8-byte delimiter are those of
# `awslambda.HttpResponseStream` in AWS's Node.js runtime interface client
# (aws-lambda-nodejs-runtime-interface-client, src/HttpResponseStream.js).
PRELUDE_CONTENT_TYPE = "application/vnd.awslambda.http-integration-response"
DELIMITER = b"\0" * 8
MAX_PRELUDE_BYTES = 16 * 1024

# Streaming to the Runtime API ("Implementing response streaming in a custom runtime", Lambda
# developer guide, runtimes-custom): the response-mode header, chunked transfer encoding, and
# errors that happen once the answer has started as trailers, declared up front in `Trailer`;
# the error body is base64. `/invocation/{id}/error` is only allowed before the answer starts.
ERROR_TYPE_TRAILER = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"
STREAM_HEADERS = (
    ("Lambda-Runtime-Function-Response-Mode", "streaming"),
    ("Transfer-Encoding", "chunked"),
    ("Content-Type", PRELUDE_CONTENT_TYPE),
    ("Trailer", f"{ERROR_TYPE_TRAILER}, {ERROR_BODY_TRAILER}"),
)

# Headers about this one hop, not the answer: API Gateway frames the client's response itself.
HOP_BY_HOP = frozenset(
    {"connection", "content-length", "keep-alive", "trailer", "transfer-encoding", "upgrade"}
)

# Stop a stream this long before Lambda's deadline: closing the answer settles the usage of
# what was produced (and gives back the quota hold), which a function killed at its timeout
# cannot do.
DEADLINE_MARGIN_MS = 2_000


class RuntimeAPIError(Exception):
    """The Runtime API answered something a runtime cannot go on from: the process exits."""


class DeadlineReached(Exception):
    """The invocation is about to reach the function's timeout; the stream is cut short."""


@dataclass(frozen=True)
class Invocation:
    request_id: str
    payload: bytes
    deadline_ms: int | None = None
    trace_id: str | None = None


def error_type(exc: BaseException, category: str = "Function") -> str:
    """`Function.ValueError`: Lambda's recommended <category.reason>, safe as a header value."""
    reason = re.sub(r"[^A-Za-z0-9_]", "", type(exc).__name__) or "Error"
    return f"{category}.{reason}"


def error_document(kind: str, message: str) -> bytes:
    return json.dumps(
        {"errorType": kind, "errorMessage": message, "stackTrace": []}, separators=(",", ":")
    ).encode()


def encode_prelude(status: int, headers: Mapping[str, object]) -> bytes:
    """API Gateway's prelude for a streamed answer. JSON escapes control characters, so the
    prelude never holds a NUL byte and the delimiter after it is unambiguous."""
    kept = {str(k): str(v) for k, v in headers.items() if str(k).lower() not in HOP_BY_HOP}
    prelude = json.dumps(
        {"statusCode": int(status), "headers": kept}, separators=(",", ":")
    ).encode()
    if len(prelude) + len(DELIMITER) > MAX_PRELUDE_BYTES:
        raise ValueError(f"the response headers exceed {MAX_PRELUDE_BYTES} bytes")
    return prelude


class RuntimeClient:
    """The Runtime API over one keep-alive HTTP/1.1 connection.

    The Lambda guide says a streaming runtime must "close the underlying connection after it
    has successfully written the response". AWS's Node.js runtime interface client ends the
    request instead (the last chunk) and keeps its one connection: it streams through
    `http.Agent({keepAlive: true, maxSockets: 1})` (src/RAPIDClient.js). So does this client: after
    the last chunk it reads Lambda's 202 and reuses the connection. If Lambda closes it
    instead, http.client opens a new one for the next request, and a connection found dead
    when a request is sent is replaced once.
    """

    def __init__(self, address: str):
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError("AWS_LAMBDA_RUNTIME_API must be host:port")
        # No timeout: /invocation/next waits for as long as no request comes (the Runtime API
        # documentation says not to set one), and an answer may stream for 15 minutes.
        self.connection = http.client.HTTPConnection(host, int(port))

    def close(self) -> None:
        self.connection.close()

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        for attempt in (1, 2):
            try:
                self.connection.request(method, path, body=body, headers=headers or {})
                response = self.connection.getresponse()
                return response.status, response.headers, response.read()
            except ConnectionError:
                self.connection.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def next_invocation(self) -> Invocation:
        status, headers, payload = self._request("GET", f"{API_PREFIX}/invocation/next")
        request_id = headers.get("Lambda-Runtime-Aws-Request-Id")
        if status != 200 or not request_id:
            raise RuntimeAPIError(f"/invocation/next answered {status}")
        deadline = headers.get("Lambda-Runtime-Deadline-Ms", "")
        return Invocation(
            request_id=request_id,
            payload=payload,
            deadline_ms=int(deadline) if deadline.isdigit() else None,
            trace_id=headers.get("Lambda-Runtime-Trace-Id") or None,
        )

    def _post_error(self, path: str, kind: str, message: str) -> None:
        status, _, _ = self._request(
            "POST",
            path,
            body=error_document(kind, message),
            headers={"Content-Type": "application/json", ERROR_TYPE_TRAILER: kind},
        )
        self._check_accepted(path, status)

    def post_init_error(self, kind: str, message: str) -> None:
        self._post_error(f"{API_PREFIX}/init/error", kind, message)

    def post_invocation_error(self, request_id: str, kind: str, message: str) -> None:
        self._post_error(
            f"{API_PREFIX}/invocation/{quote(request_id, safe='')}/error", kind, message
        )

    @staticmethod
    def _check_accepted(path: str, status: int) -> None:
        if status >= 500:  # "Container error. Non-recoverable state. Runtime should exit."
            raise RuntimeAPIError(f"{path} answered {status}")
        if status != 202:
            logger.error("the Runtime API refused %s: %s", path.rsplit("/", 1)[-1], status)

    def _send_chunk(self, data: bytes) -> None:
        # One HTTP/1.1 chunk, written to the socket at once (sendall; http.client sets
        # TCP_NODELAY), so Lambda receives it as soon as it is produced.
        self.connection.send(b"%X\r\n%s\r\n" % (len(data), data))

    def stream_response(
        self, request_id: str, prelude: bytes, chunks: Iterable[bytes | str]
    ) -> Exception | None:
        """Post one answer in streaming mode: the prelude and delimiter as the first chunk, then
        each body chunk as it is produced. An exception raised by `chunks` ends the stream with
        the error trailers and is returned; a failure of the connection itself is raised."""
        path = f"{API_PREFIX}/invocation/{quote(request_id, safe='')}/response"
        self.connection.putrequest("POST", path, skip_accept_encoding=True)
        for name, value in STREAM_HEADERS:
            self.connection.putheader(name, value)
        self.connection.endheaders()
        self._send_chunk(prelude + DELIMITER)
        failure: Exception | None = None
        iterator = iter(chunks)
        while True:
            try:
                chunk = next(iterator)
                data = chunk.encode() if isinstance(chunk, str) else bytes(chunk)
            except StopIteration:
                break
            except Exception as exc:  # the app failed mid-stream: the status is already sent
                failure = exc
                break
            if data:  # an empty chunk would end the chunked body
                self._send_chunk(data)
        ending = b"0\r\n"
        if failure is not None:
            if isinstance(failure, DeadlineReached):
                kind = "Runtime.DeadlineReached"
            else:
                kind = error_type(failure)
            body = base64.b64encode(error_document(kind, "The answer was cut short.")).decode()
            ending += f"{ERROR_TYPE_TRAILER}: {kind}\r\n{ERROR_BODY_TRAILER}: {body}\r\n".encode()
        self.connection.send(ending + b"\r\n")
        response = self.connection.getresponse()
        response.read()
        self._check_accepted("response", response.status)
        return failure


def _within_deadline(chunks: Iterable[bytes], deadline_ms: int | None) -> Iterator[bytes]:
    for chunk in chunks:
        yield chunk
        if deadline_ms is not None and time.time() * 1000 >= deadline_ms - DEADLINE_MARGIN_MS:
            raise DeadlineReached()


def _log_failure(message: str, request_id: str, exc: BaseException) -> None:
    # The type and where it happened, never the exception's text (it may quote request data).
    where = "".join(traceback.format_tb(exc.__traceback__)).rstrip()
    logger.error("%s %s: %s\n%s", message, request_id, type(exc).__name__, where)


def _set_trace_id(trace_id: str | None) -> None:
    if trace_id:
        os.environ["_X_AMZN_TRACE_ID"] = trace_id
    else:
        os.environ.pop("_X_AMZN_TRACE_ID", None)


def serve(client: RuntimeClient, app: StreamingApp, invocation: Invocation) -> None:
    """Answer one invocation through the Runtime API."""
    _set_trace_id(invocation.trace_id)
    request_id = invocation.request_id
    try:
        event = json.loads(invocation.payload) if invocation.payload.strip() else {}
        response = app.handle_streaming(event)
    except Exception as exc:
        _log_failure("invocation failed before its answer started:", request_id, exc)
        client.post_invocation_error(request_id, error_type(exc), "The proxy failed.")
        return
    try:
        try:
            prelude = encode_prelude(response.status, response.headers)
        except Exception as exc:
            _log_failure("invocation failed before its answer started:", request_id, exc)
            client.post_invocation_error(request_id, error_type(exc), "The proxy failed.")
            return
        body = _within_deadline(response, invocation.deadline_ms)
        failure = client.stream_response(request_id, prelude, body)
        # "answer cut short" is what the template's ProxyStreamsCutShortMetric counts.
        if isinstance(failure, DeadlineReached):
            logger.error("answer cut short: %s: the function's timeout is near", request_id)
        elif failure is not None:
            _log_failure("answer cut short:", request_id, failure)
    except (OSError, http.client.HTTPException) as exc:
        # The stream to Lambda broke (the client went away, the invocation ended): a fresh
        # connection for the next invocation; close() below stops the app's work.
        logger.error("answer to %s not delivered: %s", request_id, type(exc).__name__)
        client.close()
    finally:
        try:
            response.close()
        except Exception as exc:
            _log_failure("closing the answer failed:", request_id, exc)


def _build_app() -> ProxyApp:
    from . import handler  # boto3 and the app, imported here so that failures are init errors

    return handler.build_app()


def run(
    app_factory: Callable[[], StreamingApp] | None = None,
    *,
    address: str | None = None,
    max_invocations: int | None = None,
) -> int:
    """Build the app, then serve invocations (all of them, or `max_invocations`). Returns the
    exit status; raises RuntimeAPIError / OSError when the Runtime API stops answering."""
    address = address or os.environ.get("AWS_LAMBDA_RUNTIME_API", "")
    if not address:
        logger.error("AWS_LAMBDA_RUNTIME_API is not set: this runs inside Lambda only")
        return 2
    client = RuntimeClient(address)
    try:
        app = (app_factory or _build_app)()
    except Exception as exc:
        _log_failure("the proxy could not start:", "init", exc)
        client.post_init_error(error_type(exc, "Runtime"), f"{type(exc).__name__}: {exc}")
        client.close()
        return 1
    served = 0
    try:
        while max_invocations is None or served < max_invocations:
            serve(client, app, client.next_invocation())
            served += 1
    finally:
        client.close()
    return 0


def main() -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(levelname)s %(name)s %(message)s"
    )
    try:
        return run()
    except (RuntimeAPIError, OSError, http.client.HTTPException) as exc:
        logger.error("the Runtime API stopped answering (%s): exiting", type(exc).__name__)
        return 1


if __name__ == "__main__":
    sys.exit(main())
