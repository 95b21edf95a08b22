"""Reads behind the staff dashboards: they combine the usage, billing and customers apps'
selectors (no business rule is restated here) and shape the rows for charts.

Every function runs a fixed number of queries whatever the data size: grouped queries, never
one query per customer, model or day. Live counters (DynamoDB) are read in the background, in
batches, and pages show the last read with its age (core/live.py). Aggregates of billed usage
are cached until the next ingest (`until_next_ingest`), and `warm_billed_views` fills that
cache for the default views after each ingest, so no one waits for them.
"""

import datetime as dt
import logging
from collections import defaultdict

from django.core.cache import cache
from django.db.models import Q

from billing import selectors as billing_selectors
from core import charts
from core.live import QUOTA_WATCH, STAFF_TODAY, figure
from core.model_names import display_name
from customers import selectors as customer_selectors
from customers.models import Customer
from usage import selectors as usage_selectors
from usage.billed_cache import until_next_ingest
from usage.comparisons import staff_comparisons
from usage.forms import StaffExportForm
from usage.services import days_between, utc_today

logger = logging.getLogger(__name__)

TREND_DAYS = 30
TOP_CUSTOMERS = 10
NEAR_QUOTA_PERCENT = 80


def tokens(row: dict) -> int:
    return row["input_tokens"] + row["output_tokens"]


def _customer_names(ids) -> dict:
    return {c.pk: c.name for c in customer_selectors.customers_by_ids(ids=ids)}


def live_today() -> dict:
    """Today's live totals of the active customers from the cache (core/live.py): marked
    `stale` with its time when older than STAFF_LIVE_MAX_AGE_SECONDS, `pending` when not read
    yet; either way a read is queued and the page does not wait for it."""

    return figure(STAFF_TODAY)


MONTH_COST_QUEUED = "dashboard:month-cost-queued"
DASHBOARDS_QUEUED = "dashboard:billed-views-queued"
QUEUED_LOCK_SECONDS = 120


def queue_once(lock_key: str, task) -> None:
    """Queue `task` unless it is queued already (the task deletes `lock_key` when done; the
    lock expires after QUEUED_LOCK_SECONDS if a worker died on it). With no broker the next
    page queues it again."""
    if not cache.add(lock_key, 1, QUEUED_LOCK_SECONDS):
        return
    try:
        task.apply_async(retry=False)
    except Exception:
        cache.delete(lock_key)
        logger.warning("%s: not queued", task.name, exc_info=True)


def month_cost() -> dict:
    """This month's cost so far and forecast over active customers, from billing's cache (beat
    recomputes it every 5 minutes). With none cached (an emptied cache) the page does not rate
    every customer itself (about 2 s at 10,000): it gets {"pending": True} and one computation
    is queued (portal.tasks.warm_month_cost)."""
    summary = cache.get(billing_selectors.STAFF_SUMMARY_KEY)
    if summary is not None:
        return summary
    from portal.tasks import warm_month_cost

    queue_once(MONTH_COST_QUEUED, warm_month_cost)
    summary = cache.get(billing_selectors.STAFF_SUMMARY_KEY)  # done already (eager)
    return summary if summary is not None else {"pending": True}


def overview(*, today: dt.date, in_background=None) -> dict | None:
    """The overview's billed figures (this month's totals, the 30-day trend, the top
    customers), cached until the next ingest (`in_background`: see until_next_ingest)."""
    return until_next_ingest(
        "overview", (today,), lambda: _overview(today=today), in_background=in_background
    )


def queue_dashboards_warming() -> None:
    """Queue the dashboards' warming task once (a page that found its default view missing
    from an emptied cache: it shows "being computed" instead of aggregating in the request)."""
    from portal.tasks import warm_dashboards

    queue_once(DASHBOARDS_QUEUED, warm_dashboards)


def overview_for_page(*, today: dt.date) -> dict:
    """`overview` for the page, which never aggregates in the request: on a cache miss (an
    emptied cache, before the worker's warming task) the billed figures are marked
    `billed_pending` and the dashboards' warming task is queued once (about 1.5 s of
    aggregates at 10,000 customers, which the first visitor would otherwise wait for)."""
    found = overview(today=today, in_background=queue_dashboards_warming)
    if found is not None:
        return found
    return {"billed_pending": True, "month": None, "trend": None, "top_chart": None, "top_rows": []}


