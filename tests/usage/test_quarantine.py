"""One bad event never costs a day: hostile events next to several customers' good ones.

The events are written with the proxy's own make_event/EventSink (as the proxy writes them),
then altered where the proxy would refuse or never produce the value, and the day is ingested
through the real run (DuckDB engine, usage_day_replace, per-user rows, token last use). Every
good row must be stored with exact totals; each bad row is quarantined with a reason; the run
succeeds. The same checks run on PostgreSQL (where a NUL used to fail the whole day's load).
"""

import csv
import datetime as dt
import io
import re
import uuid
from decimal import Decimal

import pytest
from django.db import connection
from django.urls import reverse

from customers.models import Customer
from usage.alerts import alerts_check
from usage.athena import AthenaEngine
from usage.models import (
    Alert,
    CustomerUsageSettings,
    IngestedDay,
    IngestRun,
    QuarantinedRow,
    UsageDaily,
    UsageUserDaily,
)
from usage.query import MAX_COUNT
from usage.services import ingest_run_create, ingest_run_execute, usage_day_replace

from .events import make_event, write_events
from .test_ingest_athena import athena, inject_results  # noqa: F401  (fixture)

DAY = dt.date(2026, 11, 20)
NOON = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"

needs_postgresql = pytest.mark.skipif(
    "connection.vendor != 'postgresql'", reason="the PostgreSQL variant (NUL cannot be stored)"
)


@pytest.fixture
def no_counters(monkeypatch):
    monkeypatch.setattr("usage.services.reconcile_day", lambda **kw: 0)


@pytest.fixture
def third_customer(db):
    return Customer.objects.create(name="Initech", contact_email="ops@initech.example")


def _event(customer, **overrides):
    """An event as the proxy makes it; `raw_*` values replace a count after make_event (which
    would coerce them with int()), as a writer other than the proxy could."""
    raw = {k.removeprefix("raw_"): overrides.pop(k) for k in list(overrides) if k[:4] == "raw_"}
    event = make_event(customer.pk, when=NOON, **overrides)
    event.update(raw)
    return event


def _write_hostile_day(events_dir, a, b, c):
    unicode_tags = {"application_id": "日本", "cost_center": "é", "environment": "prod"}
    good = [
        *(_event(a) for _ in range(3)),
        _event(a, model_id="amazon.nova-pro-v1:0", input_tokens=7, output_tokens=3,
               cache_read_tokens=5),
        *(_event(b, tags={}) for _ in range(2)),
        *(_event(c, input_tokens=10, output_tokens=1, user_id="🚀", **unicode_tags)
          for _ in range(4)),
    ]  # fmt: skip
    hostile = [
        _event(a, application_id="evil\u0000app"),  # NUL in a tag
        _event(b, application_id="lone\ud800"),  # written as "\ud800": DuckDB cannot parse it
        _event(c, cost_center="x" * 10_000),  # 10 KB tag
        _event(a, input_tokens=10**39),  # past 38 digits
        _event(a, raw_input_tokens=1.5),  # a fraction
        _event(b, tags={}, output_tokens=-5),  # negative
        _event(c, raw_input_tokens="lots", **unicode_tags, user_id="🚀"),  # a string
        _event(a, cache_write_tokens=2**63),  # just above bigint, in one event
        # Each fits a bigint, their sum does not: the engine returns 2**63 + 2.
        *(_event(b, application_id="big", input_tokens=2**62 + 1) for _ in range(2)),
        # Billed normally; only the per-user row (BEL in userId) and last use are set aside.
        _event(c, user_id="bob\u0007", input_tokens=10, output_tokens=1, **unicode_tags),
        _event(a, token_id="tok\u0000en"),
    ]
    write_events(events_dir, good + hostile)
    written = next(events_dir.rglob("day=20/*.jsonl"))
    with written.open("a") as handle:
        handle.write('{"request_id": "torn", "customer_id": \n')  # a line cut short


