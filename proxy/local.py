"""Serve the Lambda handler on 127.0.0.1, as API Gateway (HTTP API, v2 events) would.

    python -m proxy.local [--port 8001] [--tls-port 8443] [--tls-dir DIR]

HTTP on --port ($PROXY_PORT, else 8001) and HTTPS on --tls-port ($PROXY_TLS_PORT, else 8443;
0 turns it off). The AWS SDKs send a Bedrock API key (`AWS_BEARER_TOKEN_BEDROCK`) only over
HTTPS, so the HTTPS port has a self-signed certificate for 127.0.0.1 and localhost, made on the
first run in --tls-dir ($PORTAL_VAR_DIR/proxy-tls, else var/proxy-tls) and reused afterwards;
the banner prints its path, for `verify=` / `--cacert`.

Answers are written as the app produces them (`ProxyApp.handle_streaming`): a body produced
piece by piece (a generator, more than one chunk) or an event stream goes out with
`Transfer-Encoding: chunked`, each chunk as soon as it exists; a complete one-chunk answer keeps
its `Content-Length`. A client that goes away mid-answer closes the answer, which stops the model
call and settles its usage. A request body that is not UTF-8 reaches the handler base64-encoded
(`isBase64Encoded`), as API Gateway passes it.

`make run` starts it against the embedded AWS emulator (AWS_ENDPOINT_URL). The emulator has no
Bedrock, so locally only the sandbox model `sandbox.echo-v1` answers; other models get a 502
`bedrock_not_configured` unless you run with real AWS credentials and PROXY_BEDROCK=on (then
Bedrock is called for real, while DynamoDB/S3 still go to AWS_ENDPOINT_URL if set).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import logging
import os
import socket
import ssl
import sys
import threading
import uuid
from collections.abc import Mapping, Sequence
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self, cast
from urllib.parse import urlsplit

from . import config, contract, handler
from .streaming import StreamingApp, StreamingResponse

logger = logging.getLogger("proxy.local")

MAX_READ = 10 * 1024 * 1024  # API Gateway's payload limit; the handler applies its own
# Answers of these types are written chunk by chunk even when they come as one chunk.
STREAM_CONTENT_TYPES = ("text/event-stream", "application/vnd.amazon.eventstream")
# Framing is the runner's business: the app's own values for these are not passed on.
FRAMING_HEADERS = {"content-length", "transfer-encoding", "connection"}
TLS_HANDSHAKE_SECONDS = 10
DEFAULT_PORT = 8001
DEFAULT_TLS_PORT = 8443


def load_dotenv(path: Path) -> None:
    """KEY=VALUE lines of the portal's .env, without overriding the real environment."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            os.environ.setdefault(key.strip(), value.strip())


