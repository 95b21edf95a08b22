"""Benchmark: the proxy handler's own time per warm request, and DynamoDB calls per request.

1. DynamoDB calls per warm request: the real handler with a real boto3 client against moto
   (in-process), counted with botocore's `before-call` event hook. Goal <= 2.
2. Handler overhead excluding I/O: the same handler with DynamoDB, Bedrock and S3 replaced at
   the client level by objects that answer at once (no botocore, no network), so what is timed
   is auth from the cache, routing, parsing, the transaction's construction, the Converse
   mapping, rendering and the usage event (JSON to a buffer). Warm p50 / p99. Goal < 1 ms.
   The customer has all three limits set (the admission transaction then has all its items).
   The row "with per-token limits, TPM and money on" adds tokens per minute on the customer, all
   of a token's own limits (daily, per minute, monthly quota, tokens per minute, models, a money
   budget), a money budget on the customer and prepaid credit: the admission then has 9 items
   and the usage transaction 8 (the token's last-use item is written once a minute), still one
   call each (the prices are read once, then cached).
   Wall time on a shared machine includes the moments the OS gives the core to another
   process, so the p99 is also given in this thread's CPU time, which only counts the handler.

    .venv/bin/python bench/bench_proxy.py        # prints a markdown table
"""

from __future__ import annotations

import io
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from proxy import contract, handler
from proxy.config import Settings

WARM_REQUESTS = int(os.environ.get("BENCH_PROXY_REQUESTS", "5000"))
COUNTED_REQUESTS = 50


def _event(token: str, body: dict) -> dict:
    return {
        "version": "2.0",
        "rawPath": "/v1/chat/completions",
        "headers": {"authorization": f"Bearer {token}", "content-type": "application/json"},
        "requestContext": {
            "http": {"method": "POST", "path": "/v1/chat/completions", "sourceIp": "203.0.113.7"},
            "requestId": str(uuid.uuid4()),
        },
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


BODY = {
    "model": "nova-lite",
    "messages": [{"role": "user", "content": "What is the capital of France?"}],
    "max_tokens": 100,
}
CONVERSE_ANSWER = {
    "output": {"message": {"role": "assistant", "content": [{"text": "Paris."}]}},
    "stopReason": "end_turn",
    "usage": {"inputTokens": 12, "outputTokens": 3, "totalTokens": 15},
    "metrics": {"latencyMs": 300},
}


PRICE = contract.PriceItem(
    model_id="amazon.nova-lite-v1:0",
    version=1,
    currency="USD",
    current=contract.PriceRates(
        effective_from=0,
        input_per_1k=60,
        output_per_1k=240,
        cache_read_per_1k=60,
        cache_write_per_1k=60,
        per_request=0,
    ),
)


class InstantPaginator:
    def paginate(self, **kwargs):
        yield {"Items": [contract.price_attributes(PRICE)]}


class InstantDynamoDB:
    """Answers like DynamoDB would for a warm, admitted request, without any I/O."""

    def __init__(self, customer: contract.CustomerItem, token: contract.TokenItem):
        self.customer, self.token, self.calls = customer, token, 0
        self.sizes: set[int] = set()  # items per transaction seen

    def get_paginator(self, name):
        self.calls += 1
        return InstantPaginator()

    def get_item(self, TableName, Key, **kwargs):
        self.calls += 1
        item = self.token if "token_hash" in Key else self.customer
        return {"Item": contract._serialize(item)}

    def transact_write_items(self, TransactItems, **kwargs):
        self.calls += 1
        self.sizes.add(len(TransactItems))
        return {}


class InstantBedrock:
    def converse(self, **kwargs):
        return CONVERSE_ANSWER


def _items(limit: int | None = None, token_limits: bool = False):
    customer = contract.CustomerItem(
        customer_id=str(uuid.uuid4()),
        version=1,
        status="active",
        name="Bench",
        daily_request_limit=limit,
        rpm_limit=limit,
        monthly_token_quota=limit,
        tpm_limit=limit if token_limits else None,
        monthly_budget_micros=limit * 10**6 if token_limits else None,
        prepaid=token_limits,
    )
    token = contract.generate_token()
    own = {}
    if token_limits and limit:
        own = {
            "daily_request_limit": limit // 2,
            "rpm_limit": limit // 2,
            "monthly_token_quota": limit // 2,
            "tpm_limit": limit // 2,
            "allowed_models": ["nova-lite", "nova-micro"],
            "monthly_budget_micros": limit * 10**6 // 2,
        }
    item = contract.TokenItem(
        token_hash=contract.hash_token(token),
        version=1,
        token_id=str(uuid.uuid4()),
        customer_id=customer.customer_id,
        display_prefix=token[:8],
        status="active",
        expires_at=None,
        **own,
    )
    return token, customer, item


def dynamodb_calls_per_warm_request(token_limits: bool = False) -> float:
    import boto3
    from moto import mock_aws

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        contract.create_tables(client)
        token, customer, item = _items(limit=1_000_000, token_limits=token_limits)
        contract.put_customer(client, customer)
        contract.put_token(client, item)
        contract.put_price(client, PRICE)
        contract.put_credit(client, customer.customer_id, 10**15, 1)
        app = handler.ProxyApp(
            Settings(tables=contract.table_names()),
            dynamodb=client,
            bedrock=InstantBedrock(),
            stream=io.StringIO(),
        )
        assert app.handle(_event(token, BODY))["statusCode"] == 200  # cold: three reads
        calls = []
        client.meta.events.register(
            "before-call.dynamodb", lambda model, **kw: calls.append(model.name)
        )
        for _ in range(COUNTED_REQUESTS):
            assert app.handle(_event(token, BODY))["statusCode"] == 200
        return len(calls) / COUNTED_REQUESTS


def handler_overhead() -> tuple[float, float]:
    """Warm wall-clock p50 and p99 in ms."""
    wall, _ = _overhead_samples()
    return _percentiles(wall)


def _percentiles(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.99) - 1)]


