"""The dashboards' billed views are cached until the next ingest (one cheap query on a hit),
and the default views are computed into the cache after each ingest."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.cache import cache

from billing.models import ModelPrice
from portal.dashboard import selectors
from usage.forms import StaffExportForm
from usage.models import IngestedDay
from usage.services import utc_today

pytestmark = pytest.mark.django_db


def test_overview_is_cached_until_a_day_is_ingested(
    many_customers, make_usage, prices, django_assert_num_queries
):
    today = utc_today()
    customers = many_customers(2)
    make_usage(customers, days=2)
    first = selectors.overview(today=today)
    with django_assert_num_queries(1):
        assert selectors.overview(today=today) == first
    make_usage(many_customers(1), days=1)  # not visible until an ingest says so
    assert selectors.overview(today=today) == first
    IngestedDay.objects.create(day=today - dt.timedelta(days=1), engine="test")
    again = selectors.overview(today=today)
    assert again["month"]["requests"] > first["month"]["requests"] or today.day == 1
    assert again["top_rows"] != first["top_rows"]


def _period():
    today = utc_today()
    return today - dt.timedelta(days=5), today


@pytest.mark.parametrize(
    "compute",
    [
        lambda start, end: selectors.models_and_applications(start=start, end=end),
        lambda start, end: selectors.application_heatmap(start=start, end=end),
        lambda start, end: selectors.cost_by_tag(start=start, end=end, by="application_id"),
    ],
    ids=["models", "heatmap", "cost"],
)
def test_billed_views_are_cached_until_a_day_is_ingested(
    compute, many_customers, make_usage, prices, django_assert_max_num_queries
):
    start, end = _period()
    make_usage(many_customers(1), days=2)
    first = compute(start, end)
    with django_assert_max_num_queries(2):  # the ingest state (and the small price table)
        assert compute(start, end) == first
    make_usage(many_customers(2)[1:], days=2, extra_apps=3)  # loaded, not yet marked ingested
    assert compute(start, end) == first
    IngestedDay.objects.create(day=end - dt.timedelta(days=1), engine="test")
    assert compute(start, end) != first
    assert compute(start - dt.timedelta(days=1), end) is not None  # other filters, other key


def test_cost_by_tag_is_recomputed_when_a_price_changes(many_customers, make_usage, prices):
    start, end = _period()
    make_usage(many_customers(1), days=2)
    before = selectors.cost_by_tag(start=start, end=end, by="cost_center")
    ModelPrice.objects.filter(model_id="test.model-a").update(input_per_1k=Decimal("0.3"))
    after = selectors.cost_by_tag(start=start, end=end, by="cost_center")
    assert after["total"] > before["total"]


def test_warming_after_an_ingest_fills_every_default_view(
    many_customers, make_usage, prices, django_assert_max_num_queries
):
    from portal.tasks import warm_dashboards
    from usage.comparisons import staff_comparisons

    make_usage(many_customers(2), days=2)
    cache.clear()
    assert warm_dashboards.delay().get() == [
        "overview", "models", "heatmap", "cost:cost_center", "cost:environment",
        "cost:application_id", "usage-comparisons",
    ]  # fmt: skip
    start, end = StaffExportForm().range()
    with django_assert_max_num_queries(1):  # the ingest state only: the aggregate is cached
        staff_comparisons(today=utc_today())
    with django_assert_max_num_queries(1):
        selectors.overview(today=utc_today())
    with django_assert_max_num_queries(1):
        selectors.models_and_applications(start=start, end=end)
    with django_assert_max_num_queries(1):
        selectors.application_heatmap(start=start, end=end)
    for by in selectors.COST_TAG_LABELS:
        with django_assert_max_num_queries(2):
            selectors.cost_by_tag(start=start, end=end, by=by)


def test_the_ingest_tasks_queue_the_warming(monkeypatch, customer, settings, tmp_path):
    import portal.tasks
    from usage.services import ingest_run_create
    from usage.tasks import ingest_run_task

    settings.USAGE_EVENTS_DIR = str(tmp_path)
    settings.USAGE_ENGINE = "duckdb"
    queued = []
    monkeypatch.setattr(portal.tasks.warm_dashboards, "delay", lambda: queued.append(True))
    run = ingest_run_create(days=[utc_today() - dt.timedelta(days=1)], trigger="command")
    assert ingest_run_task.delay(run.pk).get() == "succeeded"
    assert queued == [True]


def test_beat_keeps_this_months_cost_warm_for_the_staff_pages(
    many_customers, make_usage, prices, django_assert_num_queries, staff_client
):
    from billing.selectors import staff_cost_so_far
    from portal.celery import app
    from portal.tasks import warm_month_cost

    make_usage(many_customers(2), days=2)
    cache.clear()
    so_far = warm_month_cost.delay().get()
    with django_assert_num_queries(0):
        assert str(staff_cost_so_far()["so_far"]) == so_far
    ModelPrice.objects.filter(model_id="test.model-a").update(input_per_1k=Decimal("3"))
    assert str(staff_cost_so_far()["so_far"]) == so_far  # the pages read the cached figure
    if utc_today().day > 1:  # this month has billed days: the next beat run sees the change
        assert warm_month_cost.delay().get() != so_far
    entries = {e["task"]: e for e in app.conf.beat_schedule.values()}
    assert "portal.tasks.warm_month_cost" in entries
    assert staff_client.get("/staff/").status_code == 200


DEFAULT_VIEWS = {  # page: (the computation it must not run in the request, a chart id)
    "/staff/dashboard/": ("_overview", "usage-trend"),
    "/staff/dashboard/models/": ("_models_and_applications", "tokens-by-app-model"),
    "/staff/dashboard/heatmap/": ("_application_heatmap", "app-customer-heatmap"),
    "/staff/dashboard/cost/": ("_cost_by_tag", "cost-by-tag"),
}


@pytest.mark.parametrize("url", DEFAULT_VIEWS)
def test_an_empty_cache_does_not_aggregate_a_default_view_in_the_request(
    url, aws, many_customers, make_usage, prices, staff_client, monkeypatch
):
    from portal.tasks import warm_dashboards

    compute, chart_id = DEFAULT_VIEWS[url]
    make_usage(many_customers(2), days=3)
    aggregates = []
    real = getattr(selectors, compute)
    monkeypatch.setattr(selectors, compute, lambda **kw: aggregates.append(1) or real(**kw))
    sent = []  # queued, not run: the worker would run it
    monkeypatch.setattr(warm_dashboards, "apply_async", lambda *a, **kw: sent.append(1))
    cache.clear()
    for _ in range(2):
        page = staff_client.get(url)
        assert page.status_code == 200
        body = page.content.decode()
        assert "being computed after a restart" in body
        assert f'id="{chart_id}"' not in body
    assert aggregates == [] and sent == [1]  # not aggregated in the request; queued once
    warm_dashboards.apply()  # the real task, as the worker runs it
    assert aggregates
    page = staff_client.get(url)
    body = page.content.decode()
    assert "being computed" not in body and f'id="{chart_id}"' in body
    if url == "/staff/dashboard/":
        assert page.context["month"]["requests"] > 0 or utc_today().day == 1


def test_a_filtered_view_is_computed_in_the_request(
    aws, many_customers, make_usage, prices, staff_client, monkeypatch
):
    from portal.tasks import warm_dashboards

    customers = many_customers(2)
    make_usage(customers, days=3)
    monkeypatch.setattr(warm_dashboards, "apply_async", lambda *a, **kw: pytest.fail("queued"))
    cache.clear()
    start, end = StaffExportForm().range()
    query = f"?start={start - dt.timedelta(days=3)}&end={end}"
    for url, (_, chart_id) in DEFAULT_VIEWS.items():
        if url == "/staff/dashboard/":
            continue  # the overview has no filters
        body = staff_client.get(url + query).content.decode()
        assert "being computed" not in body
        assert "chart-canvas" in body


def test_the_overview_queues_the_warming_again_when_no_broker_takes_it(
    aws, many_customers, staff_client, monkeypatch
):
    from portal.tasks import warm_dashboards

    attempts = []

    def no_broker(*a, **kw):
        attempts.append(1)
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(warm_dashboards, "apply_async", no_broker)
    cache.clear()
    for _ in range(2):
        assert staff_client.get("/staff/dashboard/").status_code == 200
    assert attempts == [1, 1]  # the lock is released when the queueing failed