def _overview(*, today: dt.date) -> dict:
    month_start = today.replace(day=1)
    trend_start = today - dt.timedelta(days=TREND_DAYS)
    month = usage_selectors.usage_totals(start=month_start, end=today)
    by_day = usage_selectors.usage_grouped_by(start=trend_start, end=today, fields=("day",))
    per_day = {r["day"]: r for r in by_day}
    days = days_between(trend_start, today - dt.timedelta(days=1))
    x = [d.isoformat() for d in days]
    trend = charts.lines(
        "usage-trend",
        f"Billed usage per day, last {TREND_DAYS} days",
        x_labels=x,
        series={
            "Tokens (input + output)": [tokens(per_day[d]) if d in per_day else 0 for d in days],
            "Requests": [per_day[d]["requests"] if d in per_day else 0 for d in days],
        },
        x_title="Day (UTC)",
        y_title="Tokens",
        secondary=("Requests",),
    )
    by_customer = usage_selectors.usage_grouped_by(
        start=month_start, end=today, fields=("customer_id",)
    )
    by_customer.sort(key=lambda r: -tokens(r))
    top = by_customer[:TOP_CUSTOMERS]
    names = _customer_names([r["customer_id"] for r in top])
    top_rows = [{**r, "name": names.get(r["customer_id"], "?"), "tokens": tokens(r)} for r in top]
    top_chart = charts.bars(
        "top-customers",
        "Top customers this month (billed tokens)",
        labels=[r["name"] for r in top_rows],
        values=[r["tokens"] for r in top_rows],
        x_title="Tokens",
        y_title="Customer",
        columns=["Customer", "Tokens", "Requests"],
        rows=[[r["name"], r["tokens"], r["requests"]] for r in top_rows],
    )
    return {
        "month": {**month, "tokens": tokens(month)},
        "trend": trend,
        "top_chart": top_chart,
        "top_rows": top_rows,
    }


def trend_with_today(trend: dict | None, *, live: dict, today: dt.date) -> dict | None:
    """The billed trend (days up to yesterday) with today's point from the live counters,
    marked as today so far; unchanged when the counters could not be read or are being read
    (None while the billed figures are being computed)."""
    if trend is None or live.get("error") or live.get("pending"):
        return trend
    return charts.with_partial_point(
        trend,
        x_label=today.isoformat(),
        values={
            "Tokens (input + output)": live.get("tokens", 0),
            "Requests": live.get("requests", 0),
        },
    )


def quota_watch(*, today: dt.date | None = None) -> dict:
    """Customers at or over NEAR_QUOTA_PERCENT of a limit (live counters from the cache, with
    their age when old, or `pending`: core/live.py)."""

    return figure(QUOTA_WATCH)


def compute_quota_watch() -> dict:
    customers = Customer.objects.filter(status=Customer.Status.ACTIVE).filter(
        Q(monthly_token_quota__isnull=False) | Q(daily_request_limit__isnull=False)
    )
    result = usage_selectors.quota_usage_all(customers=list(customers), today=utc_today())
    return {
        "error": result["error"],
        "rows": [r for r in result["rows"] if r["worst_percent"] >= NEAR_QUOTA_PERCENT],
    }


def failing_syncs(limit: int = 20) -> dict:
    failing = customer_selectors.customer_list(sync="failing")
    return {"rows": list(failing[:limit]), "count": failing.count()}


def recent_alerts(limit: int = 10) -> list:
    return list(usage_selectors.alert_list()[:limit])


def model_labels(model_ids) -> dict:
    """{model id: the catalog's display name} for chart legends and tables; a name two ids
    share, and the "Other" and "(none)" labels, keep the id."""

    names = {m: display_name(m) for m in model_ids if m not in (charts.OTHER, charts.NONE_LABEL)}
    shared = {n for n in names.values() if list(names.values()).count(n) > 1}
    return {
        m: (f"{names[m]} ({m})" if names.get(m) in shared else names.get(m, m)) for m in model_ids
    }


def models_and_applications(
    *, start: dt.date, end: dt.date, customer_id=None, in_background=None
) -> dict | None:
    """Stacked bars (tokens by application and model) and share by model (None while the
    warming task computes it, when `in_background` is given: see until_next_ingest)."""
    return until_next_ingest(
        "models",
        (start, end, customer_id),
        lambda: _models_and_applications(start=start, end=end, customer_id=customer_id),
        in_background=in_background,
    )


def _models_and_applications(*, start: dt.date, end: dt.date, customer_id=None) -> dict:
    rows = usage_selectors.usage_grouped_by(
        start=start, end=end, fields=("application_id", "model_id"), customer_id=customer_id
    )
    apps, models, matrix = charts.pivot(
        rows, row_key="application_id", col_key="model_id", value=tokens
    )
    names = model_labels(models)
    stacked = charts.stacked_bars(
        "tokens-by-app-model",
        "Tokens by application and model",
        x_labels=apps,
        series={names[m]: [matrix[i][j] for i in range(len(apps))] for j, m in enumerate(models)},
        x_title="Application",
        y_title="Tokens",
    )
    model_totals = defaultdict(int)
    for r in rows:
        model_totals[r["model_id"]] += tokens(r)
    keep = charts.top_keys(model_totals, 10)
    names = model_labels([charts.label(k) for k in keep])
    labels = [names[charts.label(k)] for k in keep]
    values = [model_totals[k] for k in keep]
    if len(model_totals) > len(keep):
        labels.append(charts.OTHER)
        values.append(sum(v for k, v in model_totals.items() if k not in keep))
    share = charts.pie("share-by-model", "Share of tokens by model", labels=labels, values=values)
    return {"stacked": stacked, "share": share}


