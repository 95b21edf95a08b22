"""Stripe payments on the invoice and billing pages: whether Stripe is on, and the list's payment
label (from prefetched payments). The pay button and the staff payment panel get their figures
from the views (billing/payments.py: invoice_pay_panel, invoice_payments_panel)."""

from django import template

from ..stripe_gateway import stripe_enabled as _stripe_enabled

register = template.Library()


@register.simple_tag
def stripe_enabled() -> bool:
    return _stripe_enabled()


@register.filter
def payment_label(invoice) -> str:
    """ "Paid via Stripe · refunded 5.00 (partial)", from prefetched payments."""
    return invoice.payment_state.label
