"""Snippets for the home pages, so portal/views.py needs no usage code."""

from django import template

from customers.money import micros_text, money_text

from .. import selectors
from ..services import utc_today

register = template.Library()


@register.filter
def money(amount):
    """An amount of the portal's currency as people read it: "1,234.50 USD" (to the cent, half
    up); empty for None."""
    return money_text(amount)


@register.filter
def micros_money(micros):
    """Micro-units of the currency (an alert's value or limit) as "40.00 USD"."""
    return micros_text(micros) if micros is not None else ""


@register.inclusion_tag("usage/_budget_card.html")
def customer_budget_card(customer):
    """The monthly budget and this month's spend (one read of the live MONTH item)."""
    return {"budget": selectors.budget_usage(customer=customer, today=utc_today())}


@register.inclusion_tag("usage/_home_customer.html")
def usage_customer_summary(customer):
    return {"live": selectors.realtime_usage(customer=customer, today=utc_today())}


@register.inclusion_tag("usage/_home_staff.html")
def usage_staff_summary():
    """Today's live totals across customers (at most STAFF_LIVE_MAX_AGE_SECONDS old,
    portal/live.py) and the pipeline's health."""
    from portal.live import STAFF_TODAY, figure

    live = figure(STAFF_TODAY)
    return {
        "live": live,
        "last_run": selectors.ingest_run_list().first(),
        "differences": selectors.difference_list().count(),
    }
