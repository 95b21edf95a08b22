"""The embedded path: DuckDB runs the usage SQL over real generated event files."""

import datetime as dt

import pytest
from django.db import connection

from usage.duckdb_engine import DuckDBEngine
from usage.models import IngestedDay, IngestRun, UsageDaily
from usage.selectors import usage_by_model, usage_totals
from usage.services import ingest_run_create, ingest_run_execute, usage_day_replace

from .events import make_event, write_events

DAY = dt.date(2026, 11, 20)
NOON = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)


@pytest.fixture
def no_counters(monkeypatch):
    monkeypatch.setattr("usage.services.reconcile_day", lambda **kw: 0)


def _ingest(day=DAY):
    engine = DuckDBEngine()
    return usage_day_replace(day=day, rows=engine.daily_rows(day), engine="duckdb")


def test_day_is_aggregated_by_model_and_tags(events_dir, customer, other_customer):
    events = [make_event(customer.pk, when=NOON) for _ in range(3)]
    events.append(
        make_event(
            customer.pk,
            when=NOON,
            model_id="amazon.nova-pro-v1:0",
            input_tokens=7,
            output_tokens=3,
            cache_read_tokens=5,
        )
    )
    events.append(make_event(customer.pk, when=NOON, application_id="search", cost_center=""))
    events.append(make_event(other_customer.pk, when=NOON, tags={}))
    write_events(events_dir, events)

    ingested = _ingest()

    assert ingested.rows == 4 and ingested.requests == 6
    rows = {
        (r.customer_id, r.model_id, r.application_id, r.cost_center): r
        for r in UsageDaily.objects.filter(day=DAY)
    }
    haiku = rows[(customer.pk, "anthropic.claude-3-haiku-20240307-v1:0", "chatbot", "cc-100")]
    assert (haiku.requests, haiku.input_tokens, haiku.output_tokens) == (3, 300, 60)
    assert haiku.environment == "prod"
    nova = rows[(customer.pk, "amazon.nova-pro-v1:0", "chatbot", "cc-100")]
    assert (nova.requests, nova.input_tokens, nova.cache_read_tokens) == (1, 7, 5)
    assert rows[(customer.pk, "anthropic.claude-3-haiku-20240307-v1:0", "search", "")].requests == 1
    untagged = rows[(other_customer.pk, "anthropic.claude-3-haiku-20240307-v1:0", "", "")]
    assert untagged.environment == "" and untagged.requests == 1


def test_duplicate_request_ids_are_counted_once(events_dir, customer):
    event = make_event(customer.pk, when=NOON)
    write_events(events_dir, [event, event])
    write_events(events_dir, [event])

    _ingest()

    assert usage_totals(customer_id=customer.pk, start=DAY, end=DAY)["requests"] == 1


def test_only_the_days_partition_is_read(events_dir, customer):
    write_events(events_dir, [make_event(customer.pk, when=NOON - dt.timedelta(days=1))])
    write_events(events_dir, [make_event(customer.pk, when=NOON + dt.timedelta(days=1))])
    write_events(events_dir, [make_event(customer.pk, when=NOON)])

    assert _ingest().requests == 1
    assert "year = '2026' AND month = '11' AND day = '20'" in DuckDBEngine().daily_sql(DAY)


def test_a_day_without_files_ingests_as_empty(events_dir, customer):
    assert _ingest().rows == 0
    assert IngestedDay.objects.filter(day=DAY).exists()


def test_unknown_customers_are_skipped_and_counted(events_dir, customer):
    write_events(
        events_dir,
        [
            make_event(customer.pk, when=NOON),
            make_event("5b0e6c3e-0000-4000-8000-000000000000", when=NOON),
            make_event("not-a-uuid", when=NOON),
        ],
    )

    ingested = _ingest()

    assert (ingested.rows, ingested.skipped_rows) == (1, 2)


