"""A page never waits for the live counters: an old figure is shown with its time while one
read is queued, and with nothing cached (after a deploy emptied the cache) the page says the
figures are being read. Real pages, real figures read from moto's DynamoDB."""

import time

import pytest
from celery.signals import before_task_publish
from django.core.cache import cache
from django.urls import reverse

from core import live
from portal.tasks import refresh_live_figure
from usage import counters
from usage.services import utc_today

pytestmark = pytest.mark.django_db


def _count_today(aws, customer, requests):
    item = {
        "pk": {"S": counters.customer_pk(customer.pk)},
        "sk": {"S": counters.day_sk(utc_today())},
        "requests": {"N": str(requests)},
    }
    aws.client("dynamodb").put_item(TableName=counters.counters_table_name(), Item=item)


def _age(key, seconds):
    """The figure `key` as it was cached `seconds` ago (the read real code stored)."""
    entry = cache.get(key)
    entry["as_of"] -= seconds
    cache.set(key, entry, 3600)
    return entry["as_of"]


@pytest.fixture
def queued(monkeypatch):
    """The reads the pages queue, recorded instead of sent (the task is run by the test)."""
    keys = []
    monkeypatch.setitem(live._queue, "read", keys.append)
    return keys


@pytest.fixture
def reads(monkeypatch):
    calls = []
    real = counters.read_counters
    monkeypatch.setattr(
        counters, "read_counters", lambda keys, **kw: calls.append(1) or real(keys, **kw)
    )
    return calls


def test_an_old_figure_is_shown_with_its_time_and_read_again_once(
    aws, customer, staff_client, queued, reads
):
    _count_today(aws, customer, 1)
    live.refresh(force=True)
    as_of = _age(live.STAFF_TODAY, 60)
    _count_today(aws, customer, 2)
    reads.clear()
    pages = [staff_client.get(reverse("staff:home")) for _ in range(3)]
    shown = time.strftime("%H:%M:%S", time.gmtime(as_of))
    for page in pages:
        text = page.content.decode()
        assert f"Today's figures as of {shown} UTC, updating…" in text
        assert page.context["usage"]["live"]["requests"] == 1  # the last read, at once
    assert reads == []  # no page waited for the counters
    assert queued == [live.STAFF_TODAY]  # three pages, one read queued
    refresh_live_figure.apply(args=[live.STAFF_TODAY])  # the real task, as a worker runs it
    page = staff_client.get(reverse("staff:home"))
    assert page.context["usage"]["live"]["requests"] == 2
    assert "updating…" not in page.content.decode()
    assert queued == [live.STAFF_TODAY]


def test_an_empty_cache_renders_without_reading_the_counters(
    aws, customer, staff_client, queued, reads
):
    _count_today(aws, customer, 7)
    home = staff_client.get(reverse("staff:home"))
    overview = staff_client.get(reverse("staff:dashboard_overview"))
    assert home.status_code == overview.status_code == 200
    assert reads == []
    assert "Reading today's figures from the real-time counters" in home.content.decode()
    text = overview.content.decode()
    assert "Reading the customers near a limit from the real-time counters" in text
    assert "No customer is at 80% of a limit" not in text  # not said before it is known
    assert queued == [live.STAFF_TODAY, live.QUOTA_WATCH]  # each once, for both pages
    for key in queued:
        refresh_live_figure.apply(args=[key])
    assert staff_client.get(reverse("staff:home")).context["usage"]["live"]["requests"] == 7


def test_a_read_that_fails_may_be_queued_again(aws, customer, queued, monkeypatch):
    from portal.dashboard.selectors import live_today

    assert live_today()["pending"]
    live_today()
    assert queued == [live.STAFF_TODAY]  # queued once while it is pending

    def broken():
        raise ConnectionError("counters table unreachable")

    monkeypatch.setitem(live._computers, live.STAFF_TODAY, broken)
    with pytest.raises(ConnectionError):
        refresh_live_figure.apply(args=[live.STAFF_TODAY])
    assert live_today()["pending"]  # still nothing to show, never a made-up zero
    assert queued == [live.STAFF_TODAY, live.STAFF_TODAY]  # the next page queues it again


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_a_worker_reads_the_figure_a_page_found_old(
    aws, customer, staff_client, celery_worker_on_broker
):
    sent = []

    def count(sender=None, **kwargs):
        if sender == refresh_live_figure.name:
            sent.append(kwargs["body"])

    before_task_publish.connect(count, weak=False)
    try:
        _count_today(aws, customer, 1)
        live.refresh(force=True)
        as_of = _age(live.STAFF_TODAY, 60)
        _count_today(aws, customer, 3)
        page = staff_client.get(reverse("staff:home"))
        # The old figure (being read again), or already the new one when the worker's read
        # landed while the page was being made: a real worker races the page. ("updating…"
        # is checked without a worker, test_an_old_figure_is_shown_with_its_time_and_...)
        assert page.context["usage"]["live"]["requests"] in (1, 3)
        deadline = time.monotonic() + 20
        while cache.get(live.STAFF_TODAY)["as_of"] == as_of:
            assert time.monotonic() < deadline, "the worker did not read the figure"
            time.sleep(0.1)
        page = staff_client.get(reverse("staff:home"))
        assert page.context["usage"]["live"]["requests"] == 3
        assert len(sent) == 1
    finally:
        before_task_publish.disconnect(count)


@pytest.mark.parametrize("page_name", ["staff:dashboard_overview", "staff:home"])
def test_an_empty_cache_does_not_rate_the_month_in_the_request(
    aws, customer, staff_client, queued, monkeypatch, page_name
):
    from billing import selectors as billing_selectors
    from portal.tasks import warm_month_cost

    ratings = []
    real = billing_selectors.cost_so_far_all
    monkeypatch.setattr(
        billing_selectors, "cost_so_far_all", lambda *a, **kw: ratings.append(1) or real(*a, **kw)
    )
    sent = []  # queued, not run: the worker would run it
    monkeypatch.setattr(warm_month_cost, "apply_async", lambda *a, **kw: sent.append(1))
    for _ in range(2):
        page = staff_client.get(reverse(page_name))
        assert page.status_code == 200
        assert "being computed" in page.content.decode()
    assert ratings == [] and sent == [1]  # not rated in the request; queued once
    monkeypatch.undo()
    warm_month_cost.apply()  # the real task, as the worker runs it
    page = staff_client.get(reverse(page_name))
    assert "being computed" not in page.content.decode()
