"""Reads: usage priced for a period, plans in force, wallet balances, invoices, cost so far."""

import calendar
from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from django.conf import settings
from django.db.models import Case, DateField, F, Q, Sum, Value, When
from django.shortcuts import get_object_or_404
from django.utils import timezone

from customers.models import Customer
from usage.models import UsageDaily

from .models import CreditApplication, CreditGrant, CustomerPlan, Invoice, ModelPrice, Payment
from .pricing import (
    CENT,
    INFERENCE_PROFILE_PREFIXES,
    TokenPrice,
    TokenUsage,
    price_model_id,
    round_money,
    to_decimal,
    token_cost,
)
from .rating import PlanTerms, UsageRow, rate_usage


def month_bounds(day: date) -> tuple[date, date]:
    first = day.replace(day=1)
    last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
    return first, last


def previous_month(today: date) -> tuple[date, date]:
    return month_bounds(today.replace(day=1) - timedelta(days=1))


def price_book() -> tuple[
    dict[tuple[str, date], TokenPrice], dict[str, list[date]], dict[str, str]
]:
    """Every price row (a small table): prices keyed by (model, effective_from), each model's
    effective dates newest first, and display names."""
    prices: dict[tuple[str, date], TokenPrice] = {}
    dates: defaultdict[str, list[date]] = defaultdict(list)
    names: dict[str, str] = {}
    for row in ModelPrice.objects.order_by("model_id", "-effective_from"):
        prices[(row.model_id, row.effective_from)] = TokenPrice(
            input_per_1k=row.input_per_1k,
            output_per_1k=row.output_per_1k,
            cache_read_per_1k=row.cache_read_per_1k,
            cache_write_per_1k=row.cache_write_per_1k,
            per_request=row.per_request,
        )
        dates[row.model_id].append(row.effective_from)
        if row.display_name:
            names.setdefault(row.model_id, row.display_name)
    return prices, dict(dates), names


def _price_from_expression(dates: dict[str, list[date]]) -> Case:
    """SQL: the effective_from of the price in force on each usage row's day (NULL if none).
    Newest first, so the first matching WHEN is the price in force that day."""
    whens = [
        When(
            model_id__in=[model_id, *(p + model_id for p in INFERENCE_PROFILE_PREFIXES)],
            day__gte=effective_from,
            then=Value(effective_from),
        )
        for model_id, model_dates in dates.items()
        for effective_from in model_dates
    ]
    return Case(*whens, default=Value(None), output_field=DateField())


