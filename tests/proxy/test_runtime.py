"""proxy/runtime.py against a fake Lambda Runtime API on 127.0.0.1 that checks the protocol:
the streaming headers, the raw HTTP/1.1 chunks as they arrive, API Gateway's prelude and its
8-NUL delimiter, the error trailers, /invocation/{id}/error, /runtime/init/error, one
keep-alive connection; then the real ProxyApp through the loop, and deploy/bootstrap itself."""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import boto3
import pytest

from proxy import runtime
from proxy.streaming import StreamingResponse

from .conftest import REGION, chat, event, make_app, put_customer, put_token

ROOT = Path(__file__).resolve().parents[2]
NEXT = "/2018-06-01/runtime/invocation/next"
WAIT = 10  # seconds: the bound of every wait in this file


@dataclass
class Posted:
    """One POST the runtime made: headers, the raw chunks in arrival order, the trailers."""

    path: str
    headers: dict
    client: tuple
    chunks: list = field(default_factory=list)
    trailers: dict = field(default_factory=dict)
    body: bytes = b""
    complete: bool = False

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks) if self.chunks else self.body

    def split(self) -> tuple[dict, bytes]:
        """The prelude (JSON) and the body after exactly 8 NUL bytes."""
        data = self.data
        end = data.index(b"\0")
        assert data[end : end + 8] == b"\0" * 8
        return json.loads(data[:end]), data[end + 8 :]


class FakeRuntimeAPI:
    """The Runtime API of one execution environment: hands out `events`, then answers /next
    with a 500 (a real one would wait; the runtime must then exit, not spin)."""

    def __init__(self, events=(), *, cut_after=None):
        self.events = list(events)  # (request_id, payload bytes, extra headers)
        self.cut_after = cut_after or {}  # request_id -> close the connection after n chunks
        self.gets: list[tuple] = []
        self.posts: list[Posted] = []
        self.condition = threading.Condition()
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format, *args):
                pass

            def _reply(self, status, body=b"", headers=None):
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                with api.condition:
                    api.gets.append(self.client_address)
                    item = api.events.pop(0) if api.events else None
                if self.path != NEXT:
                    self._reply(404)
                elif item is None:
                    self._reply(500, b'{"errorMessage":"no more events here"}')
                else:
                    request_id, payload, extra = item
                    headers = {
                        "Content-Type": "application/json",
                        "Lambda-Runtime-Aws-Request-Id": request_id,
                        "Lambda-Runtime-Deadline-Ms": str(int(time.time() * 1000) + 60_000),
                        "Lambda-Runtime-Trace-Id": f"Root=1-{request_id[:8]};Sampled=0",
                        "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:1:x",
                    }
                    headers.update(extra)
                    self._reply(200, payload, headers)

            def do_POST(self):
                posted = Posted(self.path, dict(self.headers.items()), self.client_address)
                with api.condition:
                    api.posts.append(posted)
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    if not self._read_chunked(posted):
                        return
                else:
                    posted.body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with api.condition:
                    posted.complete = True
                    api.condition.notify_all()
                self._reply(202, b'{"status":"OK"}', {"Content-Type": "application/json"})

            def _read_chunked(self, posted) -> bool:
                request_id = self.path.split("/")[-2]
                while True:
                    size_line = self.rfile.readline(1024)
                    if not size_line:
                        return False
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        break
                    data = self.rfile.read(size)
                    assert self.rfile.read(2) == b"\r\n", "a chunk must end with CRLF"
                    with api.condition:
                        posted.chunks.append(data)
                        api.condition.notify_all()
                    if len(posted.chunks) == api.cut_after.get(request_id):
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return False
                while True:  # trailers, then the empty line
                    line = self.rfile.readline(65536)
                    if line in (b"\r\n", b"\n", b""):
                        return True
                    name, _, value = line.decode("latin-1").partition(":")
                    posted.trailers[name.strip()] = value.strip()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.server_address[1]}"

    def post(self, request_id: str, kind: str = "response") -> Posted:
        found = [p for p in self.posts if p.path.endswith(f"/invocation/{request_id}/{kind}")]
        assert len(found) == 1, [p.path for p in self.posts]
        return found[0]

    def wait_for_chunks(self, request_id: str, count: int) -> bool:
        suffix = f"/invocation/{request_id}/response"

        def enough():
            return any(p.path.endswith(suffix) and len(p.chunks) >= count for p in self.posts)

        with self.condition:
            return self.condition.wait_for(enough, timeout=WAIT)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(autouse=True)