def _hostile_day_ingests_every_good_row(events_dir, a, b, c):
    _write_hostile_day(events_dir, a, b, c)
    run = ingest_run_create(days=[DAY], trigger=IngestRun.Trigger.COMMAND, engine="duckdb")

    run = ingest_run_execute(run_id=run.pk)

    assert (run.status, run.errors) == (IngestRun.Status.SUCCEEDED, [])
    rows = {
        (r.customer_id, r.model_id, r.application_id, r.cost_center, r.environment): (
            r.requests, r.input_tokens, r.output_tokens, r.cache_read_tokens, r.cache_write_tokens
        )
        for r in UsageDaily.objects.filter(day=DAY)
    }  # fmt: skip
    assert rows == {
        # 3 good events + the one whose only fault is its token id (billing does not read it)
        (a.pk, HAIKU, "chatbot", "cc-100", "prod"): (4, 400, 80, 0, 0),
        (a.pk, "amazon.nova-pro-v1:0", "chatbot", "cc-100", "prod"): (1, 7, 3, 5, 0),
        (b.pk, HAIKU, "", "", ""): (2, 200, 40, 0, 0),
        # 4 good events + the one with a BEL in its userId (not a billed column)
        (c.pk, HAIKU, "日本", "é", "prod"): (5, 50, 5, 0, 0),
    }
    ingested = IngestedDay.objects.get(day=DAY)
    assert (ingested.rows, ingested.requests, ingested.skipped_rows) == (4, 12, 0)
    assert run.rows_written == 4

    daily = list(
        QuarantinedRow.objects.filter(day=DAY, stage="daily").values_list("reason", flat=True)
    )
    assert sorted(daily) == sorted(
        [
            "application_id contains a control character (U+0000)",
            "2 event line(s) without a customer_id: a line the engine cannot parse (not JSON, "
            "invalid UTF-8, a lone surrogate escape) is read as empty",
            "cost_center is 10,000 characters long; the column holds 200",
            f"2 event(s) whose input_tokens is not a whole number from 0 to {MAX_COUNT}",
            f"1 event(s) whose output_tokens is not a whole number from 0 to {MAX_COUNT}",
            f"1 event(s) whose input_tokens is not a whole number from 0 to {MAX_COUNT}",
            f"1 event(s) whose cache_write_tokens is not a whole number from 0 to {MAX_COUNT}",
            f"input_tokens is {2**63 + 2}, above the largest storable count {MAX_COUNT}",
        ]
    )
    users = QuarantinedRow.objects.filter(day=DAY, stage="users")
    assert users.count() == 8
    assert users.filter(reason="user_id contains a control character (U+0007)").count() == 1
    tokens = list(QuarantinedRow.objects.filter(day=DAY, stage="tokens"))
    assert [t.reason for t in tokens] == ["token_id is not a token id"]
    # The hour of the customer whose token sum is past bigint cannot be stored either.
    operations = QuarantinedRow.objects.filter(day=DAY, stage="operations")
    assert [o.reason for o in operations] == [
        f"input_tokens is {2**63 + 202}, above the largest storable count {MAX_COUNT}"
    ]
    assert ingested.quarantined_rows == 8 + 8 + 1 + 1
    assert set(QuarantinedRow.objects.values_list("run", flat=True)) == {run.pk}

    # The raw rows are stored made safe: NUL as the six characters \u0000, never NUL itself.
    nul = QuarantinedRow.objects.get(day=DAY, stage="daily", reason__contains="U+0000")
    assert "evil\\u0000app" in nul.raw_row and "\x00" not in nul.raw_row
    assert "tok\\u0000en" in tokens[0].raw_row
    for text in QuarantinedRow.objects.values_list("raw_row", "reason"):
        assert all("\x00" not in t and "\ud800" not in t for t in text)

    per_user = {
        (r.customer_id, r.application_id, r.user_id, r.model_id): r.requests
        for r in UsageUserDaily.objects.filter(day=DAY)
    }
    assert per_user == {
        (a.pk, "chatbot", "alice", HAIKU): 4,
        (a.pk, "chatbot", "alice", "amazon.nova-pro-v1:0"): 1,
        (b.pk, "", "", HAIKU): 2,
        (c.pk, "日本", "🚀", HAIKU): 4,
        (c.pk, "chatbot", "alice", HAIKU): 1,  # the 10 KB cost center is not a per-user column
    }
    return run


