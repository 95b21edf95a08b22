"""Serve the Lambda handler over HTTP on 127.0.0.1, as API Gateway (HTTP API, v2 events) would.

    python -m proxy.local [--port 8001]        (default: $PROXY_PORT, else 8001)

`make run` starts it against the embedded AWS emulator (AWS_ENDPOINT_URL). The emulator has no
Bedrock, so locally only the sandbox model `sandbox.echo-v1` answers; other models get a 502
`bedrock_not_configured` unless you run with real AWS credentials and PROXY_BEDROCK=on (then
Bedrock is called for real, while DynamoDB/S3 still go to AWS_ENDPOINT_URL if set).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from . import config, contract, handler

MAX_READ = 10 * 1024 * 1024  # API Gateway's payload limit; the handler applies its own


def load_dotenv(path: Path) -> None:
    """KEY=VALUE lines of the portal's .env, without overriding the real environment."""
    if not path.is_file():
        return
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            os.environ.setdefault(key.strip(), value.strip())


def to_event(method: str, raw_path: str, headers, body: bytes, client_ip: str) -> dict:
    url = urlsplit(raw_path)
    text = body.decode("utf-8", errors="replace") if body else None
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
        "isBase64Encoded": False,
    }


def make_handler(app: handler.ProxyApp):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "bedrock-proxy-local"

        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_READ:
                self.send_error(413)
                return
            body = self.rfile.read(length) if length else b""
            event = to_event(self.command, self.path, self.headers, body, self.client_address[0])
            response = app.handle(event)
            payload = (response.get("body") or "").encode()
            self.send_response(response["statusCode"])
            for name, value in response.get("headers", {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        do_GET = do_POST = do_OPTIONS = do_PUT = do_DELETE = do_PATCH = _serve

        def log_message(self, format, *args):
            # The request line only (method, path, status); never headers, so never the token.
            sys.stderr.write(f"proxy.local {self.address_string()} {format % args}\n")

    return Handler


def build(port: int) -> ThreadingHTTPServer:
    # Where the portal's DuckDB engine looks by default (portal/settings.py USAGE_EVENTS_DIR).
    os.environ.setdefault("USAGE_EVENTS_DIR", str(Path.cwd() / "var" / "usage-events"))
    if os.environ.get("AWS_ENDPOINT_URL") and "PROXY_BEDROCK" not in os.environ:
        os.environ["PROXY_BEDROCK"] = "off"  # the emulator has no Bedrock: sandbox only
    settings = config.load()
    app = handler.build_app(settings)
    if os.environ.get("AWS_ENDPOINT_URL"):
        contract.create_tables(app.dynamodb, settings.tables)  # the emulator may start empty
    return ThreadingHTTPServer(("127.0.0.1", port), make_handler(app))


def main(argv=None) -> int:
    load_dotenv(Path.cwd() / ".env")
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("PROXY_PORT", 8001)))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    server = build(args.port)
    print(f"Bedrock proxy on http://127.0.0.1:{args.port}/ (OpenAI base URL: /v1)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
