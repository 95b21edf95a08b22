"""Refunds and disputes from Stripe's webhook (billing/stripe_events.py dispatches them), and
what a refunded credit purchase takes back from the wallet. docs/billing.md, "Refunds and
disputes"."""

from decimal import Decimal

from django.db.models import F, Q
from django.utils import timezone

from .credit_sync import credit_push_on_commit
from .models import CreditGrant, Payment, PaymentEvent
from .stripe_fields import (
    DISPUTE_STATUSES,
    FINAL_DISPUTE_STATUSES,
    Refused,
    clean_text,
    exact_amount,
    field_currency,
    field_id,
    field_minor,
    payment_audit,
)


def _payment_for_charge(intent: str, charge: str) -> Payment | None:
    match = Q(pk__in=[])
    if intent:
        match |= Q(payment_intent_id=intent)
    if charge:
        match |= Q(charge_id=charge)
    return Payment.objects.select_for_update().filter(match).order_by("created_at").first()


def charge_refunded(record: PaymentEvent, obj: dict) -> str:
    data = {
        "charge": field_id(obj, "id"),
        "payment_intent": field_id(obj, "payment_intent", required=False),
        "amount_refunded": field_minor(obj, "amount_refunded"),
        "currency": field_currency(obj),
    }
    return _apply_or_wait(record, data, refund_apply)


def dispute_changed(record: PaymentEvent, obj: dict) -> str:
    status = obj.get("status")
    if status not in DISPUTE_STATUSES:
        raise Refused("status is not a dispute status")
    data = {
        "dispute": field_id(obj, "id"),
        "charge": field_id(obj, "charge", required=False),
        "payment_intent": field_id(obj, "payment_intent", required=False),
        "amount": field_minor(obj, "amount"),
        "currency": field_currency(obj),
        "status": status,
        "reason": clean_text(obj.get("reason"), 64),
    }
    if not (data["charge"] or data["payment_intent"]):
        raise Refused("the dispute names no charge")
    return _apply_or_wait(record, data, dispute_apply)


def _apply_or_wait(record: PaymentEvent, data: dict, apply) -> str:
    payment = _payment_for_charge(data["payment_intent"], data["charge"])
    if payment is None:
        record.deferred = True
        record.deferred_key = data["payment_intent"] or data["charge"]
        record.data = data
        return f"waiting: no payment known yet for {record.deferred_key}"
    record.payment = payment
    return apply(payment, data)


def refund_apply(payment: Payment, data: dict) -> str:
    currency = data["currency"]
    if currency != payment.currency:
        raise Refused(f"refund in {currency}, payment in {payment.currency}")
    refunded = exact_amount(data["amount_refunded"], currency)
    paid = payment.amount_received if payment.amount_received is not None else payment.amount
    if refunded > paid:
        raise Refused(f"refunds of {refunded} exceed the {paid} paid")
    payment.charge_id = payment.charge_id or data["charge"]
    if refunded <= payment.refunded_amount:  # Stripe's running total: an older event
        payment.save()
        return f"already recorded: refunds total {payment.refunded_amount}"
    payment.refunded_amount = refunded
    payment.refunded_at = timezone.now()
    taken = credit_refund_take_back(payment)
    payment.save()
    payment_audit(
        payment,
        "payment.refund",
        {"refunded": str(refunded), "state": payment.refund_state, "credit_taken_back": str(taken)},
    )
    return f"refund recorded: {refunded} {currency} of {paid} ({payment.refund_state})"


def dispute_apply(payment: Payment, data: dict) -> str:
    currency = data["currency"]
    if currency != payment.currency:
        raise Refused(f"dispute in {currency}, payment in {payment.currency}")
    amount = exact_amount(data["amount"], currency)
    payment.charge_id = payment.charge_id or data["charge"]
    if payment.dispute_status in FINAL_DISPUTE_STATUSES and data["status"] not in (
        FINAL_DISPUTE_STATUSES
    ):
        payment.save()
        return f"already {payment.dispute_status}: an earlier status arrived late"
    payment.dispute_id = data["dispute"]
    payment.dispute_status = data["status"]
    payment.dispute_reason = data["reason"]
    payment.dispute_amount = amount
    payment.dispute_updated_at = timezone.now()
    taken = credit_refund_take_back(payment)
    payment.save()
    payment_audit(
        payment,
        "payment.dispute",
        {"status": data["status"], "amount": str(amount), "credit_taken_back": str(taken)},
    )
    return f"dispute {data['status']}: {amount} {currency}"


def credit_refund_take_back(payment: Payment) -> Decimal:
    """Take back from a credit purchase's grant what Stripe gave back to the card (a refund,
    or a dispute lost), as far as the grant still holds it; what invoices already used stays
    used, and is taken back later if it returns to the grant (a void, a credit note). The
    caller holds the payment's row lock and saves it."""
    if payment.purpose != Payment.Purpose.CREDIT or payment.grant_id is None:
        return Decimal("0.00")
    reversed_amount = payment.refunded_amount
    if payment.dispute_status == "lost" and payment.dispute_amount:
        reversed_amount = max(reversed_amount, payment.dispute_amount)
    grant = CreditGrant.objects.select_for_update().get(pk=payment.grant_id)
    due = min(reversed_amount, grant.amount) - payment.credit_taken_back
    take = min(due, grant.remaining)
    if take > 0:
        grant.remaining -= take
        grant.save(update_fields=["remaining"])
        payment.credit_taken_back += take
        credit_push_on_commit(customer_id=payment.customer_id)
    short = due - max(take, Decimal(0))
    if short > 0:
        payment.note = (
            f"{short} {payment.currency} of the refunded credit was already used by invoices; "
            "it is taken back if it returns to the wallet."
        )[:500]
    elif take > 0:
        payment.note = f"{payment.credit_taken_back} {payment.currency} of credit taken back."
    return max(take, Decimal("0.00"))


def refund_shortfalls_settle(*, customer_id) -> None:
    """Credit given back to a grant whose purchase was refunded (an invoice voided or credited)
    is taken back at once. Rows a webhook is working on are skipped: it settles them itself."""
    waiting = Payment.objects.filter(
        customer_id=customer_id, purpose=Payment.Purpose.CREDIT, grant__isnull=False
    ).filter(Q(credit_taken_back__lt=F("refunded_amount")) | Q(dispute_status="lost"))
    for payment in waiting.select_for_update(skip_locked=True):
        if credit_refund_take_back(payment) > 0:
            payment.save()
