"""Nightly catch-up, reconciliation with the counters, commands and summaries."""

import datetime as dt
import re
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command

from usage.models import IngestedDay, IngestRun, SummaryDelivery, UsageDifference
from usage.reports import print_usage_by_model
from usage.services import ingest_nightly, missing_days, reconcile_day, usage_day_replace
from usage.summaries import summaries_send, summary_period

from .conftest import put_counter
from .events import make_event, write_events

TODAY = dt.date(2026, 11, 23)


def _at(day, hour=12):
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC)


@pytest.fixture
def old_customer(customer):
    type(customer).objects.filter(pk=customer.pk).update(created_at=_at(dt.date(2026, 11, 1)))
    customer.refresh_from_db()
    return customer


def test_missing_days_are_caught_up(dynamodb, events_dir, old_customer, settings):
    settings.USAGE_CATCHUP_DAYS = 10
    for day in (dt.date(2026, 11, 15), dt.date(2026, 11, 16), dt.date(2026, 11, 19)):
        IngestedDay.objects.create(day=day, engine="duckdb")
    missed = dt.date(2026, 11, 18)
    write_events(events_dir, [make_event(old_customer.pk, when=_at(missed)) for _ in range(4)])

    assert missing_days(today=TODAY) == [
        dt.date(2026, 11, 13),
        dt.date(2026, 11, 14),
        dt.date(2026, 11, 17),
        missed,
        dt.date(2026, 11, 20),
        dt.date(2026, 11, 21),
        dt.date(2026, 11, 22),
    ]
    run = ingest_nightly(today=TODAY)

    assert run.status == IngestRun.Status.SUCCEEDED and run.days_done == 7
    assert IngestedDay.objects.get(day=missed).requests == 4
    assert missing_days(today=TODAY) == [dt.date(2026, 11, 22)]  # yesterday is always redone


def test_catch_up_starts_no_earlier_than_the_first_customer(dynamodb, events_dir, customer):
    type(customer).objects.filter(pk=customer.pk).update(created_at=_at(dt.date(2026, 11, 21)))
    assert missing_days(today=TODAY) == [dt.date(2026, 11, 21), dt.date(2026, 11, 22)]


def test_reconciliation_lists_only_differences(dynamodb, customer, other_customer):
    day = dt.date(2026, 11, 20)
    usage_day_replace(
        day=day,
        engine="duckdb",
        rows=[
            (str(customer.pk), "m", "", "", "", 10, 1000, 100, 0, 0),
            (str(other_customer.pk), "m", "", "", "", 5, 50, 5, 0, 0),
        ],
    )
    put_counter(
        dynamodb, customer.pk, "DAY#2026-11-20", requests=10, input_tokens=1000, output_tokens=100
    )
    put_counter(
        dynamodb, other_customer.pk, "DAY#2026-11-20", requests=7, input_tokens=70, output_tokens=5
    )

    assert reconcile_day(day=day, client=dynamodb) == 1

    diff = UsageDifference.objects.get()
    assert diff.customer == other_customer
    assert (diff.request_delta, diff.token_delta) == (-2, -20)


def test_ingest_command_validates_dates(events_dir):
    with pytest.raises(CommandError, match="YYYY-MM-DD"):
        call_command("usage_ingest", "--start-date", "2026-13-01")
    with pytest.raises(CommandError, match="after the end date"):
        call_command("usage_ingest", "--start-date", "2026-11-10", "--end-date", "2026-11-01")
    with pytest.raises(CommandError, match="finished days"):
        call_command("usage_ingest", "--start-date", "2099-01-01")


def test_ingest_command_runs_a_range(dynamodb, events_dir, customer):
    day = dt.date(2026, 11, 20)
    write_events(events_dir, [make_event(customer.pk, when=_at(day))])
    out = StringIO()
    call_command(
        "usage_ingest",
        "--start-date",
        "2026-11-19",
        "--end-date",
        "2026-11-20",
        "--engine",
        "duckdb",
        stdout=out,
    )
    assert "succeeded, 2/2 days, 1 rows (duckdb)" in out.getvalue()


def test_ingest_command_prints_the_sql(events_dir):
    out = StringIO()
    call_command(
        "usage_ingest",
        "--start-date",
        "2026-11-20",
        "--engine",
        "athena",
        "--print-sql",
        stdout=out,
    )
    assert "year = '2026' AND month = '11' AND day = '20'" in out.getvalue()


def test_ingest_command_prints_the_athena_table():
    out = StringIO()
    call_command("usage_ingest", "--print-ddl", stdout=out)
    assert "PARTITIONED BY (year string, month string, day string)" in out.getvalue()
    assert "'projection.enabled' = 'true'" in out.getvalue()


def test_usage_report_by_model(customer):
    day = dt.date(2026, 11, 20)
    usage_day_replace(
        day=day,
        engine="duckdb",
        rows=[
            (str(customer.pk), "model-a", "app", "", "", 1200, 1_000_000, 5, 0, 0),
            (str(customer.pk), "model-b", "", "", "", 3, 30, 3, 0, 0),
        ],
    )
    out = StringIO()
    print_usage_by_model(customer=customer, start=day, end=dt.date(2026, 11, 21), out=out)
    text = out.getvalue()
    assert "model-a     1,200  1,000,000" in text
    assert "total       1,203  1,000,030" in text
    assert "1 of 2 days are not ingested yet" in text


