"""The production path: Athena through moto, with query results injected via moto's API."""

import datetime as dt

import boto3
import pytest
from moto import mock_aws
from moto.core import DEFAULT_ACCOUNT_ID
from moto.moto_api import state_manager
from moto.moto_api._internal.models import moto_api_backend

from customers.models import Token
from customers.services import token_create
from proxy import contract
from usage.athena import AthenaEngine, AthenaQueryError, AthenaTimeout
from usage.models import (
    IngestedDay,
    IngestRun,
    UsageDaily,
    UsageDifference,
    UsageHourly,
    UsageUserDaily,
)
from usage.query import (
    OPERATIONS_RESULT_COLUMNS,
    RESULT_COLUMNS,
    TOKEN_LAST_USED_SQL,
    USER_RESULT_COLUMNS,
)
from usage.selectors import usage_totals
from usage.services import ingest_run_create, ingest_run_execute, usage_day_replace

DAY = dt.date(2026, 11, 20)
COLUMNS = list(RESULT_COLUMNS)
USER_COLUMNS = list(USER_RESULT_COLUMNS)
OPERATIONS_COLUMNS = list(OPERATIONS_RESULT_COLUMNS)


@pytest.fixture
def athena(settings):
    settings.AWS_ENDPOINT_URL = None
    settings.ATHENA_DATABASE = "bedrock_usage"
    settings.ATHENA_TABLE = "usage_events"
    settings.ATHENA_WORKGROUP = "primary"
    settings.ATHENA_OUTPUT_LOCATION = "s3://athena-results-test/out/"
    with mock_aws():
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="athena-results-test")
        yield boto3.client("athena", region_name="us-east-1")
    state_manager.unset_transition("athena::execution")


def _row(values):
    return {"Data": [{"VarCharValue": str(v)} if v is not None else {} for v in values]}


def inject_results(data_rows, columns=COLUMNS):
    """Queue one query result (header row first, as Athena returns it) in moto, in process
    (what moto's /moto-api/static/athena/query-results endpoint does, without an HTTP call).
    Each started query takes the next queued result. A row shorter than the columns ends with
    invalid_column "" (events whose counts all passed the SQL's check)."""
    rows = [tuple(r) + ("",) * (len(columns) - len(r)) for r in data_rows]
    moto_api_backend.set_athena_result(
        rows=[_row(columns), *(_row(r) for r in rows)],
        column_info=[{"Name": c, "Type": "varchar"} for c in columns],
        account_id=DEFAULT_ACCOUNT_ID,
        region="us-east-1",
    )


class Recorder:
    """The moto client, recording calls; optionally serving results in pages like Athena."""

    def __init__(self, client, page_size=None):
        self.client, self.page_size, self.calls = client, page_size, []

    def __getattr__(self, name):
        method = getattr(self.client, name)

        def call(**kwargs):
            self.calls.append((name, kwargs))
            if name == "get_query_results" and self.page_size:
                return self._page(method, **kwargs)
            return method(**kwargs)

        return call

    def _page(self, method, *, QueryExecutionId, MaxResults, NextToken=None):
        full = method(QueryExecutionId=QueryExecutionId)
        rows = full["ResultSet"]["Rows"]
        start = int(NextToken or 0)
        end = start + min(self.page_size, MaxResults)
        page = {**full, "ResultSet": {**full["ResultSet"], "Rows": rows[start:end]}}
        if end < len(rows):
            page["NextToken"] = str(end)
        return page


def _engine(client, **kwargs):
    sleeps = []
    engine = AthenaEngine(client, sleep=sleeps.append, **kwargs)
    return engine, sleeps


