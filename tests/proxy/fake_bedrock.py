"""A fake Bedrock Runtime on 127.0.0.1 for streamed calls: a real botocore client talks to it
over a socket and parses its event-stream frames, so the proxy's upstream path is the real one.
Each frame can wait on a gate, so a test decides when the upstream produces the rest."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
from botocore.config import Config

from proxy import eventstream


class FakeBedrock:
    def __init__(self):
        self.frames: list[tuple[bytes, threading.Event | None]] = []
        self.requests: list[tuple[str, bytes]] = []
        self.finished = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                fake.requests.append((self.path, self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Type", eventstream.CONTENT_TYPE)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                try:
                    for frame, gate in fake.frames:
                        if gate is not None:
                            gate.wait(10)
                        self.wfile.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
                        self.wfile.flush()
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    fake.finished.set()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def add(self, event_type: str, payload: dict, gate: threading.Event | None = None):
        self.frames.append((eventstream.event(event_type, payload), gate))

    def add_error(self, exception_type: str, text: str, gate=None):
        self.frames.append((eventstream.exception(exception_type, text), gate))

    def client(self):
        return boto3.client(
            "bedrock-runtime",
            region_name="us-east-1",
            endpoint_url=self.url,
            config=Config(retries={"total_max_attempts": 1}, read_timeout=10),
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def converse_stream_frames(fake: FakeBedrock, pieces, usage=(12, 3), gates=None):
    gates = gates or {}
    fake.add("messageStart", {"role": "assistant"})
    for i, piece in enumerate(pieces):
        fake.add(
            "contentBlockDelta",
            {"contentBlockIndex": 0, "delta": {"text": piece}},
            gates.get(i),
        )
    fake.add("contentBlockStop", {"contentBlockIndex": 0}, gates.get("stop"))
    fake.add("messageStop", {"stopReason": "end_turn"})
    fake.add(
        "metadata",
        {
            "usage": {
                "inputTokens": usage[0],
                "outputTokens": usage[1],
                "totalTokens": usage[0] + usage[1],
            },
            "metrics": {"latencyMs": 40},
        },
    )