def test_a_hostile_day_loads_every_good_row(
    events_dir, customer, other_customer, third_customer, no_counters
):
    _hostile_day_ingests_every_good_row(events_dir, customer, other_customer, third_customer)


@needs_postgresql
def test_a_hostile_day_loads_every_good_row_on_postgresql(
    events_dir, customer, other_customer, third_customer, no_counters
):
    assert connection.vendor == "postgresql"
    _hostile_day_ingests_every_good_row(events_dir, customer, other_customer, third_customer)


def test_reingest_replaces_the_days_quarantined_rows(
    events_dir, customer, other_customer, third_customer, no_counters
):
    first = _hostile_day_ingests_every_good_row(
        events_dir, customer, other_customer, third_customer
    )
    second = ingest_run_create(days=[DAY], trigger=IngestRun.Trigger.STAFF, engine="duckdb")
    second = ingest_run_execute(run_id=second.pk)
    assert QuarantinedRow.objects.filter(day=DAY).count() == 18  # replaced, not added
    assert set(QuarantinedRow.objects.values_list("run", flat=True)) == {second.pk}
    assert not first.quarantined.exists()

    # The bad events are removed (corrected) and the day ingested again: nothing is left aside.
    for path in events_dir.rglob("*.jsonl"):
        path.unlink()
    write_events(events_dir, [make_event(customer.pk, when=NOON)])
    third = ingest_run_create(days=[DAY], trigger=IngestRun.Trigger.STAFF, engine="duckdb")
    ingest_run_execute(run_id=third.pk)
    assert not QuarantinedRow.objects.exists()
    assert IngestedDay.objects.get(day=DAY).quarantined_rows == 0
    assert UsageDaily.objects.get(day=DAY).requests == 1