def test_ingesting_twice_gives_the_same_totals(events_dir, customer):
    write_events(events_dir, [make_event(customer.pk, when=NOON) for _ in range(5)])
    _ingest()
    first = usage_totals(customer_id=customer.pk, start=DAY, end=DAY)
    _ingest()
    assert usage_totals(customer_id=customer.pk, start=DAY, end=DAY) == first
    assert UsageDaily.objects.filter(day=DAY).count() == 1


def test_reingest_replaces_the_day_exactly(events_dir, customer):
    write_events(events_dir, [make_event(customer.pk, when=NOON, model_id="old-model")])
    _ingest()
    for path in events_dir.rglob("*.jsonl"):
        path.unlink()
    write_events(events_dir, [make_event(customer.pk, when=NOON, model_id="new-model")])

    _ingest()

    assert [r["model_id"] for r in usage_by_model(customer_id=customer.pk, start=DAY, end=DAY)] == [
        "new-model"
    ]


def test_run_tracks_progress_and_continues_after_a_failing_day(events_dir, customer, no_counters):
    write_events(events_dir, [make_event(customer.pk, when=NOON)])
    bad_day = DAY - dt.timedelta(days=1)

    class Flaky(DuckDBEngine):
        def daily_rows(self, day):
            if day == bad_day:
                raise RuntimeError("engine down")
            return super().daily_rows(day)

    run = ingest_run_create(days=[bad_day, DAY], trigger=IngestRun.Trigger.COMMAND, engine="duckdb")
    run = ingest_run_execute(run_id=run.pk, engine=Flaky())

    assert run.status == IngestRun.Status.FAILED
    assert (run.days_done, run.days_total, run.rows_written) == (2, 2, 1)
    assert run.errors == [{"day": "2026-11-19", "stage": "ingest", "error": "engine down"}]
    assert set(IngestedDay.objects.values_list("day", flat=True)) == {DAY}


def test_a_run_executes_once(events_dir, customer, no_counters):
    run = ingest_run_create(days=[DAY], trigger=IngestRun.Trigger.COMMAND, engine="duckdb")
    ingest_run_execute(run_id=run.pk)
    again = ingest_run_execute(run_id=run.pk)
    assert again.days_done == 1


def test_rows_whose_customer_id_differs_only_in_case_are_merged(customer):
    upper = str(customer.pk).upper()
    rows = [
        (str(customer.pk), "m", "", "", "", 2, 20, 2, 0, 0),
        (upper, "m", "", "", "", 3, 30, 3, 0, 0),
        (str(customer.pk), "other", "", "", "", 1, 1, 1, 0, 0),
    ]
    ingested = usage_day_replace(day=DAY, rows=rows, engine="athena")
    assert (ingested.rows, ingested.requests) == (2, 6)
    merged = UsageDaily.objects.get(day=DAY, model_id="m")
    assert (merged.requests, merged.input_tokens) == (5, 50)


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="needs PostgreSQL (threads)")
@pytest.mark.django_db(transaction=True)
def test_concurrent_loads_of_a_day_give_the_same_totals(events_dir, customer):
    import threading

    write_events(events_dir, [make_event(customer.pk, when=NOON) for _ in range(50)])
    barrier, errors = threading.Barrier(4), []

    def load():
        try:
            barrier.wait()
            _ingest()
        except Exception as exc:  # reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert usage_totals(customer_id=customer.pk, start=DAY, end=DAY)["requests"] == 50
    assert IngestedDay.objects.get(day=DAY).requests == 50


def test_a_malformed_line_is_skipped_like_athena_does(events_dir, customer):
    write_events(events_dir, [make_event(customer.pk, when=NOON)])
    written = next(events_dir.rglob("day=20/*.jsonl"))
    with written.open("a") as handle:
        handle.write('{"request_id": "torn", "customer_id": \n')
    write_events(events_dir, [make_event(customer.pk, when=NOON)])
    assert _ingest().requests == 2
