"""Reads of the usage app (billed rows, ingest state, alerts), for views, commands and jobs."""

import datetime as dt
import logging

from django.db.models import Q, Sum

from core import live
from customers import money
from customers.models import Customer

from . import counters
from .models import (
    Alert,
    CustomerUsageSettings,
    IngestedDay,
    IngestRun,
    UsageDaily,
    UsageDifference,
)

logger = logging.getLogger(__name__)

COUNT_FIELDS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)


def _sums():
    return {f: Sum(f) for f in COUNT_FIELDS}


def _with_zeros(row: dict) -> dict:
    return {**row, **{f: row.get(f) or 0 for f in COUNT_FIELDS}}


def usage_rows(*, customer_id=None, start: dt.date, end: dt.date):
    qs = UsageDaily.objects.filter(day__gte=start, day__lte=end)
    if customer_id is not None:
        qs = qs.filter(customer_id=customer_id)
    return qs


def usage_by_model(*, customer_id, start: dt.date, end: dt.date) -> list[dict]:
    """Requests and tokens of one customer over [start, end], one dict per model."""
    rows = (
        usage_rows(customer_id=customer_id, start=start, end=end)
        .values("model_id")
        .annotate(**_sums())
        .order_by("model_id")
    )
    return [_with_zeros(r) for r in rows]


def usage_grouped(*, customer_id, start: dt.date, end: dt.date, by: str) -> list[dict]:
    """Totals grouped by model_id, application_id, cost_center, environment or day."""
    if by not in {"model_id", "application_id", "cost_center", "environment", "day"}:
        raise ValueError(by)
    rows = (
        usage_rows(customer_id=customer_id, start=start, end=end)
        .values(by)
        .annotate(**_sums())
        .order_by(by)
    )
    return [_with_zeros(r) for r in rows]


def usage_totals(*, customer_id=None, start: dt.date, end: dt.date) -> dict:
    return _with_zeros(
        usage_rows(customer_id=customer_id, start=start, end=end).aggregate(**_sums())
    )


def billed_totals_by_customer(*, day: dt.date) -> dict[str, tuple[int, int]]:
    """{customer_id: (requests, input + output tokens)} of one ingested day."""
    rows = (
        UsageDaily.objects.filter(day=day)
        .values("customer_id")
        .annotate(r=Sum("requests"), i=Sum("input_tokens"), o=Sum("output_tokens"))
    )
    return {str(r["customer_id"]): (r["r"] or 0, (r["i"] or 0) + (r["o"] or 0)) for r in rows}


def ingested_days(*, start: dt.date, end: dt.date) -> set[dt.date]:
    return set(
        IngestedDay.objects.filter(day__gte=start, day__lte=end).values_list("day", flat=True)
    )


def usage_export_rows(*, customer_id=None, start: dt.date, end: dt.date):
    """Every row of the range, in a stable order, streamed from the database."""
    qs = usage_rows(customer_id=customer_id, start=start, end=end).select_related(None)
    return (
        qs.order_by("day", "customer_id", "model_id", "application_id")
        .values_list(
            "day",
            "customer_id",
            "model_id",
            "application_id",
            "cost_center",
            "environment",
            *COUNT_FIELDS,
        )
        .iterator(chunk_size=5000)
    )


def customer_has_usage(*, customer_id) -> bool:
    return UsageDaily.objects.filter(Q(customer_id=customer_id)).exists()