def test_day_is_queried_polled_and_upserted(athena, customer):
    state_manager.set_transition("athena::execution", {"progression": "manual", "times": 2})
    inject_results(
        [
            (customer.pk, "haiku-model", "chatbot", "cc-1", "prod", 3, 300, 60, 0, 0),
            (customer.pk, "nova-model", None, None, None, 1, 7, 3, 5, 1),
        ]
    )
    client = Recorder(athena)
    engine, sleeps = _engine(client)

    ingested = usage_day_replace(day=DAY, rows=engine.daily_rows(DAY), engine="athena")

    assert (ingested.rows, ingested.requests) == (2, 4)
    nova = UsageDaily.objects.get(model_id="nova-model")
    assert (nova.application_id, nova.cache_read_tokens, nova.cache_write_tokens) == ("", 5, 1)
    name, start = client.calls[0]
    assert name == "start_query_execution"
    sql = start["QueryString"]
    assert 'FROM "bedrock_usage"."usage_events"' in sql
    assert "WHERE year = '2026' AND month = '11' AND day = '20'" in sql
    assert "row_number() OVER (PARTITION BY request_id" in sql and "copy_number = 1" in sql
    assert start["WorkGroup"] == "primary"
    assert start["ResultConfiguration"] == {"OutputLocation": "s3://athena-results-test/out/"}
    polls = [c for c in client.calls if c[0] == "get_query_execution"]
    assert len(polls) == 4  # moto advances one state every 2 polls: 3 waits, then SUCCEEDED
    assert sleeps == [0.5, 1.0, 2.0]  # exponential backoff between polls


def test_results_are_read_page_by_page(athena, customer):
    models = [f"model-{n:04d}" for n in range(2500)]
    inject_results([(customer.pk, m, "", "", "", 1, 10, 1, 0, 0) for m in models])
    client = Recorder(athena, page_size=1000)
    engine, _ = _engine(client)

    ingested = usage_day_replace(day=DAY, rows=engine.daily_rows(DAY), engine="athena")

    pages = [kw for name, kw in client.calls if name == "get_query_results"]
    assert [p.get("NextToken") for p in pages] == [None, "1000", "2000"]
    assert all(p["MaxResults"] == 1000 for p in pages)
    assert ingested.rows == 2500  # the header row of page one is not data
    assert usage_totals(customer_id=customer.pk, start=DAY, end=DAY)["input_tokens"] == 25_000


def test_a_query_past_the_timeout_is_cancelled(athena, customer):
    state_manager.set_transition("athena::execution", {"progression": "manual", "times": 1000})
    now = [0.0]
    client = Recorder(athena)
    engine = AthenaEngine(
        client, timeout=30, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0]
    )

    with pytest.raises(AthenaTimeout, match="cancelled"):
        list(engine.daily_rows(DAY))

    execution_id = athena.list_query_executions()["QueryExecutionIds"][0]
    state = athena.get_query_execution(QueryExecutionId=execution_id)["QueryExecution"]["Status"]
    assert state["State"] == "CANCELLED"
    assert any(name == "stop_query_execution" for name, _ in client.calls)


def test_a_failed_query_raises_with_its_reason():
    class Failing:
        def start_query_execution(self, **kw):
            return {"QueryExecutionId": "q-1"}

        def get_query_execution(self, **kw):
            return {
                "QueryExecution": {
                    "Status": {"State": "FAILED", "StateChangeReason": "TABLE_NOT_FOUND"}
                }
            }

    with pytest.raises(AthenaQueryError, match="TABLE_NOT_FOUND"):
        AthenaEngine(Failing(), sleep=lambda s: None).run_query("SELECT 1")


def test_hourly_rule_sql_prunes_to_the_hours_partitions():
    from usage.query import hourly_tokens_sql

    sql = hourly_tokens_sql(
        source='"db"."events"', now=dt.datetime(2027, 1, 1, 0, 10, tzinfo=dt.UTC), minimum=500
    )
    assert "(year = '2027' AND month = '01' AND day = '01')" in sql
    assert "(year = '2026' AND month = '12' AND day = '31')" in sql
    assert "\"timestamp\" >= '2026-12-31T23:00:00'" in sql
    assert 'substr("timestamp", 1, 13) AS hour' in sql and ">= 500" in sql


