"""Benchmark: streaming through the local runner over HTTP, with LiteLLM's proxy beside it.

Everything on 127.0.0.1, each server in its own process, the clients in this one:
- a fake Bedrock Runtime (`bench/stream_http_servers.py upstream`) answers ConverseStream with
  real event-stream frames: messageStart and the first text delta at once, then a delta every
  GAP_MS ms (DELTAS in all), then messageStop and metadata with the usage. For each request it
  records when it read the request line and when it wrote its first byte (time.perf_counter,
  CLOCK_MONOTONIC: one clock for every process of the machine), keyed by a marker the client
  puts in the prompt;
- our proxy: the local runner (`proxy.local.build`) serving a real ProxyApp built by
  `proxy.handler.build_app`, Bedrock at the fake upstream, DynamoDB on the emulator
  (`portal.emulator.start`, in this process: `make run` keeps it out of the runner's too);
  a customer with all three limits and a token written through `proxy.contract`. botocore
  hooks on the app's DynamoDB client time every call;
- LiteLLM's proxy (`litellm --config`, uvicorn, one worker) from a throwaway virtualenv in
  bench/.cache/litellm-venv (installed on first use, not a dependency of ours), routing the same
  model id to `bedrock/converse/...` at the same fake upstream, with a master key and no
  database: it looks up no key, tracks no spend and enforces no limit, where ours does all three
  (the DynamoDB rows). It runs twice: as configured by default, and with `stream_chunk_size: 1`
  (its Bedrock handlers read the upstream in 1,024-byte pieces otherwise). BENCH_SKIP_LITELLM=1
  leaves it out; a LiteLLM that cannot be installed or started gives a row saying why.

Clients send OpenAI `stream: true` chat completions (`anthropic.claude-3-haiku-20240307-v1:0`,
`stream_options.include_usage`) over keep-alive HTTP/1.1 and read the SSE answer to `[DONE]`,
checking every delta arrived.
1. Added latency to the first byte: the client's time from its send to its first content chunk,
   minus the upstream's own time from the request line to its first byte, over SEQUENTIAL
   streams one after the other on a warm proxy (after WARM streams); p50 / p99, with its two
   legs (client send to upstream request; upstream first byte to client first content). For
   ours, the DynamoDB calls made in that time are timed separately (before-call to after-call:
   signing, the round trip to the emulator, parsing) and subtracted for the comparison.
2. CONCURRENT streams at once (one client thread and connection each): errors (a status other
   than 200, a cut or wrong answer, an exception), connection resets among them, total time.

    .venv/bin/python bench/bench_proxy_stream_http.py         # prints a markdown table
    BENCH_SKIP_LITELLM=1 .venv/bin/python bench/bench_proxy_stream_http.py
"""

from __future__ import annotations

import contextlib
import gc
import http.client
import json
import logging
import os
import queue
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
DELTAS = int(os.environ.get("BENCH_STREAM_DELTAS", "20"))
GAP_MS = float(os.environ.get("BENCH_STREAM_GAP_MS", "10"))
SEQUENTIAL = int(os.environ.get("BENCH_STREAM_REQUESTS", "200"))
WARM = 20
CONCURRENT = int(os.environ.get("BENCH_STREAM_CONCURRENT", "200"))
PHASE_SECONDS = 180  # a bound on each phase, whatever happens
REQUEST_TIMEOUT = 60
LITELLM_VERSION = "1.82.6"  # checked here; 1.82.7 and 1.82.8 were malicious uploads
LITELLM_VENV = ROOT / "bench" / ".cache" / "litellm-venv"
LITELLM_MASTER_KEY = "sk-bench-local-only"
# LiteLLM reads Bedrock's stream in 1,024-byte pieces by default (`stream_chunk_size`, a
# parameter of its Bedrock handlers): the second run sets it to 1 byte, so every event is
# relayed as it arrives, as ours does.
TUNED_CHUNK = 1
SKIP_LITELLM = os.environ.get("BENCH_SKIP_LITELLM", "") not in ("", "0", "false", "no")


