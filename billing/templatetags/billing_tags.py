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


@register.filter
def per_1m(price_per_1k):
    """A price of the book (per 1,000 tokens) per 1M tokens, as AWS lists it: "0.25"."""
    from ..price_units import per_1k_to_per_million, price_text

    return price_text(per_1k_to_per_million(price_per_1k))


@register.filter
def price(value):
    """A unit price without trailing zeros or an exponent: "0.002", "3,000"."""
    from ..price_units import price_text

    return price_text(value)


@register.inclusion_tag("billing/_invoice_due.html")
def invoice_due(invoice):
    """The due date and payment terms of an invoice with something to pay (nothing otherwise)."""
    from ..documents import invoice_due_on, payment_terms_text

    due_on = invoice_due_on(invoice)
    return {
        "invoice": invoice,
        "due_on": due_on,
        "terms": payment_terms_text() if due_on else "",
    }