def test_a_run_on_the_configured_athena_engine(athena, customer, other_customer, settings):
    """The whole path as the nightly task runs it: the engine built from settings (the portal's
    boto3 client), the day queried and loaded, the per-user query, reconciliation."""
    settings.AWS_REGION = "us-east-1"
    counters = boto3.client("dynamodb", region_name="us-east-1")
    contract.create_tables(counters)
    inject_results(
        [
            (customer.pk, "haiku-model", "chatbot", "cc-1", "prod", 3, 300, 60, 0, 0),
            (other_customer.pk, "haiku-model", None, None, None, 2, 20, 2, 0, 0),
        ]
    )
    inject_results([(customer.pk, "chatbot", "alice", "haiku-model", 3, 300, 60)], USER_COLUMNS)
    token = token_create(customer=customer).token
    inject_results([(token.pk, "2026-11-20T17:45:01.250Z")], ["token_id", "last_used"])
    inject_results(
        [
            ("hour", customer.pk, "2026-11-20T17", "haiku-model", 3, 300, 60, 1, 410, 900),
            ("day", customer.pk, None, "haiku-model", 3, None, None, 1, 410, 900),
            ("model", None, None, "haiku-model", 5, None, None, 1, 400, 880),
        ],
        OPERATIONS_COLUMNS,
    )
    run = ingest_run_create(days=[DAY], trigger=IngestRun.Trigger.COMMAND, engine="athena")

    run = ingest_run_execute(run_id=run.pk)

    assert (run.status, run.errors, run.rows_written) == (IngestRun.Status.SUCCEEDED, [], 2)
    assert IngestedDay.objects.get(day=DAY).engine == "athena"
    assert usage_totals(customer_id=customer.pk, start=DAY, end=DAY)["output_tokens"] == 60
    assert UsageUserDaily.objects.get(day=DAY).user_id == "alice"
    executions = athena.list_query_executions()["QueryExecutionIds"]
    queries = [
        athena.get_query_execution(QueryExecutionId=e)["QueryExecution"]["Query"]
        for e in executions
    ]
    assert len(queries) == 4 and all("day = '20'" in q for q in queries)
    assert "approx_percentile(latency_ms, 0.95)" in queries[3]
    assert UsageHourly.objects.get().errors == 1
    assert IngestedDay.objects.get(day=DAY).hourly_rows == 1
    assert Token.objects.get(pk=token.pk).last_used_at == dt.datetime(
        2026, 11, 20, 17, 45, 1, 250_000, tzinfo=dt.UTC
    )
    # No counters were written for that day: both customers are listed as differences.
    assert UsageDifference.objects.filter(day=DAY).count() == 2


