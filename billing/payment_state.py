"""An invoice's payment state for the pages and the API: paid via Stripe, by hand or nothing
due, refunds, disputes, and whether staff must look (billing/payments.py makes the payments)."""

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.utils import timezone

from .models import Invoice, Payment
from .payments import reusable


@dataclass(frozen=True)
class PaymentState:
    paid_via: str | None  # "stripe", "manual", "nothing_due" or None (not paid)
    amount_paid: Decimal | None  # received through Stripe and applied to the invoice
    stripe_paid_at: datetime | None
    refunded_amount: Decimal
    refund_state: str  # none, partial, full
    dispute_status: str | None
    needs_attention: bool
    open_checkout_url: str = ""
    payments: list = field(default_factory=list)

    @property
    def label(self) -> str:
        parts = {
            "stripe": ["Paid via Stripe"],
            "manual": ["Paid by hand"],
            "nothing_due": ["Nothing due"],
        }.get(self.paid_via or "", [])
        if self.refund_state != "none":
            parts.append(f"refunded {self.refunded_amount} ({self.refund_state})")
        if self.dispute_status:
            parts.append(f"dispute: {self.dispute_status.replace('_', ' ')}")
        if self.needs_attention:
            parts.append("needs attention")
        return " · ".join(parts)


def invoice_payment_state(invoice: Invoice) -> PaymentState:
    payments = list(invoice.payments.all())  # prefetched on lists
    applied = [p for p in payments if p.settlement == Payment.Settlement.APPLIED]
    received = [p for p in payments if p.status == Payment.Status.PAID]
    if applied:
        paid_via = "stripe"
    elif invoice.paid_at:
        paid_via = "nothing_due" if invoice.total <= 0 else "manual"
    else:
        paid_via = None
    refunded = sum((p.refunded_amount for p in received), Decimal("0.00"))
    paid_total = sum(
        (p.amount_received if p.amount_received is not None else p.amount for p in received),
        Decimal("0.00"),
    )
    refund_state = "full" if refunded >= paid_total else "partial"
    if refunded <= 0:
        refund_state = "none"
    disputes = sorted(
        (p for p in payments if p.dispute_status),
        key=lambda p: p.dispute_updated_at or p.created_at,
    )
    now = timezone.now()
    open_url = next(
        (p.checkout_url for p in payments if p.status == Payment.Status.OPEN and reusable(p, now)),
        "",
    )
    return PaymentState(
        paid_via=paid_via,
        amount_paid=applied[0].amount_received if applied else None,
        stripe_paid_at=applied[0].paid_at if applied else None,
        refunded_amount=refunded,
        refund_state=refund_state,
        dispute_status=disputes[-1].dispute_status if disputes else None,
        needs_attention=any(p.needs_attention for p in payments),
        open_checkout_url=open_url,
        payments=payments,
    )
