"""Hourly usage and latency per model, filled by the import from real event files (DuckDB)."""

import datetime as dt

import pytest

from usage.duckdb_engine import DuckDBEngine
from usage.models import (
    IngestedDay,
    IngestRun,
    ModelLatencyDaily,
    UsageHourly,
    UsageLatencyDaily,
)
from usage.services import ingest_run_create, ingest_run_execute

from .events import make_event, write_events

DAY = dt.date(2026, 11, 20)


def at(hour, minute=0):
    return dt.datetime(2026, 11, 20, hour, minute, tzinfo=dt.UTC)


@pytest.fixture
def no_counters(monkeypatch):
    monkeypatch.setattr("usage.services.reconcile_day", lambda **kw: 0)


def _run(day=DAY):
    run = ingest_run_create(days=[day], trigger=IngestRun.Trigger.COMMAND, engine="duckdb")
    return ingest_run_execute(run_id=run.pk, engine=DuckDBEngine())


def test_the_import_fills_hourly_usage_and_latency(
    events_dir, customer, other_customer, no_counters
):
    haiku = "anthropic.claude-3-haiku-20240307-v1:0"
    events = [
        make_event(customer.pk, when=at(9, 5), latency_ms=100),
        make_event(customer.pk, when=at(9, 30), latency_ms=200),
        make_event(customer.pk, when=at(10, 1), latency_ms=300),
        # a stream cut by an upstream error: billed, and a failed call
        make_event(customer.pk, when=at(10, 59), latency_ms=400, error_code="bedrock_throttled"),
        make_event(customer.pk, when=at(10, 0), model_id="amazon.nova-pro-v1:0", latency_ms=50),
        make_event(other_customer.pk, when=at(23, 59), latency_ms=1_000),
        make_event("5b0e6c3e-0000-4000-8000-000000000000", when=at(9), latency_ms=9_000),
    ]
    duplicate = events[0]
    write_events(events_dir, [*events, duplicate])
    write_events(events_dir, [make_event(customer.pk, when=at(9) + dt.timedelta(days=1))])

    run = _run()

    assert (run.status, run.errors) == (IngestRun.Status.SUCCEEDED, [])
    hourly = {
        (r.customer_id, r.hour.astimezone(dt.UTC).hour, r.model_id): r
        for r in UsageHourly.objects.all()
    }
    assert set(hourly) == {
        (customer.pk, 9, haiku),
        (customer.pk, 10, haiku),
        (customer.pk, 10, "amazon.nova-pro-v1:0"),
        (other_customer.pk, 23, haiku),
    }
    nine = hourly[(customer.pk, 9, haiku)]
    assert (nine.requests, nine.input_tokens, nine.output_tokens, nine.errors) == (2, 200, 40, 0)
    assert (hourly[(customer.pk, 10, haiku)].requests, hourly[(customer.pk, 10, haiku)].errors) == (
        2,
        1,
    )
    assert IngestedDay.objects.get(day=DAY).hourly_rows == 4

    mine = UsageLatencyDaily.objects.get(customer=customer, model_id=haiku)
    # quantile_cont over 100, 200, 300, 400 ms: p50 250, p95 385 (interpolated)
    assert (mine.requests, mine.errors, mine.latency_p50_ms, mine.latency_p95_ms) == (
        4, 1, 250, 385,
    )  # fmt: skip
    assert str(mine.error_percent) == "25.00"
    everyone = ModelLatencyDaily.objects.get(day=DAY, model_id=haiku)
    # every customer's calls of the model, the unknown customer's too (it reached the model)
    assert (everyone.requests, everyone.errors) == (6, 1)
    assert everyone.latency_p50_ms == 350 and everyone.latency_p95_ms > 1_000


def test_reimporting_a_day_replaces_its_rows(events_dir, customer, no_counters):
    write_events(events_dir, [make_event(customer.pk, when=at(9), model_id="old-model")])
    _run()
    for path in events_dir.rglob("*.jsonl"):
        path.unlink()
    write_events(events_dir, [make_event(customer.pk, when=at(15), model_id="new-model")])
    _run()
    _run()

    assert list(UsageHourly.objects.values_list("model_id", "requests")) == [("new-model", 1)]
    assert list(UsageLatencyDaily.objects.values_list("model_id", flat=True)) == ["new-model"]
    assert list(ModelLatencyDaily.objects.values_list("model_id", flat=True)) == ["new-model"]


def test_events_with_unusable_counts_or_bad_text_are_left_out(events_dir, customer, no_counters):
    from usage.models import QuarantinedRow

    unusable = make_event(customer.pk, when=at(9))
    unusable["input_tokens"] = "lots"
    write_events(
        events_dir,
        [
            make_event(customer.pk, when=at(9)),
            unusable,
            make_event(customer.pk, when=at(9), model_id="bad\x00model"),
        ],
    )

    run = _run()

    assert run.status == IngestRun.Status.SUCCEEDED
    assert UsageHourly.objects.get().requests == 1
    stages = set(QuarantinedRow.objects.values_list("stage", flat=True))
    assert "operations" in stages


def test_a_failing_hourly_stage_does_not_fail_the_run(events_dir, customer, no_counters):
    write_events(events_dir, [make_event(customer.pk, when=at(9))])

    class Broken(DuckDBEngine):
        def operations_rows(self, day):
            raise RuntimeError("engine down")

    run = ingest_run_create(days=[DAY], trigger=IngestRun.Trigger.COMMAND, engine="duckdb")
    run = ingest_run_execute(run_id=run.pk, engine=Broken())

    assert run.status == IngestRun.Status.SUCCEEDED
    assert run.errors == [{"day": "2026-11-20", "stage": "operations", "error": "engine down"}]
    assert IngestedDay.objects.get(day=DAY).hourly_rows is None
