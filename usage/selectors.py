"""Reads of the usage app (billed rows, ingest state, alerts), for views, commands and jobs."""

import datetime as dt

from django.db.models import Q, Sum

from .models import IngestedDay, UsageDaily

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