def test_token_last_used_query_and_it_only_moves_forward(athena, customer, monkeypatch):
    """Each day's ingest asks Athena for every token's latest event (same SQL text as DuckDB,
    pruned to the day, deduplicated) and moves Token.last_used_at forward only."""
    monkeypatch.setattr("usage.services.reconcile_day", lambda **kw: 0)
    recent, stale, unused = (token_create(customer=customer).token for _ in range(3))
    later = dt.datetime(2026, 11, 25, 8, 0, tzinfo=dt.UTC)
    Token.objects.filter(pk=stale.pk).update(last_used_at=later)
    inject_results([])  # the billed rows: none
    inject_results([], USER_COLUMNS)
    inject_results(
        [
            (recent.pk, "2026-11-20T23:59:59.999Z"),
            (stale.pk, "2026-11-20T10:00:00.000Z"),  # older than what is recorded
            (None, "2026-11-20T10:00:00.000Z"),  # an event without a token id
        ],
        ["token_id", "last_used"],
    )
    inject_results([], OPERATIONS_COLUMNS)
    client = Recorder(athena)
    run = ingest_run_create(days=[DAY], trigger=IngestRun.Trigger.COMMAND, engine="athena")

    run = ingest_run_execute(run_id=run.pk, engine=_engine(client)[0])

    assert (run.status, run.errors) == (IngestRun.Status.SUCCEEDED, [])
    assert Token.objects.get(pk=recent.pk).last_used_at == dt.datetime(
        2026, 11, 20, 23, 59, 59, 999_000, tzinfo=dt.UTC
    )
    assert Token.objects.get(pk=stale.pk).last_used_at == later
    assert Token.objects.get(pk=unused.pk).last_used_at is None
    sql = [kw["QueryString"] for name, kw in client.calls if name == "start_query_execution"][-2]
    assert sql == TOKEN_LAST_USED_SQL.format(
        source='"bedrock_usage"."usage_events"', year="2026", month="11", day="20"
    )
    assert "WHERE year = '2026' AND month = '11' AND day = '20'" in sql
    assert "row_number() OVER (PARTITION BY request_id" in sql and "copy_number = 1" in sql
    assert 'max("timestamp") AS last_used' in sql


def test_hourly_usage_and_latency_from_athena(athena, customer, other_customer):
    """The operations query on Athena: one scan, GROUPING SETS, Trino's approx_percentile, the
    day's partition and deduplication; its three kinds of rows loaded, bad ones quarantined."""
    from usage.models import ModelLatencyDaily, QuarantinedRow, UsageLatencyDaily
    from usage.operations import operations_day_replace

    IngestedDay.objects.create(day=DAY, engine="athena")
    inject_results(
        [
            ("hour", customer.pk, "2026-11-20T09", "haiku", 4, 400, 40, 0, 300, 700),
            ("hour", customer.pk, "2026-11-20T10", "haiku", 2, 200, 20, 1, 350, 900),
            ("hour", other_customer.pk, "2026-11-20T10", "nova", 1, 10, 1, 0, 90, 90),
            ("hour", customer.pk, "2026-11-21T00", "haiku", 1, 1, 1, 0, 5, 5),  # not the day
            ("hour", customer.pk, "2026-11-20T11", "bad\x00model", 1, 1, 1, 0, 5, 5),
            ("day", customer.pk, None, "haiku", 6, 600, 60, 1, 320, 880),
            ("day", other_customer.pk, None, "nova", 1, 10, 1, 0, None, None),
            ("model", None, None, "haiku", 6, 600, 60, 1, 320, 880),
            ("model", None, None, "nova", 1, 10, 1, 0, None, None),
        ],
        OPERATIONS_COLUMNS,
    )
    client = Recorder(athena)
    engine, _ = _engine(client)

    stored = operations_day_replace(day=DAY, rows=engine.operations_rows(DAY))

    sql = client.calls[0][1]["QueryString"]
    assert "WHERE year = '2026' AND month = '11' AND day = '20'" in sql
    assert "GROUP BY GROUPING SETS" in sql and "copy_number = 1" in sql
    assert "approx_percentile(latency_ms, 0.5)" in sql
    assert stored == 3 and IngestedDay.objects.get(day=DAY).hourly_rows == 3
    assert UsageHourly.objects.filter(customer=customer).count() == 2
    haiku = UsageLatencyDaily.objects.get(customer=customer)
    assert (haiku.requests, haiku.errors, haiku.latency_p50_ms, haiku.latency_p95_ms) == (
        6, 1, 320, 880,
    )  # fmt: skip
    assert str(haiku.error_percent) == "16.67"
    nova = ModelLatencyDaily.objects.get(model_id="nova")
    assert (nova.latency_p50_ms, nova.latency_p95_ms) == (None, None)
    reasons = sorted(QuarantinedRow.objects.values_list("reason", flat=True))
    assert len(reasons) == 2
    assert "not an hour of 2026-11-20" in reasons[0] and "control character" in reasons[1]
