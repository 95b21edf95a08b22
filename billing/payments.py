"""Payments with Stripe Checkout: opening a session for an issued invoice or a prepaid credit
purchase, the staff payment link, closing an invoice's open sessions. What Stripe then does is
recorded by its webhook (billing/stripe_events.py, billing/stripe_refunds.py); an invoice's
payment state is billing/payment_state.py. docs/billing.md, "Getting paid with Stripe".
"""

import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from customers.audit import audit_record

from .models import Invoice, Payment, PaymentEvent
from .stripe_gateway import (
    CENT,
    PaymentError,
    billing_currency,
    session_create,
    session_expire,
    stripe_enabled,
    to_minor,
)

# An open session is handed out again only while it has this long left; closer to its end it
# is expired at Stripe and a new one is opened, so one invoice never has two live sessions.
REUSE_MARGIN = timedelta(minutes=10)
AMOUNT_TEXT = re.compile(r"\d{1,12}(\.\d{1,2})?")


def _require_enabled() -> None:
    if not stripe_enabled():
        raise PaymentError("Card payments are not set up on this portal.")


def _portal_url(path: str, outcome: str) -> str:
    return f"{settings.PORTAL_BASE_URL.rstrip('/')}{path}?payment={outcome}"


def _when(timestamp) -> datetime | None:
    if type(timestamp) is not int or not 0 < timestamp < 253402300800:  # before year 10000
        return None
    return datetime.fromtimestamp(timestamp, tz=UTC)


def _record(session, **fields) -> Payment:
    payment, _ = Payment.objects.get_or_create(
        checkout_session_id=session.id,
        defaults={
            **fields,
            "checkout_url": session.url[:2000],
            "expires_at": _when(getattr(session, "expires_at", None)),
            "livemode": getattr(session, "livemode", False) is True,
        },
    )
    return payment


def reusable(payment: Payment, now) -> bool:
    """Open long enough to be handed out (again)."""
    return bool(
        payment.checkout_url and payment.expires_at and payment.expires_at > now + REUSE_MARGIN
    )


def _retire(payment: Payment) -> None:
    """Expire at Stripe an open session too close to its end to hand out."""
    if session_expire(payment.checkout_session_id) == "complete":
        raise PaymentError("This invoice was just paid; the payment shows here in a moment.")
    payment.status = Payment.Status.EXPIRED
    payment.note = "Expired by the portal before opening a new session."
    payment.save(update_fields=["status", "note", "updated_at"])


# --- Invoices -----------------------------------------------------------------------------


def invoice_amount_due(invoice: Invoice) -> Decimal:
    """What Checkout asks for: the total of an issued invoice (credits and tax included)."""
    if invoice.kind != Invoice.Kind.INVOICE or invoice.status != Invoice.Status.ISSUED:
        raise PaymentError("Only an issued invoice that is not paid yet can be paid.")
    if invoice.total <= 0:
        raise PaymentError("Nothing is due on this invoice.")
    if invoice.currency.upper() != billing_currency():
        raise PaymentError(
            f"This invoice is in {invoice.currency}, and card payments are taken in "
            f"{billing_currency()}: ask us to settle it by hand."
        )
    return invoice.total


def invoice_payable(invoice: Invoice) -> bool:
    try:
        return stripe_enabled() and invoice_amount_due(invoice) > 0
    except PaymentError:
        return False