def to_event(
    method: str,
    raw_path: str,
    headers: Message | Mapping[str, str],
    body: bytes,
    client_ip: str,
) -> dict[str, Any]:
    """An API Gateway v2 event. The body is the text when it is UTF-8, else base64 with
    `isBase64Encoded` (as API Gateway passes a binary body)."""
    url = urlsplit(raw_path)
    text, encoded = None, False
    if body:
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            text, encoded = base64.b64encode(body).decode("ascii"), True
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": url.path,
        "rawQueryString": url.query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "requestContext": {
            "http": {"method": method, "path": url.path, "sourceIp": client_ip},
            "requestId": str(uuid.uuid4()),
            "stage": "$default",
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


class BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def make_handler(app: StreamingApp) -> type[BaseHTTPRequestHandler]:
    """The request handler class for `app` (anything with `handle_streaming(event)`)."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "bedrock-proxy-local"
        disable_nagle_algorithm = True  # a chunk goes out when it is written, not 40 ms later

        def _serve(self) -> None:
            try:
                body = self._read_body()
            except BadRequest as exc:
                self.send_error(exc.status, str(exc))  # also closes the connection
                return
            event = to_event(self.command, self.path, self.headers, body, self.client_address[0])
            response = app.handle_streaming(event)
            self.chunks_written = 0
            try:
                self._write(response)
            except (ConnectionError, ssl.SSLError) as exc:
                self.close_connection = True
                logger.warning(
                    "client %s went away during %s %s after %d chunk(s) (%s); answer closed",
                    self.client_address[0],
                    self.command,
                    urlsplit(self.path).path,
                    self.chunks_written,
                    type(exc).__name__,
                )
            except Exception:  # the app's body failed mid-way: the client sees a cut answer
                self.close_connection = True
                logger.exception("the answer to %s %s failed", self.command, self.path)
            finally:
                response.close()

        do_GET = do_POST = do_OPTIONS = do_PUT = do_DELETE = do_PATCH = do_HEAD = _serve

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                return self._read_chunked_body()
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise BadRequest(400, "Bad Content-Length") from None
            if length < 0:
                raise BadRequest(400, "Bad Content-Length")
            if length > MAX_READ:
                raise BadRequest(413, "Request body too large")
            return self.rfile.read(length) if length else b""

        def _read_chunked_body(self) -> bytes:
            parts: list[bytes] = []
            total = 0
            while True:
                line = self.rfile.readline(1024)
                try:
                    size = int(line.split(b";")[0].strip(), 16)
                except ValueError:
                    raise BadRequest(400, "Bad chunk size") from None
                if size == 0:
                    break
                total += size
                if size < 0 or total > MAX_READ:
                    raise BadRequest(413 if total > MAX_READ else 400, "Bad chunked body")
                parts.append(self.rfile.read(size))
                self.rfile.readline(3)  # the CRLF after the chunk
            while self.rfile.readline(8192) not in (b"\r\n", b"\n", b""):
                pass  # trailer fields: not used
            return b"".join(parts)

        def _write(self, response: StreamingResponse) -> None:
            status = response.status
            bodiless = self.command == "HEAD" or status < 200 or status in (204, 304)
            kind = response.content_type.split(";")[0].strip().lower()
            # A body given as a list or tuple of at most one chunk is complete: Content-Length.
            # A generator is written chunk by chunk from its first chunk on (no waiting to see
            # whether a second one comes), as is an event stream.
            complete = isinstance(response.chunks, (tuple, list)) and len(response.chunks) <= 1
            streamed = not bodiless and (kind in STREAM_CONTENT_TYPES or not complete)
            self.send_response(status)
            for name, value in response.headers.items():
                if name.lower() not in FRAMING_HEADERS:
                    self.send_header(name, value)
            if not streamed:
                payload = b"".join(response)
                if status >= 200 and status not in (204, 304):  # HEAD: the length of the GET
                    self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if not bodiless:
                    self.wfile.write(payload)
                    self.chunks_written = 1
                return
            chunked = self.request_version == "HTTP/1.1"  # HTTP/1.0: the body ends at close
            if chunked:
                self.send_header("Transfer-Encoding", "chunked")
            else:
                self.send_header("Connection", "close")
            self.end_headers()
            for chunk in response:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if chunked else chunk)
                self.wfile.flush()
                self.chunks_written += 1
            if chunked:
                self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: Any) -> None:
            # The request line only (method, path, status); never headers, so never the token.
            sys.stderr.write(f"proxy.local {self.address_string()} {format % args}\n")

    return Handler


class LocalServer(ThreadingHTTPServer):
    """One daemon thread per connection (keep-alive: several requests each). The listen backlog
    is 1024: socketserver's default of 5 resets connections that arrive in a burst."""

    request_queue_size = 1024
    daemon_threads = True
    block_on_close = False


class LocalTLSServer(LocalServer):
    """The same over TLS. The handshake runs in the connection's thread, never in the accept
    loop, and is given TLS_HANDSHAKE_SECONDS."""

    def __init__(
        self,
        address: tuple[str, int],
        handler_class: type[BaseHTTPRequestHandler],
        context: ssl.SSLContext,
        cert_path: Path,
    ) -> None:
        self.context = context
        self.cert_path = cert_path
        super().__init__(address, handler_class)

    def finish_request(
        self: Self, request: socket.socket | tuple[bytes, socket.socket], client_address: Any
    ) -> None:
        request = cast(socket.socket, request)  # a TCP server's request is its connection
        request.settimeout(TLS_HANDSHAKE_SECONDS)
        try:
            connection = self.context.wrap_socket(request, server_side=True)
        except OSError as exc:  # ssl.SSLError included: a plain-HTTP client, a distrustful one
            logger.info("TLS handshake with %s failed: %s", client_address[0], exc)
            return
        connection.settimeout(None)
        try:
            self.RequestHandlerClass(connection, client_address, self)
        finally:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_WR)
            connection.close()


