"""End to end: the real proxy handler serves requests (sandbox model), writing its counters to
(moto) DynamoDB and its events to local files; the portal ingests the day with DuckDB, and the
billed totals match the counters exactly (reconciliation finds no difference)."""

import datetime as dt
import json
import time
import uuid

import pytest

from proxy import contract, handler
from proxy.config import Settings
from usage.duckdb_engine import DuckDBEngine
from usage.models import UsageDaily, UsageDifference
from usage.selectors import realtime_usage, usage_totals
from usage.services import reconcile_day, usage_day_replace


class _Quiet:
    def write(self, text):
        pass

    def flush(self):
        pass


@pytest.fixture
def proxy_app(dynamodb, events_dir, customer):
    contract.put_customer(
        dynamodb,
        contract.CustomerItem(
            customer_id=str(customer.pk), version=1, status="active", name=customer.name
        ),
    )
    token = contract.generate_token()
    contract.put_token(
        dynamodb,
        contract.TokenItem(
            token_hash=contract.hash_token(token),
            version=1,
            token_id=str(uuid.uuid4()),
            customer_id=str(customer.pk),
            display_prefix=token[:8],
            status="active",
            expires_at=int(time.time()) + 3600,
        ),
    )
    settings = Settings(
        tables=contract.table_names(), usage_events_dir=str(events_dir), bedrock_enabled=False
    )
    app = handler.ProxyApp(settings, dynamodb=dynamodb, bedrock=None, s3=None, stream=_Quiet())
    return app, token


def _call(app, token, text, app_id):
    body = {
        "model": "sandbox.echo-v1",
        "messages": [{"role": "user", "content": text}],
        "metadata": {"applicationId": app_id},
    }
    response = app.handle(
        {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": "/v1/chat/completions",
            "rawQueryString": "",
            "headers": {
                "content-type": "application/json",
                "authorization": f"Bearer {token}",
                "x-cost-center": "cc-7",
            },
            "requestContext": {
                "http": {
                    "method": "POST",
                    "path": "/v1/chat/completions",
                    "sourceIp": "127.0.0.1",
                },
                "requestId": str(uuid.uuid4()),
            },
            "body": json.dumps(body),
            "isBase64Encoded": False,
        }
    )
    assert response["statusCode"] == 200, response["body"]


def test_ingested_day_matches_the_proxy_counters(proxy_app, dynamodb, customer):
    app, token = proxy_app
    for n in range(5):
        _call(app, token, "hello " * (n + 1), "search" if n % 2 else "chat")
    today = dt.datetime.now(dt.UTC).date()

    usage_day_replace(day=today, rows=DuckDBEngine().daily_rows(today), engine="duckdb")
    differences = reconcile_day(day=today, client=dynamodb)

    assert differences == 0 and not UsageDifference.objects.exists()
    billed = usage_totals(customer_id=customer.pk, start=today, end=today)
    live = realtime_usage(customer=customer, today=today, client=dynamodb)
    assert billed["requests"] == live["today"].requests == 5
    assert billed["input_tokens"] == live["today"].input_tokens > 0
    assert billed["output_tokens"] == live["today"].output_tokens > 0
    apps = set(UsageDaily.objects.values_list("application_id", flat=True))
    assert apps == {"chat", "search"}
    assert set(UsageDaily.objects.values_list("model_id", flat=True)) == {"sandbox.echo-v1"}
    assert set(UsageDaily.objects.values_list("cost_center", flat=True)) == {"cc-7"}


def test_live_snapshot_is_two_queries_and_carries_the_quota_count(dynamodb, customer):
    from usage.counters import customer_snapshot

    from .conftest import put_counter

    today = dt.date(2026, 11, 24)
    put_counter(dynamodb, customer.pk, "DAY#2026-11-24", requests=3, input_tokens=30)
    put_counter(dynamodb, customer.pk, "DAY#2026-11-24#MODEL#model-a", requests=3, input_tokens=30)
    put_counter(
        dynamodb, customer.pk, "MONTH#2026-11", requests=9, input_tokens=500, quota_tokens=400
    )
    put_counter(dynamodb, customer.pk, "MONTH#2026-11#MODEL#model-a", requests=9, input_tokens=500)
    calls = []
    dynamodb.meta.events.register(
        "before-call.dynamodb", lambda model, **kw: calls.append(model.name)
    )

    snapshot = customer_snapshot(customer.pk, today=today, client=dynamodb)

    assert calls == ["Query", "Query"]
    assert snapshot["today"].requests == 3 and snapshot["today"].quota_tokens is None
    assert snapshot["month"].tokens == 500 and snapshot["month"].quota_used == 400
    assert [(model, t.requests) for model, t in snapshot["today_by_model"]] == [("model-a", 3)]
