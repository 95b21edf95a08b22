"""Stripe's webhook: events verified with the endpoint's signing secret, recorded once by id
(PaymentEvent, unique), and applied through the billing services in the same transaction.

- A body that is not signed by Stripe (forged, unsigned, older than the library's tolerance of
  five minutes) or is not an event at all: 400, nothing recorded.
- A signed event already recorded (Stripe retries, or delivers twice at once): 200, nothing
  changes. The second of two concurrent deliveries waits on the first's insert of the event id
  and then finds it.
- A signed event whose object is not what the portal expects (wrong types, amounts out of
  range, an amount or currency that differs from what was asked): recorded with why, not
  applied, 200 (sending it again would not change it).
- A refund or dispute for a charge the portal cannot place yet (it arrived before the Checkout
  completion that names its payment intent) is kept and applied when the completion arrives.
"""

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

import stripe
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from customers.models import Customer

from .models import Invoice, Payment, PaymentEvent
from .stripe_fields import (
    Refused,
    clean_text,
    field_currency,
    field_id,
    field_metadata,
    field_minor,
    parse_uuid,
    payment_audit,
)
from .stripe_gateway import STRIPE_ID, from_minor
from .stripe_refunds import charge_refunded, dispute_apply, dispute_changed, refund_apply

logger = logging.getLogger("billing.payments")


@dataclass(frozen=True)
class WebhookAnswer:
    status: int
    body: dict


# --- Receiving ----------------------------------------------------------------------------


def webhook_receive(*, payload: bytes, signature: str | None) -> WebhookAnswer:
    try:
        stripe.Webhook.construct_event(payload, signature, settings.STRIPE_WEBHOOK_SECRET)
    except stripe.SignatureVerificationError:
        logger.warning("Stripe webhook refused: signature missing, wrong or too old")
        return WebhookAnswer(400, {"error": "invalid signature"})
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, RecursionError) as exc:
        logger.warning("Stripe webhook refused: the body is not an event (%s)", type(exc).__name__)
        return WebhookAnswer(400, {"error": "not an event"})
    try:
        event = json.loads(payload)
    except (ValueError, RecursionError):
        return WebhookAnswer(400, {"error": "not an event"})
    problem = _envelope_problem(event)
    if problem:
        logger.warning("Stripe webhook refused: %s", problem)
        return WebhookAnswer(400, {"error": problem})
    return _event_apply(event)


def _envelope_problem(event) -> str:
    if not isinstance(event, dict):
        return "not an event"
    if not (isinstance(event.get("id"), str) and STRIPE_ID.fullmatch(event["id"])):
        return "the event has no valid id"
    kind = event.get("type")
    if not (
        isinstance(kind, str) and 0 < len(kind) <= 100 and kind.isascii() and kind.isprintable()
    ):
        return "the event has no valid type"
    return ""


def _event_apply(event: dict) -> WebhookAnswer:
    data = event.get("data")
    obj = data.get("object") if isinstance(data, dict) else None
    created = event.get("created")
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = PaymentEvent.objects.create(
                    event_id=event["id"],
                    type=event["type"],
                    livemode=event.get("livemode") is True,
                    stripe_created_at=datetime.fromtimestamp(created, tz=UTC)
                    if type(created) is int and 0 < created < 253402300800
                    else None,
                )
        except IntegrityError:
            logger.info("Stripe event %s received again: already recorded", event["id"])
            return WebhookAnswer(200, {"received": True, "replay": True})
        outcome = _dispatch(record, obj)
        record.outcome = clean_text(outcome, 500)
        record.save()
    logger.info("Stripe event %s (%s): %s", record.event_id, record.type, record.outcome)
    return WebhookAnswer(200, {"received": True})


def _dispatch(record: PaymentEvent, obj) -> str:
    handler = HANDLERS.get(record.type)
    if handler is None:
        return "ignored: not an event the portal acts on"
    live_key = settings.STRIPE_SECRET_KEY.startswith(("sk_live_", "rk_live_"))
    if record.livemode != live_key:
        return "ignored: a test-mode event on a live portal, or the other way round"
    if not isinstance(obj, dict):
        return "refused: data.object is not an object"
    try:
        with transaction.atomic():
            return handler(record, obj)
    except Refused as exc:
        if record.payment_id and not Payment.objects.filter(pk=record.payment_id).exists():
            record.payment = None  # made in the rolled-back step
        return f"refused: {exc}"


