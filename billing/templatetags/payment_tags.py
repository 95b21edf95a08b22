"""Stripe payments on the invoice and billing pages (billing/payments.py), so the pages'
views need no payment code: the pay button, the staff payment panel, the list's payment label."""

from django import template

from ..payments import invoice_payable
from ..stripe_gateway import stripe_enabled as _stripe_enabled

register = template.Library()


@register.simple_tag
def stripe_enabled() -> bool:
    return _stripe_enabled()


@register.filter
def payment_label(invoice) -> str:
    """ "Paid via Stripe · refunded 5.00 (partial)", from prefetched payments."""
    return invoice.payment_state.label


@register.inclusion_tag("billing/_pay_panel.html", takes_context=True)
def invoice_pay_panel(context, invoice):
    """The customer's invoice page: pay by card, or how it was paid."""
    request = context.get("request")
    outcome = request.GET.get("payment", "") if request is not None else ""
    return {
        "invoice": invoice,
        "state": invoice.payment_state,
        "payable": invoice_payable(invoice),
        "outcome": outcome if outcome in ("success", "cancelled") else "",
        "csrf_token": context.get("csrf_token"),
    }


@register.inclusion_tag("billing/_payments_staff.html", takes_context=True)
def invoice_payments_panel(context, invoice):
    """The staff invoice page: payments, refunds, disputes, what Stripe sent, payment link."""
    from ..models import PaymentEvent

    state = invoice.payment_state
    return {
        "invoice": invoice,
        "state": state,
        "can_send_link": invoice_payable(invoice),
        "events": PaymentEvent.objects.filter(payment__invoice=invoice).order_by("-received_at")[
            :20
        ],
        "csrf_token": context.get("csrf_token"),
    }
