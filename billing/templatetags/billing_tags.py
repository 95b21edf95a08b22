"""Filters and snippets for the billing pages: prices per 1M tokens, an invoice's due date.
They only format what the view passed; none reads the database."""

from django import template

register = template.Library()


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
