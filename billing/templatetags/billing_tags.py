"""Snippets for the home pages, so portal/views.py needs no billing code."""

from django import template
from django.core.cache import cache

from customers.models import Customer

from .. import selectors

register = template.Library()


@register.inclusion_tag("billing/_home_customer.html")
def billing_customer_summary(customer):
    return {
        "cost": selectors.cost_so_far(customer.pk),
        "balance": selectors.credit_balance(customer.pk),
    }


@register.inclusion_tag("billing/_home_staff.html")
def billing_staff_summary():
    """All active customers' cost so far: set-based but not free, so cached for five minutes."""
    summary = cache.get("billing:staff-summary")
    if summary is None:
        summary = selectors.cost_so_far_all(Customer.objects.filter(status=Customer.Status.ACTIVE))
        cache.set("billing:staff-summary", summary, 300)
    return {"cost": summary, "drafts": selectors.invoice_list_for_staff(status="draft").count()}