def _percent(value: int, limit: int | None) -> int | None:
    return min(100 * value // limit, 999) if limit else None


def realtime_usage(*, customer, today: dt.date, client=None) -> dict:
    """Today's and this month's usage from the proxy's counters, provisional until ingested."""
    month_start = today.replace(day=1)
    ingested = ingested_days(start=month_start, end=today)
    result = {
        "today": None,
        "month": None,
        "error": "",
        "day": today,
        "month_days": today.day,
        "month_days_ingested": len(ingested),
        "daily_request_limit": customer.daily_request_limit,
        "monthly_token_quota": customer.monthly_token_quota,
        "monthly_budget": customer.monthly_budget,
        "currency": money.currency(),
    }
    try:
        snapshot = counters.customer_snapshot(customer.pk, today=today, client=client)
    except Exception:  # the page still shows the billed figures without the live counters
        logger.warning("usage counters unavailable", exc_info=True)
        result["error"] = "Real-time counters are unavailable right now."
        return result
    result.update(snapshot)
    result["today_percent"] = _percent(snapshot["today"].requests, customer.daily_request_limit)
    result["month_percent"] = _percent(snapshot["month"].quota_used, customer.monthly_token_quota)
    result.update(month_spend(customer=customer, month_totals=snapshot["month"]))
    return result


def month_spend(*, customer, month_totals) -> dict:
    """This month's spend (from the MONTH item's spend_micros, holds of calls in flight
    included) as an exact Decimal of the currency, and the share of the customer's budget."""
    spent = month_totals.spend_micros
    percent = money.percent_used(spent, money.budget_micros(customer.monthly_budget))
    return {
        "month_spend": money.amount_from_micros(spent),
        "budget_percent": None if percent is None else min(percent, 999),
    }


def budget_usage(*, customer, today: dt.date, client=None) -> dict:
    """The customer's monthly budget and this month's spend, from one read of the MONTH item
    (the staff customer page)."""
    result = {"monthly_budget": customer.monthly_budget, "error": "", "month_spend": None}
    try:
        key = (counters.customer_pk(customer.pk), counters.month_sk(today))
        totals = counters.read_counters([key], client=client)[key]
    except Exception:
        logger.warning("usage counters unavailable", exc_info=True)
        result["error"] = "Real-time counters are unavailable right now."
        return result
    return {**result, **month_spend(customer=customer, month_totals=totals)}


def month_usage_many(*, customers, today: dt.date, client=None) -> dict:
    """This month's tokens and spend of a page of customers, with the shares of their monthly
    token quota and budget, from one batched read of their MONTH items (the staff customer
    list): {"error", "currency", "rows": {customer id: {...}}}."""
    customers = list(customers)
    result = {"error": "", "currency": money.currency(), "rows": {}}
    if not customers:
        return result
    keys = {c.pk: (counters.customer_pk(c.pk), counters.month_sk(today)) for c in customers}
    try:
        totals = counters.read_counters(list(keys.values()), client=client)
    except Exception:  # the list still shows the customers without the live figures
        logger.warning("usage counters unavailable", exc_info=True)
        result["error"] = "Real-time counters are unavailable right now."
        return result
    for c in customers:
        month = totals[keys[c.pk]]
        quota_percent = _percent(month.quota_used, c.monthly_token_quota)
        result["rows"][c.pk] = {
            "tokens": month.tokens,
            "quota_used": month.quota_used,
            "quota_percent": None if quota_percent is None else min(quota_percent, 999),
            **month_spend(customer=c, month_totals=month),
        }
    return result


def tokens_last_used(*, tokens, client=None) -> dict:
    """Each token's last call as the proxy recorded it (one small item per token, set in the
    transaction that counts the call): {token id string: aware datetime}. Empty when the
    counters cannot be read; the pages then show the nightly import's value."""
    try:
        return counters.tokens_last_used([t.pk for t in tokens], client=client)
    except Exception:
        logger.warning("usage counters unavailable", exc_info=True)
        return {}


def with_last_use(tokens, *, client=None) -> list:
    """The tokens, each with `last_use`: the later of the proxy's live record and the nightly
    import's `last_used_at`."""
    tokens = list(tokens)
    live = tokens_last_used(tokens=tokens, client=client) if tokens else {}
    for token in tokens:
        seen = [t for t in (token.last_used_at, live.get(str(token.pk))) if t is not None]
        token.last_use = max(seen) if seen else None
    return tokens


def staff_live_today() -> dict:
    """Today's live totals of the active customers (staff home, overview, usage dashboard);
    pages read it through core.live.figure, which bounds its age."""

    from .services import utc_today

    active = Customer.objects.filter(status=Customer.Status.ACTIVE)
    return realtime_usage_all(customers=list(active), today=utc_today())


def realtime_usage_all(*, customers, today: dt.date, client=None) -> dict:
    """Today's counters of many customers (staff dashboard), busiest first."""
    try:
        totals = counters.day_totals([str(c.pk) for c in customers], day=today, client=client)
    except Exception:
        logger.warning("usage counters unavailable", exc_info=True)
        return {"error": "Real-time counters are unavailable right now.", "rows": []}
    rows = [(c, totals.get(str(c.pk), counters.CounterTotals())) for c in customers]
    rows = sorted((r for r in rows if r[1].requests), key=lambda r: -r[1].tokens)
    return {
        "error": "",
        "rows": rows,
        "requests": sum(t.requests for _, t in rows),
        "tokens": sum(t.tokens for _, t in rows),
    }


def ingest_run_list():
    return IngestRun.objects.select_related("requested_by")


def alert_list(*, customer_id=None):
    qs = Alert.objects.select_related("customer")
    return qs.filter(customer_id=customer_id) if customer_id else qs


def difference_list(*, day: dt.date | None = None):
    qs = UsageDifference.objects.select_related("customer")
    return qs.filter(day=day) if day else qs


def usage_settings_for(*, customer) -> CustomerUsageSettings:
    """The customer's settings, or unsaved defaults."""
    from django.conf import settings

    found = CustomerUsageSettings.objects.filter(customer=customer).first()
    if found:
        return found
    return CustomerUsageSettings(
        customer=customer, hourly_token_threshold=settings.USAGE_HOURLY_TOKEN_THRESHOLD or None
    )


GROUPABLE = ("customer_id", "day", "model_id", "application_id", "cost_center", "environment")


def usage_grouped_by(
    *, start: dt.date, end: dt.date, fields: tuple[str, ...], customer_id=None
) -> list[dict]:
    """Totals over [start, end] grouped by several columns at once (dashboard charts): one
    query whatever the number of rows."""
    if not fields or any(f not in GROUPABLE for f in fields):
        raise ValueError(fields)
    rows = (
        usage_rows(customer_id=customer_id, start=start, end=end)
        .values(*fields)
        .annotate(**_sums())
        .order_by(*fields)
    )
    return [_with_zeros(r) for r in rows]


def user_usage_by_application(*, customer_id, start: dt.date, end: dt.date) -> list[dict]:
    """One customer's tokens per application and end user (tags.userId) over
    [start, end], from the per-user rows; one query whatever the data size."""
    from django.db.models import Sum

    from .models import UsageUserDaily

    rows = (
        UsageUserDaily.objects.filter(customer_id=customer_id, day__gte=start, day__lte=end)
        .values("application_id", "user_id")
        .annotate(
            requests=Sum("requests"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
        )
        .order_by("application_id", "user_id")
    )
    return [{**r, "application_id": r["application_id"] or "(none)",
             "user_id": r["user_id"] or "(no userId)"} for r in rows]  # fmt: skip


def quota_usage_all(*, customers, today: dt.date, client=None) -> dict:
    """Today's requests and this month's tokens against the limits of every customer that has
    one, from the live counters (batched reads); highest share of a limit first."""
    limited = [c for c in customers if c.monthly_token_quota or c.daily_request_limit]
    if not limited:
        return {"error": "", "rows": []}
    keys = []
    for c in limited:
        pk = counters.customer_pk(c.pk)
        keys += [(pk, counters.day_sk(today)), (pk, counters.month_sk(today))]
    try:
        totals = counters.read_counters(keys, client=client)
    except Exception:
        logger.warning("usage counters unavailable", exc_info=True)
        return {"error": "Real-time counters are unavailable right now.", "rows": []}
    rows = []
    for c in limited:
        pk = counters.customer_pk(c.pk)
        day, month = totals[(pk, counters.day_sk(today))], totals[(pk, counters.month_sk(today))]
        today_percent = _percent(day.requests, c.daily_request_limit)
        month_percent = _percent(month.quota_used, c.monthly_token_quota)
        rows.append(
            {
                "customer": c,
                "today_requests": day.requests,
                "today_percent": today_percent,
                "month_tokens": month.quota_used,
                "month_percent": month_percent,
                "worst_percent": max(p for p in (today_percent, month_percent) if p is not None),
            }
        )
    rows.sort(key=lambda r: (-r["worst_percent"], r["customer"].name))
    return {"error": "", "rows": rows}


def latency_rows(*, start: dt.date, end: dt.date, model_id: str = "", customer_id=None):
    """Requests, failed calls and latency p50 / p95 by day and model over [start, end], newest
    day first: every customer's (ModelLatencyDaily) or one customer's (UsageLatencyDaily)."""
    from .models import ModelLatencyDaily, UsageLatencyDaily

    if customer_id is None:
        qs = ModelLatencyDaily.objects.all()
    else:
        qs = UsageLatencyDaily.objects.filter(customer_id=customer_id)
    qs = qs.filter(day__gte=start, day__lte=end)
    if model_id:
        qs = qs.filter(model_id=model_id)
    return qs.order_by("-day", "model_id")


# --- Home pages (the portal's home views put these beside the other apps' figures) ---------


def home_customer(customer, *, alerts: int = 5) -> dict:
    """A customer's live usage today and its latest alerts (usage/_home_customer.html,
    dashboard/_recent_alerts.html)."""
    from .services import utc_today  # services reads selectors

    return {
        "live": realtime_usage(customer=customer, today=utc_today()),
        "alerts": list(alert_list(customer_id=customer.pk)[:alerts]),
    }


def home_staff() -> dict:
    """Today's live totals across customers (at most STAFF_LIVE_MAX_AGE_SECONDS old,
    core/live.py) and the import pipeline's health (usage/_home_staff.html)."""
    return {
        "live": live.figure(live.STAFF_TODAY),
        "last_run": ingest_run_list().first(),
        "differences": difference_list().count(),
    }