def no_trace_id_left():
    """The runtime sets _X_AMZN_TRACE_ID per invocation, as Lambda's runtimes do; not for
    the tests that follow."""
    before = os.environ.get("_X_AMZN_TRACE_ID")
    yield
    if before is None:
        os.environ.pop("_X_AMZN_TRACE_ID", None)
    else:
        os.environ["_X_AMZN_TRACE_ID"] = before


@pytest.fixture
def fake_api():
    apis = []

    def start(events=(), **options):
        api = FakeRuntimeAPI(events, **options)
        apis.append(api)
        return api

    yield start
    for api in apis:
        api.close()


def invocation(payload=None, request_id=None, **headers):
    request_id = request_id or str(uuid.uuid4())
    data = payload if isinstance(payload, bytes) else json.dumps(payload or {}).encode()
    return request_id, data, headers


def run_in_thread(app_factory, api, max_invocations):
    """runtime.run in a thread, joined within WAIT seconds; returns its result or exception."""
    outcome = {}

    def target():
        try:
            outcome["status"] = runtime.run(
                app_factory, address=api.address, max_invocations=max_invocations
            )
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, outcome


def finish(thread, outcome):
    thread.join(WAIT)
    assert not thread.is_alive(), "the runtime loop did not finish in time"
    return outcome