# --- Checkout Sessions --------------------------------------------------------------------


def _payment_for_session(session_id: str, obj: dict) -> Payment | None:
    """The payment of a session the portal opened; one whose row is missing (the session was
    made but the portal's transaction did not commit) is rebuilt from the metadata the portal
    gave it. None for a session that is not the portal's."""
    payment = Payment.objects.select_for_update().filter(checkout_session_id=session_id).first()
    if payment is not None:
        return payment

    meta = field_metadata(obj)
    customer = Customer.objects.filter(pk=parse_uuid(meta.get("customer", ""))).first()
    if customer is None:
        return None
    fields = {"customer": customer, "source": Payment.Source.STRIPE, "idempotency_key": ""}
    if meta.get("purpose") == Payment.Purpose.INVOICE:
        invoice = (
            Invoice.objects.filter(pk=parse_uuid(meta.get("invoice", "")), customer=customer)
            .exclude(status=Invoice.Status.DRAFT)
            .filter(kind=Invoice.Kind.INVOICE, total__gt=0)
            .first()
        )
        if invoice is None:
            return None
        fields |= {"purpose": Payment.Purpose.INVOICE, "invoice": invoice}
        fields |= {"amount": invoice.total, "currency": invoice.currency.upper()}
    elif meta.get("purpose") == Payment.Purpose.CREDIT:
        try:
            amount = Decimal(meta.get("amount", ""))
        except InvalidOperation:
            return None
        currency = meta.get("currency", "")
        if not (amount.is_finite() and 0 < amount < Decimal(10) ** 12 and len(currency) == 3):
            return None
        if amount != amount.quantize(Decimal("0.01")):
            return None
        fields |= {"purpose": Payment.Purpose.CREDIT, "amount": amount, "currency": currency}
    else:
        return None
    fields["note"] = "Found from a Stripe event (the portal had no record of the session)."
    Payment.objects.get_or_create(checkout_session_id=session_id, defaults=fields)
    return Payment.objects.select_for_update().get(checkout_session_id=session_id)


def _session_completed(record: PaymentEvent, obj: dict) -> str:
    session_id = field_id(obj, "id")
    if obj.get("mode") != "payment":
        return "ignored: not a one-time payment"
    paid = obj.get("payment_status")
    if paid not in ("paid", "unpaid", "no_payment_required"):
        raise Refused("payment_status is not one Stripe sends")
    intent = field_id(obj, "payment_intent", required=False)
    minor, currency = field_minor(obj, "amount_total"), field_currency(obj)
    payment = _payment_for_session(session_id, obj)
    if payment is None:
        return "ignored: not a Checkout Session of this portal"
    record.payment = payment
    if payment.status == Payment.Status.PAID:
        return "already recorded: nothing changed"
    if intent and payment.payment_intent_id and intent != payment.payment_intent_id:
        raise Refused("the payment intent differs from the one recorded")
    payment.payment_intent_id = intent or payment.payment_intent_id
    payment.livemode = record.livemode
    if paid == "unpaid":
        if record.type != "checkout.session.completed":
            raise Refused("a payment said to succeed is unpaid")
        payment.status = Payment.Status.PROCESSING
        payment.note = "Completed; the bank payment is on its way."
        payment.save()
        return "waiting for the bank payment"
    received = from_minor(minor, currency)
    payment.status = Payment.Status.PAID
    payment.paid_at = timezone.now()
    payment.amount_received = received if received is not None and received < 10**12 else None
    if currency != payment.currency or received != payment.amount:
        payment.settlement = Payment.Settlement.NOT_APPLIED
        payment.note = clean_text(
            f"Received {minor} minor units of {currency} where {payment.amount} "
            f"{payment.currency} was asked: not applied. Refund it in Stripe, or settle by hand.",
            500,
        )
        payment.save()
        payment_audit(payment, "payment.not_applied", {"reason": payment.note})
        outcome = "refused: the amount or currency differs from what was asked (recorded)"
    else:
        payment.save()  # paid first: marking the invoice paid finds no open session left
        outcome = _settle(payment)
        payment.save()
    _deferred_apply(payment)
    return outcome