def test_customers_usage_subcommand(customer):
    pytest.importorskip("proxy.contract")  # the customers command imports the proxy contract
    usage_day_replace(
        day=dt.date(2026, 11, 20),
        engine="duckdb",
        rows=[(str(customer.pk), "model-a", "", "", "", 2, 20, 2, 0, 0)],
    )
    out = StringIO()
    call_command(
        "customers",
        "usage",
        "--customer-id",
        str(customer.pk),
        "--start-date",
        "2026-11-01",
        "--end-date",
        "2026-11-30",
        stdout=out,
    )
    assert "model-a" in out.getvalue()


@pytest.mark.parametrize(
    ("customer_id", "start", "end", "message"),
    [
        (None, "yesterday", "2026-11-30", "YYYY-MM-DD"),
        (None, "2026-11-31", "2026-12-01", "YYYY-MM-DD"),
        (None, "2026-11-30", "2026-11-01", "start date is after the end date"),
        ("5b0e6c3e-0000-4000-8000-000000000000", "2026-11-01", "2026-11-30", "No customer"),
        ("acme", "2026-11-01", "2026-11-30", "not a customer id"),
    ],
)
def test_customers_usage_subcommand_errors(customer, customer_id, start, end, message):
    pytest.importorskip("proxy.contract")
    args = ["--customer-id", customer_id or str(customer.pk), "--start-date", start]
    with pytest.raises(CommandError, match=message):
        call_command("customers", "usage", *args, "--end-date", end, stdout=StringIO())


def test_summary_periods():
    assert summary_period(frequency="weekly", today=TODAY) == (
        "2026-W47",
        dt.date(2026, 11, 16),
        dt.date(2026, 11, 22),
    )
    assert summary_period(frequency="monthly", today=dt.date(2026, 12, 1)) == (
        "2026-11",
        dt.date(2026, 11, 1),
        dt.date(2026, 11, 30),
    )


def test_summaries_are_opt_in_and_sent_once(customer, other_customer):
    from usage.models import CustomerUsageSettings

    CustomerUsageSettings.objects.create(customer=customer, summary_frequency="weekly")
    usage_day_replace(
        day=dt.date(2026, 11, 18),
        engine="duckdb",
        rows=[(str(customer.pk), "model-a", "", "", "", 12, 3400, 560, 0, 0)],
    )

    assert summaries_send(frequency="weekly", today=TODAY) == 1
    assert summaries_send(frequency="weekly", today=TODAY) == 0

    assert SummaryDelivery.objects.count() == 1
    message = mail.outbox[0]
    assert message.to == ["billing@acme.example"]
    assert message.subject == "Your weekly Bedrock usage summary, week 47 of 2026 (Acme Analytics)"
    assert "- model-a: 12 requests, 3,400 input tokens, 560 output tokens" in message.body
    assert "6 day(s) of this period were not imported yet" in message.body
    assert re.search(
        r"<td style=\"padding: 4px 8px;\">(<[^>]*>)?model-a(</[^>]*>)?</td>",
        message.alternatives[0][0],
    )


def test_nightly_task_ingests_yesterday(dynamodb, events_dir, customer):
    from usage.services import utc_today
    from usage.tasks import ingest_nightly_task

    yesterday = utc_today() - dt.timedelta(days=1)
    write_events(events_dir, [make_event(customer.pk, when=_at(yesterday))])
    run = IngestRun.objects.get(pk=ingest_nightly_task.delay().get())
    assert run.trigger == "nightly" and run.status == "succeeded"
    assert IngestedDay.objects.get(day=yesterday).requests == 1


def test_unknown_engine_fails_the_run_cleanly(customer):
    from usage.services import ingest_run_create, ingest_run_execute

    run = ingest_run_create(days=[dt.date(2026, 11, 20)], trigger="command", engine="bogus")
    run = ingest_run_execute(run_id=run.pk)
    assert run.status == "failed" and "Unknown usage engine" in run.errors[0]["error"]


def test_beat_runs_the_nightly_ingest_after_the_export_and_crawler():
    from portal.celery import app

    entry = app.conf.beat_schedule["usage-nightly-ingest"]
    assert entry["task"] == "usage.tasks.ingest_nightly_task"
    assert entry["schedule"].hour == {3} and entry["schedule"].minute == {0}
    assert "usage-alert-check" in app.conf.beat_schedule


def test_beat_times_come_from_settings(settings):
    from portal.celery import _usage_schedule, app

    saved = dict(app.conf.beat_schedule)
    settings.USAGE_INGEST_HOUR, settings.USAGE_INGEST_MINUTE = 4, 45
    settings.USAGE_ALERT_CHECK_MINUTES = 3
    try:
        _usage_schedule(app)
        nightly = app.conf.beat_schedule["usage-nightly-ingest"]["schedule"]
        check = app.conf.beat_schedule["usage-alert-check"]["schedule"]
        assert (nightly.hour, nightly.minute) == ({4}, {45})
        assert check.minute == set(range(0, 60, 3))
    finally:
        app.conf.beat_schedule = saved
    assert app.conf.beat_schedule["usage-nightly-ingest"]["schedule"].hour == {3}