def _hostile_tuples_are_quarantined(a, b):
    """Rows as an engine could return them (Athena's are strings; a JSON decoder turns
    "\\ud800" into a lone surrogate), straight into the load."""
    a, b = str(a.pk), str(b.pk)
    rows = [
        (a, "m", "good", "", "", 2, 20, 2, 1, 0, ""),
        (b, "m", "max", "cc", "env", "1", str(MAX_COUNT), "0", "0", "0", ""),  # the largest
        (a, "m", "nul\x00", "", "", 1, 1, 1, 0, 0, ""),
        (a, "m", "\ud800", "", "", 1, 1, 1, 0, 0, ""),
        (a, "m" * 201, "", "", "", 1, 1, 1, 0, 0, ""),
        (a, "m", "", "", "e" * 101, 1, 1, 1, 0, 0, ""),
        (a, "m", "esc\x1b[31m", "", "", 1, 1, 1, 0, 0, ""),
        (b, "m", "a", "", "", "abc", 1, 1, 0, 0, ""),
        (b, "m", "b", "", "", 1, "1.5", 1, 0, 0, ""),
        (b, "m", "c", "", "", 1, 2.5, 1, 0, 0, ""),
        (b, "m", "d", "", "", 1, Decimal("3.5"), 1, 0, 0, ""),
        (b, "m", "e", "", "", 1, -1, 1, 0, 0, ""),
        (b, "m", "f", "", "", 1, 1, MAX_COUNT + 1, 0, 0, ""),
        (b, "m", "g", "", "", 1, 1, 1, "9223372036854775808", 0, ""),
        (b, "m", "h", "", "", True, 1, 1, 0, 0, ""),
        (b, "m", "i", "", "", 1, 1, 1, 0, "1" * 50, ""),
        (None, None, "", "", "", 3, 0, 0, 0, 0, ""),
        (a, "m", "j", "", "", 4, 0, 0, 0, 0, "input_tokens"),
        (str(uuid.uuid4()), "m", "", "", "", 1, 1, 1, 0, 0, ""),  # unknown customer
        ("not-a-uuid\x00", "m", "", "", "", 1, 1, 1, 0, 0, ""),  # unknown customer
    ]
    run = ingest_run_create(days=[DAY], trigger=IngestRun.Trigger.COMMAND, engine="athena")

    ingested = usage_day_replace(day=DAY, rows=iter(rows), engine="athena", run=run)

    stored = {
        r.application_id: (r.requests, r.input_tokens, r.output_tokens, r.cache_read_tokens)
        for r in UsageDaily.objects.filter(day=DAY)
    }
    assert stored == {"good": (2, 20, 2, 1), "max": (1, MAX_COUNT, 0, 0)}
    assert (ingested.rows, ingested.requests, ingested.skipped_rows) == (2, 3, 2)
    assert ingested.quarantined_rows == 16
    reasons = {q.raw_row: q.reason for q in QuarantinedRow.objects.filter(day=DAY, run=run)}
    assert len(reasons) == 16
    expected = [
        ("nul\\u0000", "application_id contains a control character (U+0000)"),
        ("\\ud800", "application_id contains a lone surrogate (U+D800)"),
        ("m" * 201, "model_id is 201 characters long; the column holds 200"),
        ("e" * 101, "environment is 101 characters long; the column holds 100"),
        ("esc\\u001b", "application_id contains a control character (U+001B)"),
        ('"abc"', "requests is not a whole number: 'abc'"),
        ('"1.5"', "input_tokens is not a whole number: '1.5'"),
        ("2.5", "input_tokens is not a whole number: 2.5"),
        ('"3.5"', "input_tokens is not a whole number: Decimal('3.5')"),
        ("-1", "input_tokens is negative: -1"),
        (str(MAX_COUNT + 1), f"output_tokens is {MAX_COUNT + 1}, above the largest storable"),
        ('"9223372036854775808"', f"cache_read_tokens is {MAX_COUNT + 1}, above the largest"),
        ("true", "requests is not a whole number: True"),
        ("1" * 50, "cache_write_tokens is not a whole number: '" + "1" * 38 + "…"),
        ("null", "3 event line(s) without a customer_id"),
        ('"j"', f"4 event(s) whose input_tokens is not a whole number from 0 to {MAX_COUNT}"),
    ]  # fmt: skip
    for marker, reason in expected:
        matches = [r for raw, r in reasons.items() if marker in raw and r.startswith(reason)]
        assert matches, (marker, reason, reasons)
    assert all("\x00" not in raw and "\ud800" not in raw for raw in reasons)


def test_hostile_result_rows_are_quarantined(customer, other_customer):
    _hostile_tuples_are_quarantined(customer, other_customer)


@needs_postgresql
def test_hostile_result_rows_are_quarantined_on_postgresql(customer, other_customer):
    """COPY would fail the whole load on the NUL ("text fields cannot contain NUL")."""
    assert connection.vendor == "postgresql"
    _hostile_tuples_are_quarantined(customer, other_customer)


def test_the_run_page_lists_quarantined_rows_escaped(
    staff_client, events_dir, customer, other_customer, no_counters
):
    write_events(
        events_dir,
        [
            make_event(customer.pk, when=NOON),
            make_event(other_customer.pk, when=NOON),
            make_event(customer.pk, when=NOON, application_id="<script>alert(1)</script>\x00"),
        ],
    )
    run = ingest_run_create(days=[DAY], trigger=IngestRun.Trigger.STAFF, engine="duckdb")
    run = ingest_run_execute(run_id=run.pk)
    assert run.status == IngestRun.Status.SUCCEEDED

    response = staff_client.get(reverse("staff:usage_ingest_run", args=[run.pk]))

    html = response.content.decode()
    assert response.context["quarantine"].paginator.count == 2  # billed and per-user rows
    assert "Quarantined rows" in html
    assert "<script>alert(1)" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;\\u0000" in html
    assert "application_id contains a control character (U+0000)" in html
    assert f'<td>{DAY:%-d %b %Y}</td><td class="num">2</td><td class="num">2</td>' in html


