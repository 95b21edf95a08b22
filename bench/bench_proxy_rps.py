"""Benchmark: proxy requests per second with the sandbox model, and DynamoDB calls per request.

Two ways, both on loopback only and bounded by BENCH_PROXY_SECONDS (default 10) and
BENCH_PROXY_MAX_REQUESTS (default 20,000):

- through the local runner (`python -m proxy.local`) when the repository has it: the runner in
  a subprocess on a free 127.0.0.1 port, DynamoDB on a loopback moto server, BENCH_PROXY_CLIENTS
  client threads (default 4) sending OpenAI-style chat completions over HTTP keep-alive;
- the Lambda handler itself (`ProxyApp.handle`, what `lambda_handler` calls), one warm container
  in-process, API Gateway v2 events, DynamoDB in-process moto. A botocore hook counts the
  DynamoDB calls of each warm request by operation.

moto stands in for DynamoDB in both, so the figures are the proxy's own cost plus an emulator's,
not AWS latency; the calls per request are what carries over to AWS.

    .venv/bin/python -m bench.bench_proxy_rps
"""

import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECONDS = float(os.environ.get("BENCH_PROXY_SECONDS", "10"))
MAX_REQUESTS = int(os.environ.get("BENCH_PROXY_MAX_REQUESTS", "20000"))
CLIENTS = int(os.environ.get("BENCH_PROXY_CLIENTS", "4"))
MODEL = "sandbox.echo-v1"
GOAL_DYNAMODB_CALLS = 2
BODY = {"model": MODEL, "messages": [{"role": "user", "content": "Hello from the benchmark"}]}


class _Discard:
    def write(self, text):
        return len(text)

    def flush(self):
        pass


def _aws_env() -> None:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")


def _principal(dynamodb) -> str:
    """A customer with limits (so every limit path runs) and one token; returns the token."""
    from proxy import contract

    customer = contract.CustomerItem(
        customer_id=str(uuid.uuid4()),
        version=1,
        status="active",
        name="Bench proxy customer",
        daily_request_limit=10_000_000,
        monthly_token_quota=10_000_000_000,
        rpm_limit=10_000_000,
    )
    contract.put_customer(dynamodb, customer)
    token = contract.generate_token()
    contract.put_token(
        dynamodb,
        contract.TokenItem(
            token_hash=contract.hash_token(token),
            version=1,
            token_id=str(uuid.uuid4()),
            customer_id=customer.customer_id,
            display_prefix=token[:8],
            status="active",
            expires_at=int(time.time()) + 86_400,
        ),
    )
    return token


def _event(token: str) -> dict:
    path = "/v1/chat/completions"
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": "",
        "headers": {"content-type": "application/json", "authorization": f"Bearer {token}"},
        "requestContext": {
            "http": {"method": "POST", "path": path, "sourceIp": "127.0.0.1"},
            "requestId": str(uuid.uuid4()),
        },
        "body": json.dumps(BODY),
        "isBase64Encoded": False,
    }


def _percentile(values, percent):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(percent / 100 * (len(ordered) - 1)))]


def bench_handler(seconds: float = SECONDS, max_requests: int = MAX_REQUESTS) -> list[dict]:
    import boto3
    from moto import mock_aws

    from proxy import contract, handler
    from proxy.config import Settings

    _aws_env()
    os.environ.pop("AWS_ENDPOINT_URL", None)
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        contract.create_tables(dynamodb)
        token = _principal(dynamodb)
        calls = Counter()
        dynamodb.meta.events.register(
            "before-call.dynamodb", lambda model, **kw: calls.update([model.name])
        )
        settings = Settings(tables=contract.table_names(), bedrock_enabled=False)
        app = handler.ProxyApp(settings, dynamodb=dynamodb, bedrock=None, stream=_Discard())
        for _ in range(20):  # warm: caches filled, code paths loaded
            assert app.handle(_event(token))["statusCode"] == 200
        calls.clear()
        times, started = [], time.perf_counter()
        while len(times) < max_requests and time.perf_counter() - started < seconds:
            event = _event(token)
            t0 = time.perf_counter()
            response = app.handle(event)
            times.append(time.perf_counter() - t0)
            if response["statusCode"] != 200:
                raise AssertionError(response)
        elapsed = time.perf_counter() - started
    per_request = sum(calls.values()) / len(times)
    by_operation = ", ".join(f"{op} {n / len(times):g}" for op, n in sorted(calls.items()))
    return [
        {
            "name": f"handler in-process (one warm container, moto in-process), {MODEL}: "
            f"requests/s ({len(times):,} requests in {elapsed:.1f} s)",
            "value": f"{len(times) / elapsed:,.0f}",
            "unit": "req/s",
            "goal": "",
        },
        {
            "name": "  handler time per request incl. moto, p50 / p95",
            "value": f"{statistics.median(times) * 1000:.2f} / {_percentile(times, 95) * 1000:.2f}",
            "unit": "ms",
            "goal": "",
        },
        {
            "name": f"  DynamoDB calls per warm request ({by_operation})",
            "value": f"{per_request:g}",
            "unit": "calls",
            "goal": f"<= {GOAL_DYNAMODB_CALLS}",
            "met": per_request <= GOAL_DYNAMODB_CALLS,
        },
    ]


def local_runner_available() -> bool:
    return importlib.util.find_spec("proxy.local") is not None


def run() -> list[dict]:
    rows = []
    if local_runner_available():
        from bench import proxy_http

        rows += proxy_http.bench_local_runner(seconds=SECONDS, clients=CLIENTS)
    else:
        rows.append(
            {
                "name": "local runner (python -m proxy.local): not in the repository yet",
                "value": "-",
                "unit": "",
                "goal": "",
            }
        )
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_proxy_rps", "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SECONDS + 300,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return rows + json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if "--json" in sys.argv:
        print(json.dumps(bench_handler()))
    else:
        print("| measure | value | unit | goal | met |\n|---|---|---|---|---|")
        for r in run():
            met = "" if r.get("met") is None else ("yes" if r["met"] else "**no**")
            print(f"| {r['name']} | {r['value']} | {r['unit']} | {r['goal']} | {met} |")
