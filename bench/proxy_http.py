"""The proxy through its local runner (`python -m proxy.local`) over HTTP on loopback.

Used by bench_proxy_rps. DynamoDB is a moto server on a free 127.0.0.1 port in this process;
its access log (one `POST /` line per DynamoDB call) counts the calls per request.
"""

import json
import logging
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class _CallCounter(logging.Handler):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def emit(self, record):
        if '"POST / ' in record.getMessage():
            self.calls += 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, process, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"proxy.local exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError("proxy.local did not listen")


def _send(url: str, token: str, body: bytes) -> int:
    request = urllib.request.Request(  # loopback only
        url,
        data=body,
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def bench_local_runner(*, seconds: float, clients: int) -> list[dict]:
    import boto3

    from bench.bench_proxy_rps import BODY, GOAL_DYNAMODB_CALLS, MODEL, _aws_env, _principal
    from portal import emulator
    from proxy import contract

    _aws_env()
    counter = _CallCounter()
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.setLevel(logging.INFO)
    werkzeug.propagate = False
    werkzeug.addHandler(counter)
    moto_port = _free_port()
    moto = emulator.start(moto_port)  # as `make run` starts it
    endpoint = f"http://127.0.0.1:{moto_port}"
    runner = None
    try:
        dynamodb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=endpoint)
        contract.create_tables(dynamodb)
        token = _principal(dynamodb)
        port = _free_port()
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **os.environ,
                "AWS_ENDPOINT_URL": endpoint,
                "PROXY_BEDROCK": "off",
                "USAGE_EVENTS_DIR": tmp,
                "PYTHONPATH": str(ROOT),
            }
            runner = subprocess.Popen(
                [sys.executable, "-m", "proxy.local", "--port", str(port), "--tls-port", "0"],
                env=env,
                cwd=tmp,  # no .env of the portal, no files under the repository
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            _wait_for_port(port, runner)
            url = f"http://127.0.0.1:{port}/v1/chat/completions"
            body = json.dumps(BODY).encode()
            for _ in range(20):
                assert _send(url, token, body) == 200
            counter.calls = 0
            times, statuses, lock = [], [], threading.Lock()
            ends = time.monotonic() + seconds

            def client():
                while time.monotonic() < ends:
                    started = time.perf_counter()
                    status = _send(url, token, body)
                    with lock:
                        times.append(time.perf_counter() - started)
                        statuses.append(status)

            started = time.perf_counter()
            threads = [threading.Thread(target=client) for _ in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=seconds + 30)
            elapsed = time.perf_counter() - started
            calls = counter.calls
    finally:
        if runner is not None and runner.poll() is None:
            runner.terminate()
            runner.wait(timeout=10)
        moto.stop()
        werkzeug.removeHandler(counter)
    errors = sum(1 for s in statuses if s != 200)
    per_request = calls / len(statuses)
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return [
        {
            "name": f"local runner (python -m proxy.local) over HTTP, {clients} clients, {MODEL},"
            f" DynamoDB on a loopback moto server: requests/s ({len(statuses):,} requests in"
            f" {elapsed:.1f} s, {errors} errors)",
            "value": f"{len(statuses) / elapsed:,.0f}",
            "unit": "req/s",
            "goal": "0 errors",
            "met": errors == 0,
        },
        {
            "name": "  latency seen by the client, p50 / p95",
            "value": f"{statistics.median(times) * 1000:.1f} / {p95 * 1000:.1f}",
            "unit": "ms",
            "goal": "",
        },
        {
            "name": "  DynamoDB calls per warm request (moto server access log)",
            "value": f"{per_request:.2f}",
            "unit": "calls",
            "goal": f"<= {GOAL_DYNAMODB_CALLS}",
            "met": per_request <= GOAL_DYNAMODB_CALLS + 0.005,
        },
    ]