def application_user_heatmap(*, start: dt.date, end: dt.date, customer) -> dict:
    """The heatmap for one customer: applications x end users (tags.userId)."""
    rows = usage_selectors.user_usage_by_application(customer_id=customer.pk, start=start, end=end)
    apps, users, matrix = charts.pivot(
        rows, row_key="application_id", col_key="user_id", value=tokens, max_rows=20, max_cols=25
    )
    return {
        "heatmap": charts.heatmap(
            "app-user-heatmap",
            f"Tokens by application and user: {customer.name}",
            x_labels=users,
            y_labels=apps,
            matrix=matrix,
            x_title="User (userId tag)",
            y_title="Application",
        )
    }


def application_heatmap(*, start: dt.date, end: dt.date, in_background=None) -> dict | None:
    return until_next_ingest(
        "heatmap",
        (start, end),
        lambda: _application_heatmap(start=start, end=end),
        in_background=in_background,
    )


def _application_heatmap(*, start: dt.date, end: dt.date) -> dict:
    """The application x user heatmap. Billed usage rows have no end-user dimension (the
    proxy's usage events carry an optional `tags.userId`, but the daily aggregation leaves it
    out), so the "user" axis is the customer account: application x customer, in tokens."""
    rows = usage_selectors.usage_grouped_by(
        start=start, end=end, fields=("application_id", "customer_id")
    )
    apps, customer_ids, matrix = charts.pivot(
        rows, row_key="application_id", col_key="customer_id", value=tokens,
        max_rows=20, max_cols=25,
    )  # fmt: skip
    # pivot labels are str(customer_id); show names (one query, for the kept customers only).
    kept = {r["customer_id"] for r in rows if str(r["customer_id"]) in set(customer_ids)}
    names = {str(pk): name for pk, name in _customer_names(kept).items()}
    x = [names.get(c, c) for c in customer_ids]
    return {
        "heatmap": charts.heatmap(
            "app-customer-heatmap",
            "Tokens by application and customer",
            x_labels=x,
            y_labels=apps,
            matrix=matrix,
            x_title="Customer",
            y_title="Application",
        )
    }


COST_TAG_LABELS = {
    "cost_center": "Cost center",
    "environment": "Environment",
    "application_id": "Application",
}


def cost_by_tag(
    *, start: dt.date, end: dt.date, by: str, customer_id=None, in_background=None
) -> dict | None:
    """Cost allocation by tag, priced by billing (list price). Cached until the
    next ingest or the next change to the price book (its rows are part of the key).
    `in_background`: see until_next_ingest (None while the warming task computes it)."""
    prices = billing_selectors.price_book()[0]
    return until_next_ingest(
        "cost",
        (start, end, by, customer_id),
        lambda: _cost_by_tag(start=start, end=end, by=by, customer_id=customer_id),
        extra=repr(sorted(prices.items())),
        in_background=in_background,
    )


def _cost_by_tag(*, start: dt.date, end: dt.date, by: str, customer_id=None) -> dict:
    result = billing_selectors.usage_cost_by_tag(
        start=start,
        end=end,
        by=by,
        customer_ids=[customer_id] if customer_id else None,
    )
    rows = result["rows"][:25]
    title = f"Cost by {COST_TAG_LABELS[by].lower()} ({result['currency']})"
    chart = charts.bars(
        "cost-by-tag",
        title,
        labels=[charts.label(r["key"]) for r in rows],
        values=[r["cost"] for r in rows],
        x_title=f"Cost ({result['currency']})",
        y_title=COST_TAG_LABELS[by],
        columns=[COST_TAG_LABELS[by], f"Cost ({result['currency']})", "Tokens", "Requests"],
        rows=[[charts.label(r["key"]), r["cost"], r["tokens"], r["requests"]] for r in rows],
    )
    return {**result, "chart": chart, "shown": len(rows), "by_label": COST_TAG_LABELS[by]}


def warm_billed_views(*, today: dt.date | None = None) -> list[str]:
    """Compute the default (unfiltered, this month) billed views into the cache: run after an
    ingest, so the first staff member to open a dashboard does not wait for the aggregates."""

    today = today or utc_today()
    start, end = StaffExportForm().range()
    overview(today=today)
    models_and_applications(start=start, end=end)
    application_heatmap(start=start, end=end)
    for by in COST_TAG_LABELS:
        cost_by_tag(start=start, end=end, by=by)
    staff_comparisons(today=today)
    return [
        "overview",
        "models",
        "heatmap",
        *(f"cost:{by}" for by in COST_TAG_LABELS),
        "usage-comparisons",
    ]
