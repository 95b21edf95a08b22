"""Payments through Stripe (billing/payments.py, billing/stripe_events.py): one row per Checkout
Session the portal opened (an invoice or a prepaid credit purchase), and one row per Stripe
event received, whose unique id makes every webhook delivery idempotent.

Imported by billing/models.py, so the models belong to the billing app.
"""

import uuid
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from .models import MONEY


class Payment(models.Model):
    """A payment taken with Stripe Checkout, from the session opened to its refunds and
    disputes. `status` is where the money is; `settlement` what the portal did with it."""

    class Purpose(models.TextChoices):
        INVOICE = "invoice", "Invoice"
        CREDIT = "credit", "Prepaid credit"

    class Status(models.TextChoices):
        OPEN = "open", "Waiting for the customer"
        PROCESSING = "processing", "Processing (bank payment pending)"
        PAID = "paid", "Paid"
        FAILED = "failed", "Failed"
        EXPIRED = "expired", "Expired unused"

    class Settlement(models.TextChoices):
        PENDING = "pending", "Not yet"
        APPLIED = "applied", "Applied"
        NOT_APPLIED = "not_applied", "Not applied: needs staff"

    class Source(models.TextChoices):
        CUSTOMER = "customer", "Customer, self-service"
        STAFF_LINK = "staff_link", "Payment link sent by staff"
        STRIPE = "stripe", "Found from a Stripe event"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    purpose = models.CharField(max_length=10, choices=Purpose.choices)
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="payments"
    )
    invoice = models.ForeignKey(
        "billing.Invoice",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payments",
    )
    grant = models.OneToOneField(
        "billing.CreditGrant",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="payment",
    )
    amount = models.DecimalField(**MONEY, help_text="What the Checkout Session asks for.")
    currency = models.CharField(max_length=3)
    amount_received = models.DecimalField(**MONEY, null=True, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.OPEN)
    settlement = models.CharField(
        max_length=12, choices=Settlement.choices, default=Settlement.PENDING
    )
    note = models.CharField(max_length=500, blank=True, help_text="What the portal last did.")
    source = models.CharField(max_length=12, choices=Source.choices, default=Source.CUSTOMER)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Stripe's side: ids are ASCII, at most 255 characters (checked before they are stored).
    checkout_session_id = models.CharField(max_length=255, unique=True)
    checkout_url = models.URLField(max_length=2000, blank=True)
    idempotency_key = models.CharField(max_length=255)
    payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    charge_id = models.CharField(max_length=255, blank=True, db_index=True)
    livemode = models.BooleanField(default=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    # Refunds: Stripe's running total for the charge (an absolute figure, so a late or repeated
    # event never counts twice), and for a credit purchase what was taken back from its grant.
    refunded_amount = models.DecimalField(**MONEY, default=Decimal("0.00"))
    refunded_at = models.DateTimeField(null=True, blank=True)
    credit_taken_back = models.DecimalField(**MONEY, default=Decimal("0.00"))
    dispute_id = models.CharField(max_length=255, blank=True)
    dispute_status = models.CharField(max_length=32, blank=True)
    dispute_reason = models.CharField(max_length=64, blank=True)
    dispute_amount = models.DecimalField(**MONEY, null=True, blank=True)
    dispute_updated_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(purpose="invoice") & Q(invoice__isnull=False))
                | (Q(purpose="credit") & Q(invoice__isnull=True)),
                name="payment_invoice_only_for_invoices",
            ),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(refunded_amount__gte=0) & Q(credit_taken_back__gte=0),
                name="payment_refunds_not_negative",
            ),
        ]
        indexes = [models.Index(fields=["invoice", "status"], name="payment_invoice_status_idx")]

    def __str__(self):
        what = f"invoice {self.invoice_id}" if self.invoice_id else "prepaid credit"
        return f"{self.amount} {self.currency} for {what} ({self.status})"

    @property
    def refund_state(self) -> str:
        """none, partial or full (against what was received, else what was asked)."""
        if self.refunded_amount <= 0:
            return "none"
        paid = self.amount_received if self.amount_received is not None else self.amount
        return "full" if self.refunded_amount >= paid else "partial"

    @property
    def needs_attention(self) -> bool:
        """Money received that the portal could not apply (a double payment, a voided invoice,
        an amount or currency that differs) and not refunded in full, or a dispute still open."""
        if (
            self.status == self.Status.PAID
            and self.settlement == self.Settlement.NOT_APPLIED
            and self.refund_state != "full"
        ):
            return True
        return self.dispute_status in OPEN_DISPUTE_STATUSES


OPEN_DISPUTE_STATUSES = frozenset(
    {"warning_needs_response", "warning_under_review", "needs_response", "under_review"}
)


class PaymentEvent(models.Model):
    """A Stripe event, recorded in the transaction that applies it: its id is unique, so a
    replay (Stripe retries, the same event twice at once) finds it and changes nothing.

    An event about a charge the portal cannot place yet (a refund or dispute that arrives
    before the Checkout completion naming its payment intent) is kept `deferred`, with the
    fields it needs in `data`, and applied when the completion arrives."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    livemode = models.BooleanField(default=False)
    stripe_created_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    payment = models.ForeignKey(
        Payment, null=True, blank=True, on_delete=models.SET_NULL, related_name="events"
    )
    outcome = models.CharField(max_length=500, blank=True)
    deferred = models.BooleanField(default=False)
    # The payment intent or charge a deferred event waits for.
    deferred_key = models.CharField(max_length=255, blank=True)
    data = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        indexes = [
            models.Index(
                fields=["deferred_key"],
                condition=Q(deferred=True),
                name="paymentevent_deferred_idx",
            )
        ]

    def __str__(self):
        return f"{self.event_id} {self.type}"
