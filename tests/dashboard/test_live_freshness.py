"""Staff live figures are never shown as fresh when older than STAFF_LIVE_MAX_AGE_SECONDS (10),
beat re-reads them only while staff look (so they stay within the bound), and a starting worker
fills the staff caches so the first request after a deploy reads no counters and rates no
month."""

import pytest
from django.core.cache import cache
from django.urls import reverse

from core import live
from portal.celery import app
from portal.dashboard.selectors import live_today
from usage import counters
from usage.services import utc_today


class Clock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(live.time, "time", clock)
    return clock


def _count_today(aws, customer, requests):
    item = {
        "pk": {"S": counters.customer_pk(customer.pk)},
        "sk": {"S": counters.day_sk(utc_today())},
        "requests": {"N": str(requests)},
    }
    aws.client("dynamodb").put_item(TableName=counters.counters_table_name(), Item=item)


def test_a_proxy_call_shows_within_the_max_age_while_staff_look(aws, customer, clock, settings):
    """Beat re-reads the watched figures every STAFF_LIVE_REFRESH_SECONDS: a call the proxy
    counted is on the page, as fresh, within STAFF_LIVE_MAX_AGE_SECONDS."""
    assert settings.STAFF_LIVE_MAX_AGE_SECONDS <= 10
    _count_today(aws, customer, 1)
    first = live_today()  # a staff page: nothing cached, the read is queued (eager here)
    assert first["requests"] == 1 and not first["stale"]
    _count_today(aws, customer, 2)  # a call the proxy counted just after the read
    clock.now += settings.STAFF_LIVE_MAX_AGE_SECONDS - 1
    assert live_today()["requests"] == 1  # within the bound: the cached read, shown as fresh
    clock.now += 1 - settings.STAFF_LIVE_MAX_AGE_SECONDS + settings.STAFF_LIVE_REFRESH_SECONDS
    assert set(live.refresh()) == {live.STAFF_TODAY, live.QUOTA_WATCH}  # beat: watched
    clock.now += settings.STAFF_LIVE_REFRESH_SECONDS - 1
    shown = live_today()
    assert shown["requests"] == 2 and not shown["stale"]
    assert shown["age"] <= settings.STAFF_LIVE_MAX_AGE_SECONDS


def test_a_figure_past_the_bound_is_never_shown_as_fresh(aws, customer, clock, settings):
    settings.STAFF_LIVE_MAX_AGE_SECONDS = 2
    _count_today(aws, customer, 1)
    live.refresh(force=True)
    clock.now += 3
    cache.set(live.REFRESHING_KEY + live.STAFF_TODAY, 1, 60)  # a read already queued
    shown = live_today()
    assert shown["requests"] == 1 and shown["stale"] and shown["age"] == 3


def test_beat_refreshes_only_while_staff_look(aws, customer, monkeypatch):
    reads = []
    real = counters.read_counters
    monkeypatch.setattr(
        counters, "read_counters", lambda keys, **kw: reads.append(1) or real(keys, **kw)
    )
    assert live.refresh() == []  # nobody looked: no read
    assert reads == []
    live_today()  # a staff page shows it
    reads.clear()
    assert set(live.refresh()) == {live.STAFF_TODAY, live.QUOTA_WATCH}
    assert reads


def test_beat_interval_is_below_the_max_age(settings):
    entry = app.conf.beat_schedule.get("portal-refresh-live-figures")
    schedule = entry["schedule"] if entry else None
    if schedule is None:  # added on configure: the periodic task list
        app.loader.import_default_modules()
        app.on_after_configure.send(sender=app)
        schedule = app.conf.beat_schedule["portal-refresh-live-figures"]["schedule"]
    seconds = getattr(schedule, "run_every", schedule)
    seconds = seconds.total_seconds() if hasattr(seconds, "total_seconds") else float(seconds)
    assert seconds == settings.STAFF_LIVE_REFRESH_SECONDS < settings.STAFF_LIVE_MAX_AGE_SECONDS


def test_first_request_after_warming_reads_no_counters(
    staff_client, aws, customer, prices, monkeypatch
):
    from billing import selectors as billing_selectors
    from portal.tasks import warm_after_deploy

    assert warm_after_deploy() == ["month cost", "billed views", "live figures", "model names"]
    reads, ratings = [], []
    monkeypatch.setattr(counters, "read_counters", lambda *a, **kw: reads.append(1))
    monkeypatch.setattr(billing_selectors, "cost_so_far_all", lambda *a, **kw: ratings.append(1))
    for name in ("staff:home", "staff:dashboard_overview"):
        assert staff_client.get(reverse(name)).status_code == 200
    assert reads == [] and ratings == []