@transaction.atomic
def invoice_checkout_open(
    *, invoice: Invoice, by=None, source: str = Payment.Source.CUSTOMER
) -> Payment:
    """The Checkout Session that pays `invoice`: the one already open, or a new one.

    The invoice row stays locked until commit, so two clicks (or a customer and a staff link)
    never open two sessions; the Stripe idempotency key is the invoice and the attempt number,
    so a session Stripe made but whose answer was lost is given back, not made twice."""
    _require_enabled()
    invoice = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)
    amount = invoice_amount_due(invoice)
    currency = billing_currency()
    now = timezone.now()
    live = invoice.payments.select_for_update().filter(
        status__in=[Payment.Status.OPEN, Payment.Status.PROCESSING]
    )
    for payment in live.order_by("-created_at"):
        if payment.status == Payment.Status.PROCESSING:
            raise PaymentError(
                "A bank payment of this invoice is on its way; it shows here when it lands."
            )
        if reusable(payment, now):
            return payment
        _retire(payment)
    customer = invoice.customer
    path = reverse("customer:invoice_detail", args=[invoice.pk])
    for _ in range(3):
        attempt = invoice.payments.count() + 1
        key = f"invoice-{invoice.pk}-checkout-{attempt}"
        metadata = {
            "purpose": Payment.Purpose.INVOICE.value,
            "invoice": str(invoice.pk),
            "invoice_number": invoice.number or "",
            "customer": str(customer.pk),
            "attempt": str(attempt),
        }
        session = session_create(
            params={
                "mode": "payment",
                "client_reference_id": str(invoice.pk),
                "customer_email": customer.contact_email,
                "line_items": [
                    {
                        "quantity": 1,
                        "price_data": {
                            "currency": currency.lower(),
                            "unit_amount": to_minor(amount, currency),
                            "product_data": {
                                "name": f"Invoice {invoice.number}",
                                "description": f"{settings.BILLING_SELLER_NAME}, "
                                f"{invoice.period_start:%B %Y}",
                            },
                        },
                    }
                ],
                "metadata": metadata,
                "payment_intent_data": {
                    "metadata": metadata,
                    "description": f"Invoice {invoice.number}",
                },
                "success_url": _portal_url(path, "success"),
                "cancel_url": _portal_url(path, "cancelled"),
            },
            idempotency_key=key,
        )
        payment = _record(
            session,
            purpose=Payment.Purpose.INVOICE,
            customer=customer,
            invoice=invoice,
            amount=amount,
            currency=currency,
            idempotency_key=key,
            source=source,
            created_by=by if getattr(by, "pk", None) else None,
        )
        if payment.expires_at is None or payment.expires_at > timezone.now():
            return payment
        # A replay of a session made more than a day ago (its answer was lost then): it has
        # expired, so the next attempt number asks for a new one.
        payment.status = Payment.Status.EXPIRED
        payment.save(update_fields=["status", "updated_at"])
    raise PaymentError("Stripe gave back only expired sessions; try again later.")


def invoice_payment_link_send(*, invoice: Invoice, by) -> Payment:
    """Staff: email the customer's billing contacts the address of the invoice's Checkout
    Session (the open one, or a new one). Audited."""

    from .emails import recipients
    from .tasks import payment_link_email_send

    with transaction.atomic():
        payment = invoice_checkout_open(invoice=invoice, by=by, source=Payment.Source.STAFF_LINK)
        to = recipients(payment.customer)
        audit_record(
            customer=payment.customer,
            actor=by,
            action="invoice.payment_link",
            object_type="invoice",
            object_id=str(payment.invoice_id),
            after={
                "number": invoice.number,  # issued, so its number no longer changes
                "amount": str(payment.amount),
                "currency": payment.currency,
                "checkout_session": payment.checkout_session_id,
                "expires_at": payment.expires_at.isoformat() if payment.expires_at else None,
                "to": to,
            },
            source="portal",
        )
        payment_id = str(payment.pk)
        transaction.on_commit(lambda: payment_link_email_send.delay(payment_id))
    return payment


def checkout_sessions_expire_on_commit(*, invoice_id) -> None:
    """An invoice was paid by hand or voided: its open sessions are closed at Stripe after
    commit, so nobody pays it again through an old link."""
    if not stripe_enabled():
        return
    if Payment.objects.filter(invoice_id=invoice_id, status=Payment.Status.OPEN).exists():
        from .tasks import checkout_sessions_expire

        invoice_id = str(invoice_id)
        transaction.on_commit(lambda: checkout_sessions_expire.delay(invoice_id))


def checkout_sessions_expire(*, invoice_id) -> int:
    """Expire the invoice's open sessions at Stripe (a failure is logged; the session then
    ends by itself within a day, and a payment made through it is recorded as not applied)."""
    expired = 0
    if not stripe_enabled():
        return expired
    for payment in Payment.objects.filter(invoice_id=invoice_id, status=Payment.Status.OPEN):
        try:
            status = session_expire(payment.checkout_session_id)
        except PaymentError:
            continue
        if status == "expired":
            expired += Payment.objects.filter(pk=payment.pk, status=Payment.Status.OPEN).update(
                status=Payment.Status.EXPIRED,
                note="Expired by the portal: the invoice was settled another way.",
                updated_at=timezone.now(),
            )
    return expired


# --- Prepaid credit -----------------------------------------------------------------------


