"""Servers for bench_proxy_stream_http, each run in its own process on 127.0.0.1.

    python -m bench.stream_http_servers upstream [--deltas 20] [--gap-ms 10]
    python -m bench.stream_http_servers ours --upstream http://127.0.0.1:PORT

`upstream` is a fake Bedrock Runtime answering ConverseStream with AWS event-stream frames
(`proxy/eventstream.py`, which botocore parses): the status line, the headers, `messageStart`
and the first text delta in one write, then a delta every `gap` ms, then `contentBlockStop`,
`messageStop` and `metadata` with the usage. It records, per request, `time.perf_counter()` when
the request line was read and just before that first write, keyed by the `bench-<hex>` marker
found in the request body (perf_counter is CLOCK_MONOTONIC on Linux: the same clock in every
process of the machine).

`ours` is the proxy's local runner (`proxy.local.build`) serving a real `ProxyApp` built by
`proxy.handler.build_app`: DynamoDB at AWS_ENDPOINT_URL (the emulator the benchmark started),
Bedrock at the fake upstream. botocore `before-call` / `after-call` hooks on the app's DynamoDB
client record every call (operation, start, end).

Each prints `{"port": N}` on stdout once it listens, then reads commands on stdin: `dump`
prints what was recorded since the last dump as one JSON line; end of input (the benchmark
closed the pipe or died) stops the server and the process.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy import eventstream

MARKER = re.compile(rb"bench-[0-9a-f]{32}")
MAX_BODY = 1 << 20


class _Server(ThreadingHTTPServer):
    request_queue_size = 1024  # 200 connections at once must not be reset by the backlog
    daemon_threads = True
    block_on_close = False


def _chunk(frame: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(frame), frame)


def converse_stream_frames(deltas: int) -> tuple[bytes, list[bytes], bytes]:
    """(messageStart + first delta, the other deltas, the end) as HTTP chunks."""
    pieces = [
        _chunk(
            eventstream.event(
                "contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": f"word{i} "}}
            )
        )
        for i in range(deltas)
    ]
    start = _chunk(eventstream.event("messageStart", {"role": "assistant"})) + pieces[0]
    end = (
        _chunk(eventstream.event("contentBlockStop", {"contentBlockIndex": 0}))
        + _chunk(eventstream.event("messageStop", {"stopReason": "end_turn"}))
        + _chunk(
            eventstream.event(
                "metadata",
                {
                    "usage": {
                        "inputTokens": 12,
                        "outputTokens": deltas,
                        "totalTokens": 12 + deltas,
                    },
                    "metrics": {"latencyMs": 10 * deltas},
                },
            )
        )
        + b"0\r\n\r\n"
    )
    return start, pieces[1:], end


def expected_text(deltas: int) -> str:
    return "".join(f"word{i} " for i in range(deltas))


def serve_upstream(deltas: int, gap: float):
    # [marker, request line read, just before the first write, path] (perf_counter seconds)
    first_bytes: list[list] = []
    start, rest, end = converse_stream_frames(deltas)
    head = (
        b"HTTP/1.1 200 OK\r\n"
        b"Content-Type: " + eventstream.CONTENT_TYPE.encode() + b"\r\n"
        b"Transfer-Encoding: chunked\r\n"
        b"x-amzn-RequestId: 00000000-0000-0000-0000-000000000000\r\n\r\n"
    )

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def parse_request(self):  # right after the request line arrived
            self.received = time.perf_counter()
            return super().parse_request()

        def do_POST(self):
            length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
            body = self.rfile.read(length)
            if not self.path.endswith("/converse-stream"):
                self.send_error(404, "only ConverseStream here")
                return
            found = MARKER.search(body)
            marker = found.group().decode() if found else None
            try:
                started = time.perf_counter()
                self.wfile.write(head + start)
                first_bytes.append([marker, self.received, started, self.path])
                for piece in rest:
                    time.sleep(gap)
                    self.wfile.write(piece)
                self.wfile.write(end)
            except OSError:  # the proxy went away mid-stream
                self.close_connection = True

        def log_message(self, *args):
            pass

    server = _Server(("127.0.0.1", 0), Handler)
    return server, first_bytes


def serve_ours(upstream_url: str):
    import os

    from proxy import config, contract, handler, local

    settings = config.Settings(
        tables=contract.table_names(),
        region=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        usage_events_dir=os.environ.get("USAGE_EVENTS_DIR", ""),
        bedrock_enabled=True,
        bedrock_endpoint_url=upstream_url,
    )
    app = handler.build_app(settings)  # as proxy.local.build_app, Bedrock at the fake upstream
    calls: list[list] = []  # [operation, start, end, failed]

    def before(context, **kwargs):
        context["bench_started"] = time.perf_counter()

    def after(model, context, **kwargs):
        calls.append([model.name, context.get("bench_started"), time.perf_counter(), False])

    def after_error(context, **kwargs):
        calls.append(["error", context.get("bench_started"), time.perf_counter(), True])

    events = app.dynamodb.meta.events
    events.register("before-call.dynamodb", before)
    events.register("after-call.dynamodb", after)
    events.register("after-call-error.dynamodb", after_error)
    return local.build(0, app), calls


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("kind", choices=("upstream", "ours"))
    parser.add_argument("--deltas", type=int, default=20)
    parser.add_argument("--gap-ms", type=float, default=10)
    parser.add_argument("--upstream", default="")
    args = parser.parse_args(argv)
    if args.kind == "upstream":
        server, records = serve_upstream(args.deltas, args.gap_ms / 1000)
    else:
        server, records = serve_ours(args.upstream)
    # stdout is this protocol's; anything else printed (the proxy's usage event lines, one per
    # request as the Lambda prints them) goes to stderr, the log file.
    protocol = sys.stdout
    sys.stdout = sys.stderr
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    print(json.dumps({"port": server.server_address[1]}), file=protocol, flush=True)
    try:
        for line in sys.stdin:  # ends when the benchmark closes the pipe
            if line.strip() == "dump":
                taken = records[: len(records)]
                del records[: len(taken)]
                print(json.dumps(taken), file=protocol, flush=True)
    finally:
        server.shutdown()
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