def _overhead_samples(token_limits: bool = False) -> tuple[list[float], list[float]]:
    """Per warm request: (wall ms, this thread's CPU ms)."""
    token, customer, item = _items(limit=1_000_000, token_limits=token_limits)
    dynamodb = InstantDynamoDB(customer, item)
    app = handler.ProxyApp(
        Settings(tables=contract.table_names()),
        dynamodb=dynamodb,
        bedrock=InstantBedrock(),
        stream=io.StringIO(),
    )
    events = [_event(token, BODY) for _ in range(WARM_REQUESTS + 200)]
    for event in events[:200]:  # warm: cache filled, code paths hot
        app.handle(event)
        app.sink.stream.seek(0)
        app.sink.stream.truncate()
    wall, cpu = [], []
    for event in events[200:]:
        started, started_cpu = time.perf_counter_ns(), time.thread_time_ns()
        response = app.handle(event)
        cpu.append((time.thread_time_ns() - started_cpu) / 1e6)
        wall.append((time.perf_counter_ns() - started) / 1e6)
        if response["statusCode"] != 200:
            raise RuntimeError(response["body"])
        app.sink.stream.seek(0)
        app.sink.stream.truncate()
    # What was timed: admission and usage with every item of the limits set.
    expected = {9, 8} if token_limits else {5, 4}
    if dynamodb.sizes != expected:
        raise RuntimeError(f"transactions of {dynamodb.sizes} items, expected {expected}")
    return wall, cpu


def run() -> list[dict]:
    calls = dynamodb_calls_per_warm_request()
    wall, cpu = _overhead_samples()
    p50, p99 = _percentiles(wall)
    cpu_p50, cpu_p99 = _percentiles(cpu)
    calls_all = dynamodb_calls_per_warm_request(token_limits=True)
    wall_all, cpu_all = _overhead_samples(token_limits=True)
    p50_all, p99_all = _percentiles(wall_all)
    cpu_p50_all, cpu_p99_all = _percentiles(cpu_all)
    return [
        {
            "name": "DynamoDB calls per warm request",
            "value": f"{calls:g}",
            "unit": "calls",
            "goal": "<= 2",
            "met": calls <= 2,
        },
        {
            "name": "warm handler time excl. I/O, p50",
            "value": f"{p50:.3f}",
            "unit": "ms",
            "goal": "< 1",
            "met": p50 < 1,
        },
        {
            "name": "warm handler time excl. I/O, p99",
            "value": f"{p99:.3f}",
            "unit": "ms",
            "goal": "< 1",
            "met": p99 < 1,
        },
        {
            "name": "warm handler CPU time excl. I/O, p50 / p99 (this thread only)",
            "value": f"{cpu_p50:.3f} / {cpu_p99:.3f}",
            "unit": "ms",
            "goal": "< 1",
            "met": cpu_p99 < 1,
        },
        {
            "name": "with per-token limits, TPM and money on: DynamoDB calls per warm request",
            "value": f"{calls_all:g}",
            "unit": "calls",
            "goal": "<= 2",
            "met": calls_all <= 2,
        },
        {
            "name": (
                "with per-token limits, TPM and money on: warm handler time excl. I/O, p50 / p99"
            ),
            "value": f"{p50_all:.3f} / {p99_all:.3f}",
            "unit": "ms",
            "goal": "p50 < 1",
            "met": p50_all < 1,
        },
        {
            "name": "with per-token limits, TPM and money on: warm handler CPU time, p50 / p99",
            "value": f"{cpu_p50_all:.3f} / {cpu_p99_all:.3f}",
            "unit": "ms",
            "goal": "< 1",
            "met": cpu_p99_all < 1,
        },
    ]


def main() -> int:
    rows = run()
    print("| measure | value | unit | goal | met |")
    print("|---|---|---|---|---|")
    for row in rows:
        met = "yes" if row["met"] else "**no**"
        print(f"| {row['name']} | {row['value']} | {row['unit']} | {row['goal']} | {met} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
