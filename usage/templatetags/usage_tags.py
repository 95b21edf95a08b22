"""Snippets for the home pages, so portal/views.py needs no usage code."""

from django import template
from django.core.cache import cache

from customers.models import Customer

from .. import selectors
from ..services import utc_today

register = template.Library()


@register.inclusion_tag("usage/_home_customer.html")
def usage_customer_summary(customer):
    return {"live": selectors.realtime_usage(customer=customer, today=utc_today())}


@register.inclusion_tag("usage/_home_staff.html")
def usage_staff_summary():
    """Today's live totals across customers (cached a minute) and the pipeline's health."""
    live = cache.get("usage:staff-live")
    if live is None:
        active = Customer.objects.filter(status=Customer.Status.ACTIVE)
        live = selectors.realtime_usage_all(customers=list(active), today=utc_today())
        cache.set("usage:staff-live", live, 60)
    return {
        "live": live,
        "last_run": selectors.ingest_run_list().first(),
        "differences": selectors.difference_list().count(),
    }