class FakeApp:
    """Answers by the event's "kind": a multi-chunk stream, a buffered answer, and whatever
    else (an event that did not come from API Gateway) as the proxy's 405."""

    def __init__(self):
        self.seen: list[dict] = []
        self.trace_ids: list[str | None] = []
        self.closed: list[str] = []

    def handle_streaming(self, event):
        self.seen.append(event)
        self.trace_ids.append(os.environ.get("_X_AMZN_TRACE_ID"))
        kind = event.get("kind")
        if kind == "stream":
            return StreamingResponse(
                200,
                {"Content-Type": "text/event-stream", "X-Request-Id": "r1"},
                iter([b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"]),
            )
        if kind == "buffered":
            return StreamingResponse.from_buffered(
                {
                    "statusCode": 201,
                    "headers": {"Content-Type": "application/json", "Content-Length": "11"},
                    "body": '{"ok":true}',
                    "isBase64Encoded": False,
                }
            )
        return StreamingResponse.from_buffered(
            {"statusCode": 405, "headers": {"Content-Type": "application/json"}, "body": "{}"}
        )


def test_streams_each_answer_over_one_keep_alive_connection(fake_api):
    events = [
        invocation({"kind": "stream"}, "req-stream"),
        invocation({"kind": "buffered"}, "req-buffered"),
        invocation({"source": "aws.events", "detail-type": "Scheduled Event"}, "req-other"),
    ]
    api = fake_api(events)
    app = FakeApp()
    outcome = finish(*run_in_thread(lambda: app, api, 3))
    assert outcome == {"status": 0}

    stream = api.post("req-stream")
    headers = {k.lower(): v for k, v in stream.headers.items()}
    assert headers["lambda-runtime-function-response-mode"] == "streaming"
    assert headers["transfer-encoding"] == "chunked"
    assert "content-length" not in headers
    assert headers["content-type"] == "application/vnd.awslambda.http-integration-response"
    declared = {t.strip() for t in headers["trailer"].split(",")}
    assert declared == {"Lambda-Runtime-Function-Error-Type", "Lambda-Runtime-Function-Error-Body"}
    # The prelude and its delimiter, then one HTTP chunk per chunk the app produced.
    assert len(stream.chunks) == 4
    assert stream.chunks[0].endswith(b"\0" * 8) and stream.chunks[0].count(b"\0") == 8
    assert stream.chunks[1:] == [b"data: one\n\n", b"data: two\n\n", b"data: [DONE]\n\n"]
    prelude, body = stream.split()
    assert prelude == {
        "statusCode": 200,
        "headers": {"Content-Type": "text/event-stream", "X-Request-Id": "r1"},
    }
    assert body == b"data: one\n\ndata: two\n\ndata: [DONE]\n\n"
    assert stream.trailers == {}

    # A buffered answer takes the same way, as one chunk; API Gateway frames the length itself.
    buffered = api.post("req-buffered")
    assert buffered.headers["Lambda-Runtime-Function-Response-Mode"] == "streaming"
    assert len(buffered.chunks) == 2
    prelude, body = buffered.split()
    assert prelude == {"statusCode": 201, "headers": {"Content-Type": "application/json"}}
    assert body == b'{"ok":true}'

    # An event that did not come from API Gateway too: the app decides, the runtime streams.
    other = api.post("req-other")
    assert other.split() == (
        {"statusCode": 405, "headers": {"Content-Type": "application/json"}},
        b"{}",
    )
    assert app.seen[2] == {"source": "aws.events", "detail-type": "Scheduled Event"}

    # The trace header of each invocation, one connection for every request (keep-alive), and
    # no fourth /next: the loop stopped where it was told.
    assert app.trace_ids == [f"Root=1-{rid[:8]};Sampled=0" for rid, _, _ in events]
    clients = set(api.gets) | {p.client for p in api.posts}
    assert len(api.gets) == 3 and len(clients) == 1
    assert all(p.complete for p in api.posts)


def test_the_first_chunk_arrives_before_the_app_produces_the_last(fake_api):
    release = threading.Event()
    produced = []

    class SlowApp:
        def handle_streaming(self, event):
            def body():
                produced.append("first")
                yield b"first"
                # The test sets `release` only once the Runtime API has received b"first":
                # a runtime that buffered would never get there, and this would time out.
                if not release.wait(WAIT):
                    raise TimeoutError("the first chunk never reached the Runtime API")
                produced.append("last")
                yield b"last"

            return StreamingResponse(200, {"Content-Type": "text/plain"}, body())

    api = fake_api([invocation({}, "req-slow")])
    thread, outcome = run_in_thread(SlowApp, api, 1)
    assert api.wait_for_chunks("req-slow", 2), "the first body chunk did not arrive"
    assert produced == ["first"]  # the app is still waiting to produce its last chunk
    assert api.post("req-slow").chunks[1] == b"first"
    release.set()
    assert finish(thread, outcome) == {"status": 0}
    posted = api.post("req-slow")
    assert posted.chunks[1:] == [b"first", b"last"] and posted.trailers == {}


def test_a_failure_mid_stream_ends_it_with_the_error_trailers(fake_api, caplog):
    closed = []

    class FailingApp:
        def handle_streaming(self, event):
            if not event:
                return FakeApp().handle_streaming({"kind": "buffered"})
            quoted = f"{event['headers']['Authorization']} {event['body']}"

            def body():
                try:
                    yield b"partial answer"
                    raise KeyError(quoted)  # an exception whose text quotes the request
                finally:
                    closed.append(True)

            return StreamingResponse(200, {"Content-Type": "text/plain"}, body())

    secret_event = event(chat(text="my private prompt"), token="bup_secret-token", version=1)
    api = fake_api([invocation(secret_event, "req-fail"), invocation({}, "req-next")])
    assert finish(*run_in_thread(FailingApp, api, 2)) == {"status": 0}

    posted = api.post("req-fail")
    prelude, body = posted.split()
    assert prelude["statusCode"] == 200 and body == b"partial answer"
    assert posted.trailers["Lambda-Runtime-Function-Error-Type"] == "Function.KeyError"
    detail = json.loads(base64.b64decode(posted.trailers["Lambda-Runtime-Function-Error-Body"]))
    assert detail["errorType"] == "Function.KeyError"
    assert "secret" not in json.dumps(detail) and "prompt" not in json.dumps(detail)
    assert closed == [True]
    assert api.post("req-next").complete  # the loop goes on over the same connection
    assert "answer cut short" in caplog.text and "KeyError" in caplog.text
    for secret in ("bup_secret-token", "my private prompt", "Bearer"):
        assert secret not in caplog.text


def test_a_failure_before_the_answer_goes_to_the_error_endpoint(fake_api, caplog):
    class BrokenApp:
        def handle_streaming(self, event):
            raise ValueError(f"cannot answer {event['headers']['Authorization']}")

    secret_event = event(chat(), token="bup_secret-token", version=1)
    api = fake_api([invocation(secret_event, "req-broken"), invocation(b"{not json", "req-bad")])
    assert finish(*run_in_thread(BrokenApp, api, 2)) == {"status": 0}

    error = api.post("req-broken", "error")
    assert error.headers["Lambda-Runtime-Function-Error-Type"] == "Function.ValueError"
    assert json.loads(error.body) == {
        "errorType": "Function.ValueError",
        "errorMessage": "The proxy failed.",
        "stackTrace": [],
    }
    # An event that is not JSON is an invocation error too, not the end of the loop.
    bad = api.post("req-bad", "error")
    assert bad.headers["Lambda-Runtime-Function-Error-Type"] == "Function.JSONDecodeError"
    assert not [p for p in api.posts if p.path.endswith("/response")]
    assert "bup_secret-token" not in caplog.text and "Bearer" not in caplog.text


def test_an_app_that_cannot_be_built_is_an_init_error(fake_api):
    def factory():
        raise ModuleNotFoundError("No module named 'boto3'")

    api = fake_api([invocation({}, "req-never")])
    assert finish(*run_in_thread(factory, api, None)) == {"status": 1}
    (posted,) = api.posts
    assert posted.path == "/2018-06-01/runtime/init/error"
    assert posted.headers["Lambda-Runtime-Function-Error-Type"] == "Runtime.ModuleNotFoundError"
    assert json.loads(posted.body)["errorMessage"] == (
        "ModuleNotFoundError: No module named 'boto3'"
    )
    assert api.gets == []  # no invocation is taken once init failed


def test_the_loop_ends_when_the_runtime_api_fails(fake_api):
    api = fake_api([invocation({"kind": "buffered"}, "req-1")])
    outcome = finish(*run_in_thread(FakeApp, api, None))
    assert isinstance(outcome["error"], runtime.RuntimeAPIError)
    assert api.post("req-1").complete and len(api.gets) == 2


def test_a_stream_near_the_deadline_is_cut_short_and_closed(fake_api, caplog):
    closed = []

    class EndlessApp:
        def handle_streaming(self, event):
            def body():
                try:
                    for n in range(1000):
                        yield b"%d " % n
                finally:
                    closed.append(True)  # the app settles the usage of what it produced

            return StreamingResponse(200, {"Content-Type": "text/plain"}, body())

    deadline = str(int(time.time() * 1000) + runtime.DEADLINE_MARGIN_MS - 1)
    api = fake_api([invocation({}, "req-late", **{"Lambda-Runtime-Deadline-Ms": deadline})])
    assert finish(*run_in_thread(EndlessApp, api, 1)) == {"status": 0}
    posted = api.post("req-late")
    assert posted.split()[1] == b"0 "
    assert posted.trailers["Lambda-Runtime-Function-Error-Type"] == "Runtime.DeadlineReached"
    assert closed == [True]
    assert "answer cut short" in caplog.text


def test_a_broken_stream_closes_the_answer_and_reconnects(fake_api):
    closed = []

    class TalkativeApp:
        def handle_streaming(self, event):
            if event.get("kind") == "buffered":
                return FakeApp().handle_streaming(event)

            def body():
                try:
                    for n in range(2000):
                        time.sleep(0.002)
                        yield b"chunk %d\n" % n
                finally:
                    closed.append(n)

            return StreamingResponse(200, {"Content-Type": "text/plain"}, body())

    events = [invocation({}, "req-cut"), invocation({"kind": "buffered"}, "req-after")]
    api = fake_api(events, cut_after={"req-cut": 3})
    assert finish(*run_in_thread(TalkativeApp, api, 2)) == {"status": 0}
    assert len(closed) == 1 and closed[0] < 1999  # stopped early: close() reached the app
    after = api.post("req-after")
    assert after.complete and after.split()[1] == b'{"ok":true}'
    assert after.client != api.post("req-cut").client  # a new connection after the broken one


def test_the_prelude_carries_only_the_answers_own_headers():
    prelude = runtime.encode_prelude(
        200,
        {
            "Content-Type": "text/event-stream",
            "content-length": "10",
            "Transfer-Encoding": "chunked",
            "Connection": "keep-alive",
            "X-Odd": "nul\0inside",
        },
    )
    assert b"\0" not in prelude  # JSON escapes it: the delimiter stays unambiguous
    assert json.loads(prelude) == {
        "statusCode": 200,
        "headers": {"Content-Type": "text/event-stream", "X-Odd": "nul\0inside"},
    }
    with pytest.raises(ValueError):
        runtime.encode_prelude(200, {"X-Big": "x" * runtime.MAX_PRELUDE_BYTES})


# --- the real proxy through the loop -------------------------------------------------------


def test_the_proxy_answers_a_sandbox_chat_through_the_runtime(fake_api, dynamodb):
    app = make_app(dynamodb)
    customer = put_customer(dynamodb)
    token, _ = put_token(dynamodb, customer)
    plain = event(chat(text="Hello!"), token=token, version=1)  # a REST API (v1) event
    streamed = event(chat(text="Stream me", stream=True), token=token, version=1)
    api = fake_api([invocation(plain, "req-chat"), invocation(streamed, "req-sse")])
    assert finish(*run_in_thread(lambda: app, api, 2)) == {"status": 0}

    prelude, body = api.post("req-chat").split()
    assert prelude["statusCode"] == 200
    assert prelude["headers"]["Content-Type"] == "application/json"
    assert prelude["headers"]["X-Request-Id"] == plain["requestContext"]["requestId"]
    answer = json.loads(body)
    assert answer["choices"][0]["message"]["content"] == "Echo: Hello!"
    assert answer["usage"]["completion_tokens"] >= 1

    posted = api.post("req-sse")
    prelude, body = posted.split()
    assert prelude["statusCode"] == 200
    assert prelude["headers"]["Content-Type"].startswith("text/event-stream")
    text = "".join(
        json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
        for line in body.decode().splitlines()
        if line.startswith("data: {") and json.loads(line[6:])["choices"]
    )
    assert text == "Echo: Stream me"
    assert body.rstrip().endswith(b"data: [DONE]") and posted.trailers == {}

    usage = [e for e in app.sink.stream.events() if e["status"] == "success"]
    assert len(usage) == 2 and {e["customer_id"] for e in usage} == {customer.customer_id}
    assert token not in app.sink.stream.getvalue()


def test_the_bootstrap_runs_the_loop_with_the_real_proxy(fake_api, moto_server):
    """deploy/bootstrap as Lambda starts it (the image's ENTRYPOINT): from LAMBDA_TASK_ROOT,
    against DynamoDB on a loopback moto server, until the Runtime API stops answering."""
    from proxy import contract

    dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_server)
    contract.create_tables(dynamodb)
    customer = put_customer(dynamodb)
    token, _ = put_token(dynamodb, customer)
    api = fake_api([invocation(event(chat(text="Hi"), token=token, version=1), "req-boot")])
    environment = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "LAMBDA_TASK_ROOT": str(ROOT),
        "AWS_LAMBDA_RUNTIME_API": api.address,
        "AWS_ENDPOINT_URL": moto_server,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": REGION,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "PROXY_BEDROCK": "off",
    }
    done = subprocess.run(
        [str(ROOT / "deploy" / "bootstrap")],
        env=environment,
        cwd="/",
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The fake has no second event and answers /next with a 500: the loop exits non-zero so
    # that Lambda would start a new environment.
    assert done.returncode == 1, done.stderr
    assert "Runtime API stopped answering" in done.stderr
    prelude, body = api.post("req-boot").split()
    assert prelude["statusCode"] == 200, body
    assert json.loads(body)["choices"][0]["message"]["content"] == "Echo: Hi"
    printed = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    usage = [line for line in printed if "_aws" not in line]  # not the metrics lines
    assert [e["status"] for e in usage] == ["success"]
    assert token not in done.stdout + done.stderr