def usage_rows(
    start: date, end: date, *, customer_ids=None, customer_filter: Q | None = None, dates=None
) -> dict:
    """Usage of [start, end] grouped by customer, model and price period: one grouped query,
    however many customers. Returns {customer_id: [UsageRow, ...]}."""
    if dates is None:
        _, dates, _ = price_book()
    qs = UsageDaily.objects.filter(day__gte=start, day__lte=end)
    if customer_ids is not None:
        qs = qs.filter(customer_id__in=customer_ids)
    if customer_filter is not None:
        qs = qs.filter(customer_filter)
    grouped = (
        qs.annotate(price_from=_price_from_expression(dates))
        .values("customer_id", "model_id", "price_from")
        .order_by()
        .annotate(
            requests=Sum("requests"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cache_read_tokens=Sum("cache_read_tokens"),
            cache_write_tokens=Sum("cache_write_tokens"),
        )
    )
    result = defaultdict(list)
    for r in grouped.iterator(chunk_size=5000):
        result[r["customer_id"]].append(
            UsageRow(
                model_id=r["model_id"],
                price_from=r["price_from"],
                usage=TokenUsage(
                    requests=r["requests"] or 0,
                    input_tokens=r["input_tokens"] or 0,
                    output_tokens=r["output_tokens"] or 0,
                    cache_read_tokens=r["cache_read_tokens"] or 0,
                    cache_write_tokens=r["cache_write_tokens"] or 0,
                ),
            )
        )
    return result


def default_terms() -> PlanTerms:
    return PlanTerms(markup_percent=to_decimal(settings.BILLING_DEFAULT_MARKUP_PERCENT))


def plan_assignments_in_force(on_day: date, *, customer_ids=None) -> dict:
    """{customer_id: CustomerPlan} for the assignments covering `on_day`."""
    qs = CustomerPlan.objects.select_related("plan").filter(effective_from__lte=on_day)
    qs = qs.filter(Q(effective_to__isnull=True) | Q(effective_to__gt=on_day))
    if customer_ids is not None:
        qs = qs.filter(customer_id__in=customer_ids)
    return {a.customer_id: a for a in qs.order_by("customer_id", "effective_from")}


def terms_for(customer_id, on_day: date) -> PlanTerms:
    assignment = plan_assignments_in_force(on_day, customer_ids=[customer_id]).get(customer_id)
    return PlanTerms.from_plan(assignment.plan) if assignment else default_terms()


def plan_history(customer):
    return CustomerPlan.objects.filter(customer=customer).select_related("plan")


# --- Wallet -----------------------------------------------------------------------------


def usable_grants(customer_id, on_day: date):
    """Grants that can still pay, in the order invoices consume them: soonest expiry first
    (no expiry last), then oldest."""
    return (
        CreditGrant.objects.filter(customer_id=customer_id, remaining__gt=0)
        .filter(Q(expires_on__isnull=True) | Q(expires_on__gte=on_day))
        .order_by(F("expires_on").asc(nulls_last=True), "created_at", "id")
    )


def credit_balance(customer_id, on_day: date | None = None) -> Decimal:
    on_day = on_day or timezone.localdate()
    total = usable_grants(customer_id, on_day).aggregate(s=Sum("remaining"))["s"]
    return (total or Decimal(0)).quantize(CENT)


def credit_ledger(customer_id) -> list[dict]:
    """Grants and consumptions, newest first, for the wallet pages."""
    entries = [
        {
            "when": g.created_at,
            "kind": g.get_kind_display(),
            "amount": g.amount,
            "detail": g.note,
            "expires_on": g.expires_on,
            "remaining": g.remaining,
        }
        for g in CreditGrant.objects.filter(customer_id=customer_id)
    ]
    applications = CreditApplication.objects.filter(grant__customer_id=customer_id)
    for a in applications.select_related("invoice"):
        if a.amount < 0:  # the credit part of a credit note, back to the grant it came from
            entries.append(
                {
                    "when": a.created_at,
                    "kind": "Returned (credit note)",
                    "amount": -a.amount,
                    "detail": a.invoice.number or "",
                    "expires_on": None,
                    "remaining": None,
                }
            )
            continue
        entries.append(
            {
                "when": a.created_at,
                "kind": "Applied to invoice",
                "amount": -a.amount,
                "detail": a.invoice.number or "",
                "expires_on": None,
                "remaining": None,
            }
        )
        if a.reversed:
            entries.append(
                {
                    "when": a.invoice.voided_at or a.created_at,
                    "kind": "Returned (invoice void)",
                    "amount": a.amount,
                    "detail": a.invoice.number or "",
                    "expires_on": None,
                    "remaining": None,
                }
            )
    taken_back = Payment.objects.filter(customer_id=customer_id, credit_taken_back__gt=0)
    for p in taken_back:  # a card purchase refunded (or its dispute lost): billing/payments.py
        entries.append(
            {
                "when": p.refunded_at or p.dispute_updated_at or p.updated_at,
                "kind": "Taken back (card refund)",
                "amount": -p.credit_taken_back,
                "detail": f"refund of {p.refunded_amount} {p.currency}",
                "expires_on": None,
                "remaining": None,
            }
        )
    return sorted(entries, key=lambda e: e["when"], reverse=True)


# --- Invoices ----------------------------------------------------------------------------


def invoices_for_customer(customer):
    """What a customer may see: never drafts, never another customer's."""
    return Invoice.objects.filter(customer=customer).exclude(status=Invoice.Status.DRAFT)


def invoice_get_for_customer(customer, invoice_id) -> Invoice:
    return get_object_or_404(invoices_for_customer(customer), pk=invoice_id)


def customers_for_billing(*, query: str = ""):
    """Customers with their current prepaid balance (unexpired grants), for the staff lookup."""

    today = timezone.localdate()
    usable = Q(credit_grants__remaining__gt=0) & (
        Q(credit_grants__expires_on__isnull=True) | Q(credit_grants__expires_on__gte=today)
    )
    qs = Customer.objects.annotate(balance=Sum("credit_grants__remaining", filter=usable))
    if query:
        qs = qs.filter(Q(name__icontains=query) | Q(contact_email__icontains=query))
    return qs.order_by("name", "pk")


def invoice_list_for_staff(*, status: str = ""):
    qs = Invoice.objects.select_related("customer").prefetch_related("payments")
    if status in Invoice.Status.values:
        qs = qs.filter(status=status)
    return qs.order_by("-period_start", "customer__name")


# --- Cost so far and forecast ------------------------------------------------------------


def _month_window(today: date) -> dict:
    start, end = month_bounds(today)
    covered_to = today - timedelta(days=1)
    days_covered = max(0, (covered_to - start).days + 1)
    return {
        "period_start": start,
        "period_end": end,
        "covered_to": covered_to if days_covered else None,
        "days_covered": days_covered,
        "days_in_month": (end - start).days + 1,
        "currency": settings.BILLING_CURRENCY,
    }


def _scaled(rows: list[UsageRow], factor: Decimal) -> list[UsageRow]:
    def scale(n: int) -> int:
        return int(Decimal(n) * factor)

    return [
        UsageRow(
            model_id=r.model_id,
            price_from=r.price_from,
            usage=TokenUsage(
                requests=scale(r.usage.requests),
                input_tokens=scale(r.usage.input_tokens),
                output_tokens=scale(r.usage.output_tokens),
                cache_read_tokens=scale(r.usage.cache_read_tokens),
                cache_write_tokens=scale(r.usage.cache_write_tokens),
            ),
        )
        for r in rows
    ]


def _so_far_and_forecast(rows, terms, prices, names, window) -> tuple[Decimal, Decimal | None]:
    # The minimum commitment is settled at month end; leaving it out keeps "so far" honest.
    lines = rate_usage(rows, terms=terms, prices=prices, names=names)
    so_far = sum((ln.amount for ln in lines if ln.kind != "minimum"), Decimal(0))
    if not window["days_covered"]:
        return so_far, None
    factor = Decimal(window["days_in_month"]) / Decimal(window["days_covered"])
    projected = rate_usage(_scaled(rows, factor), terms=terms, prices=prices, names=names)
    return so_far, sum((ln.amount for ln in projected), Decimal(0))


def cost_so_far(customer_id, today: date | None = None) -> dict:
    """This month's usage priced with the customer's plan, and a month-end forecast.

    Usage arrives nightly, so it covers the month up to yesterday. The forecast is a run rate:
    the usage so far scaled by days_in_month / days_covered, priced again with the same plan
    (so tiers and allowances apply to the projected month, not to a scaled amount).
    """
    window = _month_window(today or timezone.localdate())
    prices, dates, names = price_book()
    rows = []
    if window["covered_to"]:
        rows = usage_rows(
            window["period_start"], window["covered_to"], customer_ids=[customer_id], dates=dates
        ).get(customer_id, [])
    terms = terms_for(customer_id, window["period_start"])
    so_far, forecast = _so_far_and_forecast(rows, terms, prices, names, window)
    return {**window, "so_far": so_far, "forecast": forecast, "plan_name": terms.name}


def cost_so_far_all(customers, today: date | None = None) -> dict:
    """The same, summed over a queryset of customers (staff dashboard), set-based."""
    window = _month_window(today or timezone.localdate())
    prices, dates, names = price_book()
    usage = {}
    if window["covered_to"]:
        usage = usage_rows(
            window["period_start"],
            window["covered_to"],
            customer_filter=Q(customer__in=customers),
            dates=dates,
        )
    assignments = plan_assignments_in_force(window["period_start"])
    fallback = default_terms()
    terms_by_plan: dict[int, PlanTerms] = {}  # each plan's terms are checked once
    so_far_total, forecast_total = Decimal(0), Decimal(0)
    for customer_id in customers.values_list("pk", flat=True):
        assignment = assignments.get(customer_id)
        terms = fallback
        if assignment:
            cached = terms_by_plan.get(assignment.plan_id)
            if cached is None:
                cached = terms_by_plan[assignment.plan_id] = PlanTerms.from_plan(assignment.plan)
            terms = cached
        so_far, forecast = _so_far_and_forecast(
            usage.get(customer_id, []), terms, prices, names, window
        )
        so_far_total += so_far
        forecast_total += forecast or Decimal(0)
    forecast = forecast_total if window["days_covered"] else None
    return {**window, "so_far": so_far_total, "forecast": forecast, "plan_name": ""}


STAFF_SUMMARY_KEY = "billing:staff-summary"
STAFF_SUMMARY_SECONDS = 6 * 60  # beat recomputes it every 5 minutes (portal.tasks)


def staff_cost_so_far(*, refresh: bool = False) -> dict:
    """This month's cost so far and forecast over all active customers, for the staff pages:
    about 2 s of rating at 10,000 customers, so beat keeps it in the cache
    (portal.tasks.warm_month_cost) and pages read it there. Plan, price and status changes
    show within five minutes."""
    from django.core.cache import cache

    summary = None if refresh else cache.get(STAFF_SUMMARY_KEY)
    if summary is None:
        summary = cost_so_far_all(Customer.objects.filter(status=Customer.Status.ACTIVE))
        cache.set(STAFF_SUMMARY_KEY, summary, STAFF_SUMMARY_SECONDS)
    return summary


# --- Cost by tag (staff dashboard) ---------------------------------------------------

COST_TAGS = ("application_id", "cost_center", "environment", "model_id", "customer_id")


def usage_cost_by_tag(*, start: date, end: date, by: str, customer_ids=None) -> dict:
    """Price-book cost of the usage of [start, end] per value of one tag: one grouped query.

    List price (the price in force on each day, as invoices use it) before any plan markup,
    tiers, minimums or credits: what the usage costs, to allocate it by cost center,
    environment or application. Tokens of models missing from the price book are counted in
    `unpriced_tokens` instead of being priced at zero silently.
    """
    if by not in COST_TAGS:
        raise ValueError(by)
    prices, dates, _ = price_book()
    qs = UsageDaily.objects.filter(day__gte=start, day__lte=end)
    if customer_ids is not None:
        qs = qs.filter(customer_id__in=customer_ids)
    grouped = (
        qs.annotate(price_from=_price_from_expression(dates))
        .values(by, "model_id", "price_from")
        .order_by()
        .annotate(
            requests=Sum("requests"),
            input_tokens=Sum("input_tokens"),
            output_tokens=Sum("output_tokens"),
            cache_read_tokens=Sum("cache_read_tokens"),
            cache_write_tokens=Sum("cache_write_tokens"),
        )
    )
    totals: dict = defaultdict(
        lambda: {"cost": Decimal(0), "tokens": 0, "requests": 0, "unpriced_tokens": 0}
    )
    unpriced_tokens = 0
    for r in grouped.iterator(chunk_size=5000):
        usage = TokenUsage(
            requests=r["requests"] or 0,
            input_tokens=r["input_tokens"] or 0,
            output_tokens=r["output_tokens"] or 0,
            cache_read_tokens=r["cache_read_tokens"] or 0,
            cache_write_tokens=r["cache_write_tokens"] or 0,
        )
        entry = totals[r[by]]
        entry["tokens"] += usage.total_tokens
        entry["requests"] += usage.requests
        price = prices.get((price_model_id(r["model_id"]), r["price_from"]))
        if price is None:
            unpriced_tokens += usage.total_tokens
            entry["unpriced_tokens"] += usage.total_tokens
            continue
        entry["cost"] += token_cost(usage, price)
    rows = [
        {
            "key": key,
            "cost": round_money(v["cost"]),
            "tokens": v["tokens"],
            "requests": v["requests"],
            "unpriced_tokens": v["unpriced_tokens"],
        }
        for key, v in totals.items()
    ]
    rows.sort(key=lambda row: (-row["cost"], -row["tokens"], str(row["key"])))
    return {
        "rows": rows,
        "total": sum((row["cost"] for row in rows), Decimal(0)),
        "unpriced_tokens": unpriced_tokens,
        "currency": settings.BILLING_CURRENCY,
    }


def usage_cost_for_customer(*, customer_id, start: date, end: date, by: str) -> dict:
    """What one customer's usage of [start, end] costs at list price per value of `by` (model,
    application, cost center, environment), for the usage pages (usage/costing.py): each
    day's usage at the price in force that day, before the plan's markup or discounts, prepaid
    credit and tax. Each value's cost is rounded once, to the cent; the total is their sum."""
    result = usage_cost_by_tag(start=start, end=end, by=by, customer_ids=[customer_id])
    return {
        "rows": {row["key"]: row for row in result["rows"]},
        "total": result["total"],
        "currency": result["currency"],
        "unpriced_tokens": result["unpriced_tokens"],
    }


# --- Home pages (the portal's home views put these beside the other apps' figures) ---------


def home_customer(customer) -> dict:
    """A customer's cost so far this month and prepaid balance (billing/_home_customer.html)."""
    return {"cost": cost_so_far(customer.pk), "balance": credit_balance(customer.pk)}


def home_staff(*, cost: dict | None = None) -> dict:
    """All active customers' cost so far (kept in the cache by beat; the home page passes the
    cached figure, or {"pending": True} while it is computed) and the drafts waiting to be
    issued (billing/_home_staff.html)."""
    return {
        "cost": staff_cost_so_far() if cost is None else cost,
        "drafts": invoice_list_for_staff(status="draft").count(),
    }