# --- processes -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Helper:
    """A `bench.stream_http_servers` process: `port`, `dump()`, `stop()`."""

    def __init__(self, args: list[str], env: dict, log_path: Path):
        self.log = log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.stream_http_servers", *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        try:
            self.port = json.loads(self._line(60))["port"]
        except Exception:
            self.stop()
            raise

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _line(self, timeout: float) -> str:
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise RuntimeError(f"{self.process.args[3]} did not answer in {timeout} s") from None
        if line is None:
            tail = Path(self.log.name).read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{self.process.args[3]} exited: {tail}")
        return line

    def dump(self) -> list:
        self.process.stdin.write("dump\n")
        self.process.stdin.flush()
        return json.loads(self._line(30))

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self.process.stdin.close()  # the server stops at the end of its input
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.log.close()


def _wait_http(port: int, path: str, process, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", path)
            response = connection.getresponse()
            response.read()
            connection.close()
            if response.status == 200:
                return
            last = f"HTTP {response.status}"
        except OSError as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    raise RuntimeError(f"did not answer {path} within {timeout:.0f} s ({last})")


# --- the client ------------------------------------------------------------------------------


class StreamFailed(Exception):
    pass


def _body() -> tuple[str, bytes]:
    marker = f"bench-{uuid.uuid4().hex}"
    body = {
        "model": MODEL,
        "messages": [{"role": "user", "content": f"Tell me a story ({marker})."}],
        "max_tokens": 200,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return marker, json.dumps(body).encode()


def stream_once(connection: http.client.HTTPConnection, token: str) -> dict:
    """One streamed chat completion on `connection`; times in perf_counter seconds."""
    marker, body = _body()
    headers = {
        "Content-Type": "application/json",
        "Authorization": f"Bearer {token}",
        "Accept": "text/event-stream",
    }
    sent = time.perf_counter()
    connection.request("POST", "/v1/chat/completions", body=body, headers=headers)
    response = connection.getresponse()
    if response.status != 200:
        detail = response.read()[:300]
        raise StreamFailed(f"HTTP {response.status}: {detail!r}")
    first, text, done = None, [], False
    for _ in range(10 * DELTAS + 100):  # lines of the answer, bounded
        line = response.readline()
        now = time.perf_counter()
        if not line:
            break
        line = line.strip()
        if not line.startswith(b"data:"):
            continue
        data = line[5:].strip()
        if data == b"[DONE]":
            done = True
            continue
        chunk = json.loads(data)
        if "error" in chunk:
            raise StreamFailed(f"error in the stream: {chunk['error']}")
        for choice in chunk.get("choices") or ():
            content = (choice.get("delta") or {}).get("content")
            if content:
                if first is None:
                    first = now
                text.append(content)
    response.read()  # to the end of the body (keep-alive)
    ended = time.perf_counter()
    from bench.stream_http_servers import expected_text

    if not done or "".join(text) != expected_text(DELTAS):
        raise StreamFailed(f"cut or wrong answer (done={done}, {len(text)} pieces)")
    return {"marker": marker, "sent": sent, "first": first, "ended": ended}


def sequential(port: int, token: str, count: int, warm: int) -> list[dict]:
    """`warm` then `count` streams one after the other on one keep-alive connection."""
    results = []
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
    deadline = time.monotonic() + PHASE_SECONDS
    try:
        for number in range(warm + count):
            if time.monotonic() > deadline:
                raise RuntimeError(f"sequential streams took over {PHASE_SECONDS} s")
            try:
                result = stream_once(connection, token)
            except (http.client.HTTPException, OSError):  # the server closed it: reconnect once
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
                result = stream_once(connection, token)
            if number >= warm:
                results.append(result)
    finally:
        connection.close()
    return results


def concurrent(port: int, token: str, count: int) -> dict:
    """`count` client threads, one connection and one stream each, released together."""
    barrier = threading.Barrier(count, timeout=60)
    outcomes: list[str] = []
    lock = threading.Lock()
    ends: list[float] = []

    def client():
        outcome = "ok"
        try:
            barrier.wait()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=REQUEST_TIMEOUT)
            try:
                stream_once(connection, token)
            finally:
                connection.close()
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected):
            outcome = "reset"
        except threading.BrokenBarrierError:
            outcome = "not started"
        except Exception as exc:
            outcome = f"{type(exc).__name__}: {str(exc)[:120]}"
        with lock:
            outcomes.append(outcome)
            ends.append(time.perf_counter())

    threads = [threading.Thread(target=client, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    deadline = time.monotonic() + PHASE_SECONDS
    for thread in threads:
        thread.join(timeout=max(0.1, deadline - time.monotonic()))
    unfinished = sum(1 for t in threads if t.is_alive())
    with lock:
        counts = Counter(outcomes)
        last = max(ends) if ends else time.perf_counter()
    failures = {k: v for k, v in counts.items() if k != "ok"}
    if unfinished:
        failures["unfinished"] = unfinished
    return {
        "errors": sum(failures.values()),
        "resets": counts.get("reset", 0),
        "seconds": last - started,
        "failures": failures,
    }


# --- measures --------------------------------------------------------------------------------


def _p(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[max(0, round(0.99 * len(ordered)) - 1)]


def added_latency(results: list[dict], upstream: list) -> dict[str, list[float]]:
    """Per stream, ms: `added`, the client's time to its first content chunk minus the
    upstream's own time to its first byte (from the request line read to the first write);
    `to_upstream`, from the client's send to the upstream reading the request line; `relay`,
    from the upstream's first byte to the client's first content chunk."""
    seen = {marker: (received, first) for marker, received, first, _ in upstream if marker}
    missing = [r["marker"] for r in results if r["marker"] not in seen]
    if missing:
        raise RuntimeError(f"{len(missing)} stream(s) not seen by the upstream")
    out: dict[str, list[float]] = {"added": [], "to_upstream": [], "relay": []}
    for r in results:
        received, first = seen[r["marker"]]
        out["added"].append(((r["first"] - r["sent"]) - (first - received)) * 1000)
        out["to_upstream"].append((received - r["sent"]) * 1000)
        out["relay"].append((r["first"] - first) * 1000)
    return out


def dynamodb_per_stream(results: list[dict], calls: list) -> tuple[list[float], list[int], Counter]:
    """Per stream: ms of DynamoDB calls before its first byte, and its calls, to the next send.

    The streams are sequential and our runner settles a stream before it ends the body, so every
    call between one send and the next belongs to that stream."""
    before_ms, per_stream, operations = [], [], Counter()
    for index, result in enumerate(results):
        until = results[index + 1]["sent"] if index + 1 < len(results) else float("inf")
        mine = [c for c in calls if c[1] is not None and result["sent"] <= c[1] < until]
        before_ms.append(sum(end - start for _, start, end, _ in mine if end <= result["first"]))
        per_stream.append(len(mine))
        operations.update(name for name, *_ in mine)
        before_ms[-1] *= 1000
    return before_ms, per_stream, operations


def _fmt(pair: tuple[float, float]) -> str:
    return f"{pair[0]:.2f} / {pair[1]:.2f}"


# --- LiteLLM ---------------------------------------------------------------------------------


def ensure_litellm() -> tuple[Path | None, str]:
    """(the litellm executable, "") or (None, why not)."""
    python = LITELLM_VENV / "bin" / "python"
    executable = LITELLM_VENV / "bin" / "litellm"

    def installed() -> str:
        if not python.exists() or not executable.exists():
            return ""
        done = subprocess.run(
            [str(python), "-c", "import importlib.metadata as m; print(m.version('litellm'))"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        return done.stdout.strip()

    if installed() == LITELLM_VERSION:
        return executable, ""
    steps = []
    if not python.exists():
        steps.append([sys.executable, "-m", "venv", str(LITELLM_VENV)])
    steps.append([str(python), "-m", "pip", "install", "-q", f"litellm[proxy]=={LITELLM_VERSION}"])
    for step in steps:
        try:
            done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"`{' '.join(step[-3:])}` failed: {type(exc).__name__}"
        if done.returncode:
            errors = [
                line
                for line in (done.stderr + done.stdout).splitlines()
                if line.startswith("ERROR")
            ]
            errors = [re.sub(r" \(from versions: [^)]*\)", "", line) for line in errors]
            why = "; ".join(errors[-2:])[:400] or (done.stderr or done.stdout).strip()[-300:]
            return None, f"`{' '.join(step[-3:])}` exited {done.returncode}: {why}"
    version = installed()
    if version != LITELLM_VERSION:
        return None, f"installed litellm is {version or 'missing'}, not {LITELLM_VERSION}"
    return executable, ""


LITELLM_CONFIG = """\
model_list:
  - model_name: "{model}"
    litellm_params:
      model: "bedrock/converse/{model}"
      aws_bedrock_runtime_endpoint: "{upstream}"
      aws_region_name: us-east-1
      aws_access_key_id: bench-dummy
      aws_secret_access_key: bench-dummy
{extra}general_settings:
  master_key: "{key}"
litellm_settings:
  telemetry: false
"""


class LiteLLM:
    def __init__(self, executable: Path, upstream_port: int, workdir: Path, params: dict):
        workdir.mkdir()
        config = workdir / "litellm.yaml"
        config.write_text(
            LITELLM_CONFIG.format(
                model=MODEL,
                upstream=f"http://127.0.0.1:{upstream_port}",
                key=LITELLM_MASTER_KEY,
                extra="".join(f"      {k}: {v}\n" for k, v in params.items()),
            )
        )
        home = workdir / "home"
        home.mkdir()
        env = {  # nothing of ours: no credentials, no database, no network lookups
            "PATH": f"{executable.parent}:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "AWS_ACCESS_KEY_ID": "bench-dummy",
            "AWS_SECRET_ACCESS_KEY": "bench-dummy",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_EC2_METADATA_DISABLED": "true",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_LOG": "ERROR",
            "NO_PROXY": "127.0.0.1,localhost",
        }
        self.port = _free_port()
        self.log_path = workdir / "litellm.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [
                str(executable),
                "--config",
                str(config),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--num_workers",
                "1",
                "--telemetry",
                "False",
            ],
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as one below
        )
        try:
            _wait_http(self.port, "/health/liveliness", self.process, timeout=180)
        except RuntimeError as exc:
            tail = self.log_path.read_text(errors="replace").strip().splitlines()[-3:]
            self.stop()
            raise RuntimeError(f"LiteLLM proxy {exc}: {' | '.join(tail)[-400:]}") from None

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.log.close()


# --- the benchmark ---------------------------------------------------------------------------


def _principal(dynamodb) -> str:
    from bench.bench_proxy_rps import _principal as bench_principal

    return bench_principal(dynamodb)  # all three limits set, far above what this sends


def _ours(upstream: Helper, workdir: Path) -> tuple[list[dict], dict]:
    import boto3

    from portal import emulator
    from proxy import contract

    for name, value in (
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ):
        os.environ.setdefault(name, value)
    werkzeug = logging.getLogger("werkzeug")  # the emulator's access log: a line per call
    level = werkzeug.level
    werkzeug.setLevel(logging.WARNING)
    moto = emulator.start(_free_port())
    helper = None
    try:
        endpoint = "http://{}:{}".format(*moto.get_host_and_port())
        # moto keeps its state per process: start empty, whatever ran before in this process
        reset = urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST")
        urllib.request.urlopen(reset, timeout=30).close()  # loopback only
        dynamodb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
        contract.create_tables(dynamodb)
        token = _principal(dynamodb)
        env = {
            **os.environ,
            "AWS_ENDPOINT_URL": endpoint,
            "PROXY_BEDROCK": "on",
            "USAGE_EVENTS_DIR": str(workdir / "usage-events"),
            "PYTHONPATH": str(ROOT),
        }
        helper = Helper(
            ["ours", "--upstream", f"http://127.0.0.1:{upstream.port}"],
            env,
            workdir / "ours.log",
        )
        upstream.dump()
        # The emulator shares this process's heap. moto copies every table a transaction
        # touches (its rollback) and leaves the copies as cyclic garbage, which only full
        # collections free: with the startup heap (moto, botocore's models; ~140,000 objects)
        # they paused the emulator 80 to 110 ms, twice in 200 streams, and alone made our p99.
        # Frozen, full collections skip the startup heap: they still run, shorter.
        gc.collect()
        gc.freeze()
        results = sequential(helper.port, token, SEQUENTIAL, WARM)
        calls = helper.dump()
        first_bytes = upstream.dump()
        legs = added_latency(results, first_bytes)
        before_ms, per_stream, operations = dynamodb_per_stream(results, calls)
        failed_calls = sum(1 for c in calls if c[3])
        load = concurrent(helper.port, token, CONCURRENT)
        load_calls = helper.dump()
        upstream.dump()
    finally:
        gc.unfreeze()
        if helper is not None:
            helper.stop()
        moto.stop()
        werkzeug.setLevel(level)
    before = Counter(
        c[0]
        for r in results
        for c in calls
        if c[1] is not None and r["sent"] <= c[1] and c[2] <= r["first"]
    )
    without = [a - d for a, d in zip(legs["added"], before_ms, strict=True)]
    stats = {
        "added": _p(legs["added"]),
        "to_upstream": _p(legs["to_upstream"]),
        "relay": _p(legs["relay"]),
        "dynamodb": _p(before_ms),
        "without": _p(without),
        "before_calls": ", ".join(f"{n / len(results):g} {op}" for op, n in before.items()),
        "per_stream": statistics.mean(per_stream),
        "operations": operations,
        "failed_calls": failed_calls,
        "load": load,
        "load_calls": len(load_calls) / CONCURRENT,
    }
    return _our_rows(stats), stats


def _our_rows(s: dict) -> list[dict]:
    ops = ", ".join(f"{op} {n / SEQUENTIAL:g}" for op, n in sorted(s["operations"].items()))
    load = s["load"]
    detail = "; ".join(f"{k} x{v}" for k, v in load["failures"].items())
    return [
        {
            "name": f"local runner, stream: true ({DELTAS} deltas {GAP_MS:g} ms apart from a fake "
            "Bedrock ConverseStream): added latency to the first content byte (the client's "
            "time to its first content chunk minus the upstream's own time to its first byte), "
            f"p50 / p99 of {SEQUENTIAL} sequential warm streams (p50 legs: to the upstream "
            f"{s['to_upstream'][0]:.2f} ms, relaying the first event {s['relay'][0]:.2f} ms)",
            "value": _fmt(s["added"]),
            "unit": "ms",
            "goal": "",
        },
        {
            "name": f"  of which DynamoDB before the first byte ({s['before_calls']} per stream, "
            "to the emulator; botocore before-call to after-call), p50 / p99",
            "value": _fmt(s["dynamodb"]),
            "unit": "ms",
            "goal": "",
        },
        {
            "name": "  added latency without those DynamoDB calls, p50 / p99",
            "value": _fmt(s["without"]),
            "unit": "ms",
            "goal": "",
        },
        {
            "name": f"  DynamoDB calls per stream, settlement included ({ops}; "
            f"{s['failed_calls']} failed)",
            "value": f"{s['per_stream']:g}",
            "unit": "calls",
            "goal": "<= 2",
            "met": s["per_stream"] <= 2 and not s["failed_calls"],
        },
        {
            "name": f"local runner: {CONCURRENT} concurrent streams (a client thread and "
            f"connection each): errors ({load['resets']} connection resets among them; "
            f"all done in {load['seconds']:.1f} s; "
            f"{s['load_calls']:g} DynamoDB calls per stream)" + (f": {detail}" if detail else ""),
            "value": str(load["errors"]),
            "unit": "errors",
            "goal": "0",
            "met": load["errors"] == 0,
        },
    ]


def _litellm_streams(
    executable: Path, upstream: Helper, workdir: Path, params: dict, load: bool
) -> tuple[dict, dict | None]:
    """LiteLLM with `params` added to the model's litellm_params: the legs of SEQUENTIAL
    streams (p50, p99 each) and, when `load`, the CONCURRENT streams' outcome."""
    litellm = LiteLLM(executable, upstream.port, workdir, params)
    try:
        upstream.dump()
        results = sequential(litellm.port, LITELLM_MASTER_KEY, SEQUENTIAL, WARM)
        legs = added_latency(results, upstream.dump())
        outcome = concurrent(litellm.port, LITELLM_MASTER_KEY, CONCURRENT) if load else None
        upstream.dump()
    finally:
        litellm.stop()
    return {name: _p(values) for name, values in legs.items()}, outcome


def _litellm(upstream: Helper, workdir: Path, ours: dict | None) -> list[dict]:
    label = f"LiteLLM proxy {LITELLM_VERSION} (uvicorn, 1 worker; master key, no database"
    label += ": no key lookup, no limits, no spend tracking)"

    def note(text: str) -> list[dict]:
        return [{"name": f"{label}: {text}", "value": "-", "unit": "", "goal": ""}]

    if SKIP_LITELLM:
        return note("skipped (BENCH_SKIP_LITELLM=1)")
    executable, why = ensure_litellm()
    if executable is None:
        return note(f"not installed: {why}")
    rows: list[dict] = []
    runs = (
        ("default", {}, True),
        (f"stream_chunk_size: {TUNED_CHUNK}", {"stream_chunk_size": TUNED_CHUNK}, False),
    )
    for number, (tag, params, load) in enumerate(runs):
        try:
            theirs, outcome = _litellm_streams(
                executable, upstream, workdir / f"litellm-{number}", params, load
            )
        except (RuntimeError, OSError, http.client.HTTPException, StreamFailed) as exc:
            rows += note(f"{tag}: failed: {str(exc)[:400]}")
            continue
        added = theirs["added"]
        rows.append(
            {
                "name": f"{label}, {tag}, same fake upstream: added latency to the first "
                f"content byte, p50 / p99 of {SEQUENTIAL} sequential warm streams (p50 legs: "
                f"to the upstream {theirs['to_upstream'][0]:.2f} ms, relaying the first event "
                f"{theirs['relay'][0]:.2f} ms)",
                "value": _fmt(added),
                "unit": "ms",
                "goal": "",
            }
        )
        if ours is not None:
            mine, without = ours["added"], ours["without"]
            rows += [
                {
                    "name": f"  LiteLLM ({tag}) / ours with its DynamoDB admission "
                    f"({mine[0]:.2f} / {mine[1]:.2f} ms, of which DynamoDB "
                    f"{ours['dynamodb'][0]:.2f} / {ours['dynamodb'][1]:.2f} ms), p50 / p99",
                    "value": f"{added[0] / mine[0]:.2f} / {added[1] / mine[1]:.2f}",
                    "unit": "x",
                    "goal": "",
                },
                {
                    "name": f"  LiteLLM ({tag}) / ours without our DynamoDB calls "
                    f"({without[0]:.2f} / {without[1]:.2f} ms), p50 / p99",
                    "value": f"{added[0] / without[0]:.2f} / {added[1] / without[1]:.2f}",
                    "unit": "x",
                    "goal": "",
                },
            ]
        if outcome is not None:
            detail = "; ".join(f"{k} x{v}" for k, v in outcome["failures"].items())
            rows.append(
                {
                    "name": f"{label}, {tag}: {CONCURRENT} concurrent streams: errors "
                    f"({outcome['resets']} connection resets among them; all done in "
                    f"{outcome['seconds']:.1f} s)" + (f": {detail}" if detail else ""),
                    "value": str(outcome["errors"]),
                    "unit": "errors",
                    "goal": "",
                }
            )
    return rows


def run() -> list[dict]:
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="bench-stream-http-") as tmp:
        workdir = Path(tmp)
        upstream = Helper(
            ["upstream", "--deltas", str(DELTAS), "--gap-ms", str(GAP_MS)],
            {**os.environ, "PYTHONPATH": str(ROOT)},
            workdir / "upstream.log",
        )
        try:
            ours_rows, ours = _ours(upstream, workdir)
            rows += ours_rows
            rows += _litellm(upstream, workdir, ours)
        finally:
            upstream.stop()
    return rows


def main() -> int:
    print("| measure | value | unit | goal | met |")
    print("|---|---|---|---|---|")
    for row in run():
        met = "" if row.get("met") is None else ("yes" if row["met"] else "**no**")
        print(f"| {row['name']} | {row['value']} | {row['unit']} | {row['goal']} | {met} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
