"""Opt-in weekly (Mondays, the previous ISO week) and monthly (the 1st, the previous month)
usage summaries, mailed once per period thanks to SummaryDelivery's unique key."""

import datetime as dt
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse

from .comparisons import compare_periods
from .models import CustomerUsageSettings, SummaryDelivery
from .notifications import send_templated
from .selectors import ingested_days, usage_by_model, usage_totals
from .services import utc_today

logger = logging.getLogger(__name__)


def summary_period(*, frequency: str, today: dt.date) -> tuple[str, dt.date, dt.date]:
    """The finished period before `today`: (label, first day, last day)."""
    if frequency == "weekly":
        end = today - dt.timedelta(days=today.isoweekday())  # last Sunday
        start = end - dt.timedelta(days=6)
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}", start, end
    if frequency == "monthly":
        end = today.replace(day=1) - dt.timedelta(days=1)
        return f"{end:%Y-%m}", end.replace(day=1), end
    raise ValueError(f"Unknown summary frequency {frequency!r}")


def summary_comparison(*, customer_id, frequency: str, start: dt.date, end: dt.date) -> dict:
    """The period against the one before: the previous ISO week or the previous month."""
    kind = "week" if frequency == "weekly" else "month"
    return compare_periods(customer_id=customer_id, periods={kind: (start, end)})[kind]


def summaries_send(*, frequency: str, today: dt.date | None = None) -> int:
    today = today or utc_today()
    label, start, end = summary_period(frequency=frequency, today=today)
    subscribers = CustomerUsageSettings.objects.filter(
        summary_frequency=frequency, customer__status="active"
    ).select_related("customer")
    sent = 0
    for options in subscribers:
        customer = options.customer
        try:
            with transaction.atomic():
                SummaryDelivery.objects.create(customer=customer, frequency=frequency, period=label)
                send_templated(
                    name="usage_summary",
                    to=customer.contact_emails,
                    bcc=[],
                    context={
                        "customer": customer,
                        "frequency": frequency,
                        "period": label,
                        "start": start,
                        "end": end,
                        "rows": usage_by_model(customer_id=customer.pk, start=start, end=end),
                        "totals": usage_totals(customer_id=customer.pk, start=start, end=end),
                        "comparison": summary_comparison(
                            customer_id=customer.pk, frequency=frequency, start=start, end=end
                        ),
                        "days_missing": (end - start).days
                        + 1
                        - len(ingested_days(start=start, end=end)),
                        "usage_url": settings.PORTAL_BASE_URL.rstrip("/")
                        + reverse("customer:usage_overview"),
                    },
                )
        except IntegrityError:
            continue  # already mailed for this period
        except Exception:
            logger.exception("usage summary for %s failed", customer.pk)
            continue  # the delivery row was rolled back: the next run retries
        sent += 1
    return sent