def build_app() -> handler.ProxyApp:
    # Where the portal's DuckDB engine looks by default (portal/settings.py USAGE_EVENTS_DIR).
    os.environ.setdefault("USAGE_EVENTS_DIR", str(Path.cwd() / "var" / "usage-events"))
    if os.environ.get("AWS_ENDPOINT_URL") and "PROXY_BEDROCK" not in os.environ:
        os.environ["PROXY_BEDROCK"] = "off"  # the emulator has no Bedrock: sandbox only
    if os.environ.get("AWS_ENDPOINT_URL"):
        # The emulator applies one call at a time: a burst queues there for seconds.
        os.environ.setdefault("PROXY_DYNAMODB_TIMEOUT_SECONDS", "30")
    settings = config.load()
    app = handler.build_app(settings)
    if os.environ.get("AWS_ENDPOINT_URL"):
        contract.create_tables(app.dynamodb, settings.tables)  # the emulator may start empty
    return app


def build(port: int, app: StreamingApp | None = None) -> LocalServer:
    """The HTTP server on 127.0.0.1:`port` (0: any free port), for `app` or a new ProxyApp."""
    return LocalServer(("127.0.0.1", port), make_handler(app or build_app()))


def default_tls_dir() -> Path:
    return (Path(os.environ.get("PORTAL_VAR_DIR") or "var") / "proxy-tls").resolve()


def build_tls(port: int, app: StreamingApp, tls_dir: Path | None = None) -> LocalTLSServer:
    """The HTTPS server on 127.0.0.1:`port`, with the certificate kept in `tls_dir`."""
    from . import local_tls  # needs `cryptography`; the Lambda never comes here

    cert_path, key_path = local_tls.ensure_certificate(tls_dir or default_tls_dir())
    context = local_tls.server_context(cert_path, key_path)
    return LocalTLSServer(("127.0.0.1", port), make_handler(app), context, cert_path)


def main(argv: Sequence[str] | None = None) -> int:
    load_dotenv(Path.cwd() / ".env")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("PROXY_PORT") or DEFAULT_PORT)
    )
    parser.add_argument(
        "--tls-port",
        type=int,
        default=int(os.environ.get("PROXY_TLS_PORT") or DEFAULT_TLS_PORT),
        help="HTTPS port (0: no HTTPS)",
    )
    parser.add_argument("--tls-dir", type=Path, help="where cert.pem and key.pem are kept")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = build_app()
    servers = [build(args.port, app)]
    print(
        f"Bedrock proxy on http://127.0.0.1:{servers[0].server_address[1]}/ (OpenAI base URL: /v1)",
        flush=True,
    )
    if args.tls_port:
        tls = build_tls(args.tls_port, app, args.tls_dir)
        servers.append(tls)
        print(
            f"Bedrock proxy on https://127.0.0.1:{tls.server_address[1]}/"
            f" (self-signed certificate: {tls.cert_path})",
            flush=True,
        )
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        servers[0].serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        for server in servers[1:]:
            server.shutdown()
        for server in servers:
            server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