def test_csv_export_never_writes_control_characters(staff_client, customer):
    """Rows stored before the import set such text aside (SQLite even stores NUL) are exported
    with U+FFFD in place of each control character, formulas still neutralised."""
    nul = "\x00" if connection.vendor != "postgresql" else ""
    UsageDaily.objects.create(
        customer=customer, day=DAY, model_id="m\x7f", application_id=f"evil{nul}app\x07",
        cost_center="\x1b[31mred", environment="=1+1\x85", requests=1,
    )  # fmt: skip
    body = b"".join(
        staff_client.get(
            reverse("staff:usage_export"), {"start": DAY.isoformat(), "end": DAY.isoformat()}
        ).streaming_content
    ).decode()
    (row,) = list(csv.reader(io.StringIO(body)))[1:]
    assert not any(re.search("[\x00-\x1f\x7f-\x9f]", cell) for cell in row)
    assert row[2:6] == [
        "m\ufffd",
        f"evil{nul and chr(0xFFFD)}app\ufffd",
        "\ufffd[31mred",
        "'=1+1\ufffd",
    ]


def test_hourly_alert_rule_reads_past_unprintable_tags_and_bad_counts(
    dynamodb, customer, events_dir
):
    """The hourly rule reads the same events: a NUL in a tag (events written before the proxy
    refused it) must not fail the check for every customer, and an unusable count is left out."""
    now = dt.datetime(2026, 11, 23, 14, 30, tzinfo=dt.UTC)
    CustomerUsageSettings.objects.create(customer=customer, hourly_token_threshold=1_000)
    events = [
        _event(customer, user_id="eve\x00", input_tokens=900, output_tokens=100),
        _event(customer, user_id="eve\x00", input_tokens=10**39),  # not counted
    ]
    for event in events:
        event["timestamp"] = event["timestamp"].replace("2026-11-20T12", "2026-11-23T14")
    write_events(events_dir, events)

    assert alerts_check(now=now, client=dynamodb) == 1

    alert = Alert.objects.get()
    assert alert.value == 1_000
    assert alert.subject == f"user=eve\ufffd application=chatbot model={HAIKU}"


def test_athena_results_with_unusable_values_are_quarantined_not_failed(athena, customer):  # noqa: F811
    """Athena's result pages are text: a count int() refuses reaches the import as read and is
    quarantined there, instead of failing the whole day while the pages are parsed."""
    inject_results(
        [
            (customer.pk, "m", "good", "", "", 2, 20, 2, 0, 0, ""),
            (customer.pk, "m", "bad", "", "", 1, "1.5", 1, 0, 0, ""),
            (customer.pk, "m", "nul\x00", "", "", 1, 1, 1, 0, 0, ""),
            (customer.pk, "m", "counts", "", "", 3, 0, 0, 0, 0, "output_tokens"),
            (None, None, "", "", "", 2, 0, 0, 0, 0, ""),
        ]
    )
    engine = AthenaEngine(athena, sleep=lambda s: None)

    ingested = usage_day_replace(day=DAY, rows=engine.daily_rows(DAY), engine="athena")

    assert (ingested.rows, ingested.requests, ingested.quarantined_rows) == (1, 2, 4)
    assert UsageDaily.objects.get(day=DAY).application_id == "good"
    assert sorted(QuarantinedRow.objects.values_list("reason", flat=True)) == sorted(
        [
            "input_tokens is not a whole number: '1.5'",
            "application_id contains a control character (U+0000)",
            f"3 event(s) whose output_tokens is not a whole number from 0 to {MAX_COUNT}",
            "2 event line(s) without a customer_id: a line the engine cannot parse (not JSON, "
            "invalid UTF-8, a lone surrogate escape) is read as empty",
        ]
    )