def credit_purchase_limits() -> tuple[Decimal, Decimal]:
    return (
        Decimal(str(settings.STRIPE_CREDIT_PURCHASE_MIN)).quantize(CENT),
        Decimal(str(settings.STRIPE_CREDIT_PURCHASE_MAX)).quantize(CENT),
    )


def credit_purchase_amount(raw) -> Decimal:
    """The amount a customer typed, checked: digits with at most two after the point, within
    the configured minimum and maximum, payable in the billing currency."""
    text = str(raw if raw is not None else "").strip()
    currency = billing_currency()
    if not text:
        raise PaymentError("Enter the amount of credit to buy.")
    if re.fullmatch(r"\d+\.\d{3,}", text):
        raise PaymentError("Amounts are in whole cents: at most two digits after the point.")
    if not AMOUNT_TEXT.fullmatch(text):
        raise PaymentError("Enter an amount such as 50 or 49.90 (digits, a point for cents).")
    try:
        amount = Decimal(text).quantize(CENT)
    except InvalidOperation:
        raise PaymentError("Enter an amount such as 50 or 49.90.") from None
    least, most = credit_purchase_limits()
    if amount < least:
        raise PaymentError(f"The smallest purchase is {least} {currency}.")
    if amount > most:
        raise PaymentError(f"The largest purchase is {most} {currency}.")
    to_minor(amount, currency)  # a zero-decimal currency takes whole units only
    return amount


@transaction.atomic
def credit_checkout_open(*, customer, amount, reference: str = "", by=None) -> Payment:
    """A Checkout Session buying `amount` of prepaid credit. `reference` is the form's own
    (sent again by a double click or a re-sent form): the same reference and amount give back
    the same session, through Stripe's idempotency key."""
    _require_enabled()
    if customer.status == "closed":
        raise PaymentError("This account is closed.")
    amount = credit_purchase_amount(amount)
    currency = billing_currency()
    try:
        reference = str(uuid.UUID(str(reference)[:64]))
    except ValueError:
        reference = str(uuid.uuid4())
    key = f"credit-{customer.pk}-{reference}-{to_minor(amount, currency)}"
    existing = Payment.objects.filter(idempotency_key=key, status=Payment.Status.OPEN).first()
    if existing and reusable(existing, timezone.now()):
        return existing
    metadata = {
        "purpose": Payment.Purpose.CREDIT.value,
        "customer": str(customer.pk),
        "amount": str(amount),
        "currency": currency,
    }
    path = reverse("customer:billing_overview")
    session = session_create(
        params={
            "mode": "payment",
            "client_reference_id": f"credit-{customer.pk}",
            "customer_email": customer.contact_email,
            "line_items": [
                {
                    "quantity": 1,
                    "price_data": {
                        "currency": currency.lower(),
                        "unit_amount": to_minor(amount, currency),
                        "product_data": {"name": f"Prepaid credit, {amount} {currency}"},
                    },
                }
            ],
            "metadata": metadata,
            "payment_intent_data": {"metadata": metadata, "description": "Prepaid credit"},
            "success_url": _portal_url(path, "success"),
            "cancel_url": _portal_url(path, "cancelled"),
        },
        idempotency_key=key,
    )
    return _record(
        session,
        purpose=Payment.Purpose.CREDIT,
        customer=customer,
        amount=amount,
        currency=currency,
        idempotency_key=key,
        source=Payment.Source.CUSTOMER,
        created_by=by if getattr(by, "pk", None) else None,
    )


# --- The invoice pages' payment panels ------------------------------------------------------


def invoice_pay_panel(invoice, *, outcome: str = "") -> dict:
    """The customer's invoice page: pay by card, or how it was paid (billing/_pay_panel.html).
    `outcome`: what Stripe Checkout sent the customer back with (success or cancelled)."""
    return {
        "state": invoice.payment_state,
        "payable": invoice_payable(invoice),
        "outcome": outcome if outcome in ("success", "cancelled") else "",
    }


def invoice_payments_panel(invoice, *, events: int = 20) -> dict:
    """The staff invoice page: payments, refunds, disputes, what Stripe sent, and whether a
    payment link can be sent (billing/_payments_staff.html)."""
    return {
        "state": invoice.payment_state,
        "can_send_link": invoice_payable(invoice),
        "events": list(
            PaymentEvent.objects.filter(payment__invoice=invoice).order_by("-received_at")[:events]
        ),
    }