def _settle(payment: Payment) -> str:
    from . import services

    if payment.purpose == Payment.Purpose.CREDIT:
        grant = services.credit_grant(
            customer=payment.customer,
            amount=payment.amount,
            kind="purchase",
            note=f"Bought with a card payment ({payment.checkout_session_id[-12:]})",
        )
        payment.grant = grant
        payment.settlement = Payment.Settlement.APPLIED
        payment.note = "Prepaid credit granted."
        payment_audit(
            payment, "credit.purchase", {"amount": str(payment.amount), "grant": grant.pk}
        )
        return f"credit granted: {payment.amount} {payment.currency}"
    if payment.invoice_id is None:  # never: the payment_invoice_only_for_invoices constraint
        raise Invoice.DoesNotExist(f"Payment {payment.pk} pays an invoice but names none.")
    invoice = Invoice.objects.select_for_update().get(pk=payment.invoice_id)
    if invoice.status == Invoice.Status.ISSUED:
        services.invoice_mark_paid(invoice=invoice, source="stripe", via="stripe")
        payment.settlement = Payment.Settlement.APPLIED
        payment.note = "Invoice marked paid."
        return f"invoice {invoice.number} marked paid"
    payment.settlement = Payment.Settlement.NOT_APPLIED
    if invoice.status == Invoice.Status.PAID:
        payment.note = (
            f"Invoice {invoice.number} was already paid (on {invoice.paid_at:%Y-%m-%d}): the "
            "customer paid twice. Refund this payment in Stripe."
        )
    else:
        payment.note = (
            f"Invoice {invoice.number} is {invoice.get_status_display().lower()}: nothing was "
            "marked. Refund this payment in Stripe, or grant it as prepaid credit."
        )
    payment_audit(payment, "payment.not_applied", {"reason": payment.note})
    return f"not applied: invoice {invoice.number} is {invoice.status}"


def _session_failed(record: PaymentEvent, obj: dict) -> str:
    session_id = field_id(obj, "id")
    payment = Payment.objects.select_for_update().filter(checkout_session_id=session_id).first()
    if payment is None:
        return "ignored: not a Checkout Session of this portal"
    record.payment = payment
    if payment.status not in (Payment.Status.OPEN, Payment.Status.PROCESSING):
        return f"already {payment.status}: nothing changed"
    payment.status = Payment.Status.FAILED
    payment.note = "The bank payment failed."
    payment.save()
    return "payment failed"


def _session_expired(record: PaymentEvent, obj: dict) -> str:
    session_id = field_id(obj, "id")
    payment = Payment.objects.select_for_update().filter(checkout_session_id=session_id).first()
    if payment is None:
        return "ignored: not a Checkout Session of this portal"
    record.payment = payment
    if payment.status != Payment.Status.OPEN:
        return f"already {payment.status}: nothing changed"
    payment.status = Payment.Status.EXPIRED
    payment.save()
    return "session expired unused"


def _deferred_apply(payment: Payment) -> None:
    """Refunds and disputes that arrived before this payment's completion, applied now in the
    order Stripe made them."""
    keys = [k for k in (payment.payment_intent_id, payment.charge_id) if k]
    if not keys:
        return
    waiting = PaymentEvent.objects.select_for_update().filter(deferred=True, deferred_key__in=keys)
    for event in waiting.order_by("stripe_created_at", "id"):
        apply = dispute_apply if event.type.startswith("charge.dispute.") else refund_apply
        data = event.data  # always kept with a deferred event (stripe_refunds._apply_or_wait)
        try:
            if data is None:
                raise TypeError("the deferred event has no data")
            with transaction.atomic():
                outcome = apply(payment, data)
        except (Refused, KeyError, TypeError) as exc:
            outcome = f"refused: {exc}"
        event.deferred = False
        event.payment = payment
        event.outcome = clean_text(f"{event.outcome}; applied after the completion: {outcome}", 500)
        event.save()


HANDLERS = {
    "checkout.session.completed": _session_completed,
    "checkout.session.async_payment_succeeded": _session_completed,
    "checkout.session.async_payment_failed": _session_failed,
    "checkout.session.expired": _session_expired,
    "charge.refunded": charge_refunded,
    "charge.dispute.created": dispute_changed,
    "charge.dispute.updated": dispute_changed,
    "charge.dispute.closed": dispute_changed,
}
