"""Snippets for the home pages, so portal/views.py needs no billing code."""

from django import template

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
    """All active customers' cost so far (kept in the cache by beat)."""
    return {
        "cost": selectors.staff_cost_so_far(),
        "drafts": selectors.invoice_list_for_staff(status="draft").count(),
    }
