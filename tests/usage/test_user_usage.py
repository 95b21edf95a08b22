"""The per-user view: UsageUserDaily rows from the same events, on both engines."""

import datetime as dt

import pytest
from django.urls import reverse

from usage.athena import AthenaEngine
from usage.models import UsageDaily, UsageUserDaily
from usage.query import USER_RESULT_COLUMNS
from usage.services import ingest_run_create, ingest_run_execute

from .events import make_event, write_events
from .test_ingest_athena import athena, inject_results  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 11, 20)
NOON = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)


@pytest.fixture
def no_counters(monkeypatch):
    monkeypatch.setattr("usage.services.reconcile_day", lambda **kw: 0)


def _run(day=DAY):
    run = ingest_run_create(days=[day], trigger="staff", engine="duckdb")
    return ingest_run_execute(run_id=run.pk)


def _user_rows():
    return {
        (r.application_id, r.user_id, r.model_id): (r.requests, r.input_tokens, r.output_tokens)
        for r in UsageUserDaily.objects.filter(day=DAY)
    }


def test_ingest_keeps_tokens_per_application_and_user(events_dir, customer, no_counters):
    events = [make_event(customer.pk, when=NOON, user_id="alice") for _ in range(2)]
    events.append(make_event(customer.pk, when=NOON, user_id="bob", application_id="search"))
    events.append(make_event(customer.pk, when=NOON, user_id="bob", input_tokens=1, tags={}))
    events.append(events[0])  # a duplicate request id counts once
    write_events(events_dir, events)

    run = _run()

    assert run.status == "succeeded", run.errors
    haiku = "anthropic.claude-3-haiku-20240307-v1:0"
    assert _user_rows() == {
        ("chatbot", "alice", haiku): (2, 200, 40),
        ("search", "bob", haiku): (1, 100, 20),
        ("", "", haiku): (1, 1, 20),
    }
    # the billed rows are untouched by the user dimension: still one row per tag combination
    assert UsageDaily.objects.filter(day=DAY).count() == 3
    assert sum(UsageDaily.objects.values_list("requests", flat=True)) == 4


def test_reingest_replaces_the_users_rows_exactly(events_dir, customer, no_counters):
    write_events(events_dir, [make_event(customer.pk, when=NOON, user_id="alice")])
    _run()
    _run()
    assert UsageUserDaily.objects.filter(day=DAY).count() == 1
    assert UsageUserDaily.objects.get().requests == 1


def test_athena_user_rows_query_and_parse(athena, customer):  # noqa: F811
    inject_results([(customer.pk, "chatbot", "alice", "m", 2, 9, 4)], list(USER_RESULT_COLUMNS))
    calls = []
    engine = AthenaEngine(athena, sleep=lambda s: None)
    original = athena.start_query_execution

    def recording(**kwargs):
        calls.append(kwargs["QueryString"])
        return original(**kwargs)

    athena.start_query_execution = recording
    rows = list(engine.user_daily_rows(DAY))
    assert rows == [(str(customer.pk), "chatbot", "alice", "m", 2, 9, 4, "")]
    assert "tags.userId" in calls[0]
    assert "WHERE year = '2026' AND month = '11' AND day = '20'" in calls[0]


def test_staff_heatmap_for_one_customer_shows_its_users(
    staff_client, customer, django_assert_max_num_queries
):
    for user, app, tokens in [("alice", "chatbot", 100), ("bob", "search", 50)]:
        UsageUserDaily.objects.create(
            customer=customer, day=DAY, application_id=app, user_id=user,
            model_id="m", requests=1, input_tokens=tokens, output_tokens=0,
        )  # fmt: skip
    url = reverse("staff:dashboard_heatmap")
    query = {"customer": customer.pk, "start": "2026-11-01", "end": "2026-11-22"}
    with django_assert_max_num_queries(8):
        response = staff_client.get(url, query)
    assert response.status_code == 200
    html = response.content.decode()
    assert "Tokens by application and user" in html
    assert "alice" in html and "bob" in html and "search" in html
