"""Token.last_used_at comes from the usage events at each day's ingest (DuckDB over real files),
only ever moves forward, and is shown on the staff, customer and API token lists."""

import datetime as dt
import json

import pytest

from customers.models import Token
from customers.services import token_create
from usage.duckdb_engine import DuckDBEngine
from usage.models import IngestRun
from usage.query import TOKEN_LAST_USED_SQL, token_last_used_sql
from usage.services import ingest_run_create, ingest_run_execute

from .events import make_event, write_events

DAY = dt.date(2026, 11, 20)


def _at(day, hour, minute=0, second=0, ms=0):
    return dt.datetime(day.year, day.month, day.day, hour, minute, second, ms * 1000, tzinfo=dt.UTC)


@pytest.fixture(autouse=True)
def no_counters(monkeypatch):
    monkeypatch.setattr("usage.services.reconcile_day", lambda **kw: 0)


@pytest.fixture
def tokens(customer):
    return [token_create(customer=customer, label=f"app-{n}").token for n in range(3)]


def _run(*days):
    run = ingest_run_create(days=list(days), trigger=IngestRun.Trigger.COMMAND, engine="duckdb")
    return ingest_run_execute(run_id=run.pk)


def _last_used(token):
    return Token.objects.get(pk=token.pk).last_used_at


def test_ingest_records_each_tokens_latest_use_of_the_day(events_dir, customer, tokens):
    first, second, unused = tokens
    retried = make_event(customer.pk, when=_at(DAY, 10), token_id=str(second.pk))
    write_events(
        events_dir,
        [
            make_event(customer.pk, when=_at(DAY, 9), token_id=str(first.pk)),
            make_event(customer.pk, when=_at(DAY, 15, 30, 12, 345), token_id=str(first.pk)),
            make_event(customer.pk, when=_at(DAY, 8), token_id=str(first.pk)),
            retried,
            # The same request written again later (a retried write) is one request, at 10:00.
            {**retried, "timestamp": "2026-11-20T23:00:00.000Z"},
            # Other days' partitions are not read for this day.
            make_event(
                customer.pk, when=_at(DAY + dt.timedelta(days=1), 1), token_id=str(unused.pk)
            ),
            make_event(
                customer.pk, when=_at(DAY - dt.timedelta(days=1), 1), token_id=str(unused.pk)
            ),
        ],
    )

    run = _run(DAY)

    assert (run.status, run.errors) == (IngestRun.Status.SUCCEEDED, [])
    assert _last_used(first) == _at(DAY, 15, 30, 12, 345)
    assert _last_used(second) == _at(DAY, 10)
    assert _last_used(unused) is None


def test_reingesting_an_older_day_never_moves_last_used_back(events_dir, customer, tokens):
    token = tokens[0]
    earlier, later = DAY - dt.timedelta(days=2), DAY
    write_events(
        events_dir,
        [
            make_event(customer.pk, when=_at(earlier, 23, 59), token_id=str(token.pk)),
            make_event(customer.pk, when=_at(later, 0, 5), token_id=str(token.pk)),
        ],
    )

    _run(earlier)
    assert _last_used(token) == _at(earlier, 23, 59)
    _run(later)
    assert _last_used(token) == _at(later, 0, 5)
    _run(earlier)  # a staff re-ingest of the older day
    assert _last_used(token) == _at(later, 0, 5)


def test_events_without_a_known_token_change_nothing_and_fail_nothing(events_dir, customer, tokens):
    write_events(
        events_dir,
        [
            make_event(customer.pk, when=_at(DAY, 9), token_id=None),
            make_event(customer.pk, when=_at(DAY, 9), token_id="not-a-token-id"),
            make_event(
                customer.pk, when=_at(DAY, 9), token_id="5b0e6c3e-0000-4000-8000-00000000000a"
            ),
        ],
    )
    # A line no proxy writes (a timestamp that is not one) is skipped, not fatal.
    odd = make_event(customer.pk, when=_at(DAY, 9), token_id=str(tokens[0].pk))
    with next(events_dir.rglob("day=20/*.jsonl")).open("a") as handle:
        handle.write(json.dumps({**odd, "timestamp": "yesterday-ish"}) + "\n")

    run = _run(DAY)

    assert (run.status, run.errors, run.rows_written) == (IngestRun.Status.SUCCEEDED, [], 1)
    assert Token.objects.filter(last_used_at__isnull=False).count() == 0


def test_a_failing_last_used_step_is_reported_without_failing_the_run(events_dir, customer, tokens):
    write_events(events_dir, [make_event(customer.pk, when=_at(DAY, 9))])

    class Broken(DuckDBEngine):
        def token_last_used_rows(self, day):
            raise RuntimeError("engine down")

    run = ingest_run_create(days=[DAY], trigger=IngestRun.Trigger.COMMAND, engine="duckdb")
    run = ingest_run_execute(run_id=run.pk, engine=Broken())

    assert run.status == IngestRun.Status.SUCCEEDED and run.rows_written == 1
    assert run.errors == [{"day": "2026-11-20", "stage": "tokens", "error": "engine down"}]


def test_the_sql_prunes_to_the_day_and_deduplicates():
    sql = token_last_used_sql(source="events", day=DAY)
    assert "WHERE year = '2026' AND month = '11' AND day = '20'" in sql
    assert "row_number() OVER (PARTITION BY request_id" in sql and "copy_number = 1" in sql
    assert 'max("timestamp") AS last_used' in sql
    assert sql == TOKEN_LAST_USED_SQL.format(source="events", year="2026", month="11", day="20")


def test_token_lists_show_last_used_after_ingest(
    events_dir, customer, tokens, staff_user, customer_user
):
    from django.test import Client
    from rest_framework.test import APIClient

    token = tokens[0]
    write_events(
        events_dir, [make_event(customer.pk, when=_at(DAY, 14, 7), token_id=str(token.pk))]
    )
    _run(DAY)

    staff = Client()
    staff.force_login(staff_user)
    staff_page = staff.get(f"/staff/customers/{customer.pk}/")
    assert staff_page.status_code == 200
    assert "20 Nov 2026 14:07 UTC" in staff_page.content.decode()

    mine = Client()
    mine.force_login(customer_user)
    customer_page = mine.get("/app/tokens/")
    assert customer_page.status_code == 200
    assert "20 Nov 2026 14:07 UTC" in customer_page.content.decode()

    api = APIClient()
    api.force_login(staff_user)
    listed = api.get(f"/api/v1/customers/{customer.pk}/tokens/").json()["results"]
    by_id = {row["id"]: row for row in listed}
    assert by_id[str(token.pk)]["last_used_at"].startswith("2026-11-20T14:07:00")
    assert by_id[str(tokens[1].pk)]["last_used_at"] is None
