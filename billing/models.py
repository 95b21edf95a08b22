"""Billing data: price book, plans and their assignment history, credit wallet, invoices.

Money columns are DecimalField: 2 places for amounts on invoices and in wallets, 9 places for
unit prices (Bedrock lists prices such as $0.000035 per 1,000 tokens).
"""

import uuid
from decimal import Decimal
from typing import TypedDict

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import Q
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver

from core.errors import StateConflict
from core.models import BackgroundRun

from .pricing import PricingError, plan_problems, plan_problems_text


class DecimalDigits(TypedDict):
    """The precision keyword arguments of a DecimalField (model or form field)."""

    max_digits: int
    decimal_places: int


MONEY: DecimalDigits = {"max_digits": 14, "decimal_places": 2}
UNIT_PRICE: DecimalDigits = {"max_digits": 18, "decimal_places": 9}


class InvoiceImmutable(StateConflict):
    """Raised on any attempt to change an issued, paid or void invoice or its lines."""


class ModelPrice(models.Model):
    """The price of one Bedrock model from `effective_from` until the next row for that model."""

    model_id = models.CharField(max_length=200)
    effective_from = models.DateField()
    input_per_1k = models.DecimalField(**UNIT_PRICE)
    output_per_1k = models.DecimalField(**UNIT_PRICE)
    cache_read_per_1k = models.DecimalField(**UNIT_PRICE, null=True, blank=True)
    cache_write_per_1k = models.DecimalField(**UNIT_PRICE, null=True, blank=True)
    per_request = models.DecimalField(**UNIT_PRICE, default=Decimal(0))
    display_name = models.CharField(max_length=200, blank=True)
    source_url = models.URLField(max_length=500, blank=True)
    source_seen_on = models.DateField(null=True, blank=True)
    note = models.TextField(blank=True)

    class Meta:
        ordering = ["model_id", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["model_id", "effective_from"], name="model_price_unique_day"
            )
        ]

    def __str__(self):
        return f"{self.model_id} from {self.effective_from}"

    def save(self, *args, **kwargs):
        """Saved with the outbox row of the model's price item, in one transaction (and of the
        model it was moved from, if its model id changed)."""
        from .price_sync import outbox_enqueue_price

        with transaction.atomic(using=kwargs.get("using")):
            before = None
            if self.pk is not None:
                stored = type(self).objects.filter(pk=self.pk)
                before = stored.values_list("model_id", flat=True).first()
            super().save(*args, **kwargs)
            for model_id in sorted({m for m in (self.model_id, before) if m is not None}):
                outbox_enqueue_price(model_id=model_id)

    def clean(self):
        """Prices the proxy can be given (billing/price_sync.py): finite, not negative, below
        its limit. The admin's form shows these next to the fields."""
        from .price_sync import price_problems

        if problems := price_problems(self):
            raise ValidationError(problems)


@receiver(post_delete, sender=ModelPrice)
def _price_deleted(sender, instance, **kwargs):
    """A removed row changes its model's price item: recorded inside the deletion's transaction
    (Django deletes in one, single rows and querysets alike, and sends this signal within it)."""
    from .price_sync import outbox_enqueue_price

    outbox_enqueue_price(model_id=instance.model_id)


@receiver(pre_save, sender="customers.Customer")
def _prepaid_before(sender, instance, raw=False, update_fields=None, **kwargs):
    """Note whether a customer being made prepaid was prepaid already (the switch is what
    asks for a push; billing listens, the customers app does not know about it)."""
    instance._prepaid_was = None
    if raw or not getattr(instance, "prepaid", False) or instance._state.adding:
        return
    if update_fields is not None and "prepaid" not in update_fields:
        return
    stored = type(instance)._base_manager.filter(pk=instance.pk).values_list("prepaid", flat=True)
    instance._prepaid_was = stored.first()


@receiver(post_save, sender="customers.Customer")
def _prepaid_switched_on(sender, instance, created, raw=False, **kwargs):
    """A customer switched to prepaid: its credit reaches the proxy on commit (until then the
    proxy finds no credit and refuses, rather than admit calls nobody counts)."""
    if raw or not getattr(instance, "prepaid", False):
        return
    if created or getattr(instance, "_prepaid_was", None) is False:
        from .credit_sync import credit_push_on_commit

        credit_push_on_commit(customer_id=instance.pk)


class PricingPlan(models.Model):
    class Kind(models.TextChoices):
        PER_TOKEN = "per_token", "Per token (price book + markup)"
        PER_REQUEST = "per_request", "Pay per request"
        TIERED = "tiered", "Tiered"
        SUBSCRIPTION = "subscription", "Subscription with allowance + overage"
        PACKAGE = "package", "Package"

    class TierMode(models.TextChoices):
        GRADUATED = "graduated", "Graduated"
        VOLUME = "volume", "Volume"

    class Metric(models.TextChoices):
        REQUESTS = "requests", "Requests"
        KILOTOKENS = "kilotokens", "Thousands of tokens"

    code = models.SlugField(max_length=60, unique=True)
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    metric = models.CharField(max_length=20, choices=Metric.choices, default=Metric.REQUESTS)
    markup_percent = models.DecimalField(max_digits=7, decimal_places=3, default=Decimal(0))
    per_request_price = models.DecimalField(**UNIT_PRICE, default=Decimal(0))
    tier_mode = models.CharField(
        max_length=20, choices=TierMode.choices, default=TierMode.GRADUATED, blank=True
    )
    tiers = models.JSONField(default=list, blank=True)
    monthly_fee = models.DecimalField(**MONEY, default=Decimal(0))
    included_units = models.BigIntegerField(default=0)
    overage_unit_price = models.DecimalField(**UNIT_PRICE, default=Decimal(0))
    package_size = models.BigIntegerField(default=0)
    package_price = models.DecimalField(**MONEY, default=Decimal(0))
    minimum_commitment = models.DecimalField(**MONEY, null=True, blank=True)
    is_active = models.BooleanField(default=True)
    description = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def save(self, *args, **kwargs):
        """The plan rule (pricing.plan_problems, also the plan form's) holds for every write
        through the model: no NaN, Infinity or negative price, fee or minimum, whole and
        increasing tier bounds."""
        problems = plan_problems(self)
        if problems:
            raise PricingError(f"Plan {self.name!r} is refused: {plan_problems_text(problems)}")
        super().save(*args, **kwargs)


class CustomerPlan(models.Model):
    """Which plan a customer is on, from `effective_from` up to (not including) `effective_to`."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="plan_assignments"
    )
    plan = models.ForeignKey(PricingPlan, on_delete=models.PROTECT, related_name="assignments")
    effective_from = models.DateField()
    effective_to = models.DateField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["customer", "-effective_from"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "effective_from"], name="customer_plan_unique_start"
            ),
            models.CheckConstraint(
                condition=Q(effective_to__isnull=True)
                | Q(effective_to__gt=models.F("effective_from")),
                name="customer_plan_positive_range",
            ),
        ]

    def __str__(self):
        return f"{self.customer_id} on {self.plan_id} from {self.effective_from}"


class BillingProfile(models.Model):
    """Per-customer wallet settings: low-balance alert and optional suspension at zero."""

    customer = models.OneToOneField(
        "customers.Customer", on_delete=models.CASCADE, related_name="billing_profile"
    )
    low_balance_threshold = models.DecimalField(**MONEY, default=Decimal("10.00"))
    suspend_at_zero = models.BooleanField(default=False)
    low_balance_notified = models.BooleanField(default=False)
    # The version of the last prepaid-credit figure sent to the proxy (billing/credit_sync.py):
    # bumped under this row's lock by every push, so the proxy keeps only the newest figure.
    credit_version = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"Billing profile of {self.customer_id}"


class CreditPeriodSpend(models.Model):
    """What a prepaid customer's calls cost at the proxy in one month (the CREDIT item's
    `used#YYYY-MM`, integer micro-units), read once, when that month's first invoice was
    issued. From then on the invoice pays for that spend out of the wallet, so the credit
    granted to the proxy adds it back (billing/credit_sync.py). Kept when the invoice is voided:
    the month was invoiced, the void gives the wallet back."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="credit_period_spends"
    )
    period_start = models.DateField(help_text="The first day of the month.")
    used_micros = models.BigIntegerField()
    invoice = models.ForeignKey(
        "Invoice", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["customer", "period_start"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "period_start"], name="credit_period_spend_once"
            ),
            models.CheckConstraint(
                condition=Q(used_micros__gte=0), name="credit_period_spend_not_negative"
            ),
        ]

    def __str__(self):
        return f"{self.customer_id} {self.period_start:%Y-%m}: {self.used_micros} micro-units"


class CreditGrant(models.Model):
    """One top-up of the prepaid wallet. `remaining` goes down as invoices consume it."""

    class Kind(models.TextChoices):
        PURCHASE = "purchase", "Purchase"
        PROMOTIONAL = "promotional", "Promotional grant"
        CREDIT_NOTE = "credit_note", "Credit note"

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="credit_grants"
    )
    kind = models.CharField(max_length=20, choices=Kind.choices)
    amount = models.DecimalField(**MONEY)
    remaining = models.DecimalField(**MONEY)
    expires_on = models.DateField(null=True, blank=True)
    note = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="credit_grant_positive"),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=models.F("amount")),
                name="credit_grant_remaining_in_range",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.amount} for {self.customer_id}"


class Invoice(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        ISSUED = "issued", "Issued"
        PAID = "paid", "Paid"
        VOID = "void", "Void"

    class Kind(models.TextChoices):
        INVOICE = "invoice", "Invoice"
        CREDIT_NOTE = "credit_note", "Credit note"

    # Fields that may still change once an invoice has left draft (the lifecycle itself).
    LIFECYCLE_FIELDS = frozenset({"status", "paid_at", "voided_at", "void_reason"})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="invoices"
    )
    kind = models.CharField(max_length=12, choices=Kind.choices, default=Kind.INVOICE)
    period_start = models.DateField()
    period_end = models.DateField(help_text="Last day of the period, inclusive.")
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    number = models.CharField(max_length=40, unique=True, null=True, blank=True)
    currency = models.CharField(max_length=3, default="USD")
    plan_name = models.CharField(max_length=200, blank=True)
    subtotal = models.DecimalField(**MONEY, default=Decimal(0))
    credits_applied = models.DecimalField(**MONEY, default=Decimal(0))
    tax_rate = models.DecimalField(max_digits=6, decimal_places=4, default=Decimal(0))
    tax = models.DecimalField(**MONEY, default=Decimal(0))
    total = models.DecimalField(**MONEY, default=Decimal(0))
    replaces = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="replaced_by"
    )
    credited_invoice = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="credit_notes"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    issued_at = models.DateTimeField(null=True, blank=True)
    # The payment terms in force when it was issued (BILLING_PAYMENT_TERMS_DAYS then): the due
    # date is issue date + these days, and a later change of the setting does not move it.
    payment_terms_days = models.PositiveSmallIntegerField(null=True, blank=True)
    paid_at = models.DateTimeField(null=True, blank=True)
    voided_at = models.DateTimeField(null=True, blank=True)
    void_reason = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-period_start", "customer"]
        constraints = [
            # The monthly run's invoice: one per customer and period, whatever happens to it.
            # Reissues (void + reissue) point at the invoice they replace, and credit notes are
            # not invoices, so both are exempt.
            models.UniqueConstraint(
                fields=["customer", "period_start"],
                condition=Q(replaces__isnull=True, kind="invoice"),
                name="invoice_one_per_customer_period",
            ),
        ]
        indexes = [
            models.Index(fields=["customer", "status", "-period_start"]),
            # The staff list: newest period first within a status (the 110k-invoice bench list
            # went from a full sort of the joined tables to reading one period in index order).
            models.Index(fields=["status", "-period_start"], name="invoice_status_period_idx"),
            models.Index(fields=["-period_start"], name="invoice_period_idx"),
        ]

    def __str__(self):
        return self.number or f"Draft {self.customer_id} {self.period_start:%Y-%m}"

    # The lifecycle only moves forward: draft -> issued -> paid, issued or paid -> void.
    # (Staying put is allowed: saving an unchanged status is not a move.)
    NEXT_STATUSES = {
        Status.DRAFT: frozenset({Status.DRAFT, Status.ISSUED}),
        Status.ISSUED: frozenset({Status.ISSUED, Status.PAID, Status.VOID}),
        Status.PAID: frozenset({Status.PAID, Status.VOID}),
        Status.VOID: frozenset({Status.VOID}),
    }

    def save(self, *args, **kwargs):
        if not self._state.adding:
            self._guard_against_stored(kwargs.get("update_fields"))
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        stored = Invoice._base_manager.filter(pk=self.pk).values_list("status", flat=True).first()
        if (stored or self.status) != self.Status.DRAFT:
            raise InvoiceImmutable("Only draft invoices can be deleted.")
        return super().delete(*args, **kwargs)

    def _guard_against_stored(self, update_fields) -> None:
        """Compare with the row as it is stored now, not as this instance was loaded: a stale
        copy of a draft, saved after someone issued the invoice, must not bring it back to
        draft or blank its number. (PostgreSQL's trigger, migrations 0003/0005/0009, refuses
        the same moves when they bypass the model.)"""
        attnames = [f.attname for f in self._meta.concrete_fields if not f.primary_key]
        if update_fields is not None:
            names = set(update_fields)
            attnames = [
                f.attname
                for f in self._meta.concrete_fields
                if f.name in names or f.attname in names
            ]
        fetch = {*attnames, "number", "status"}
        stored = Invoice._base_manager.filter(pk=self.pk).values(*fetch).first()
        if stored is None:
            return
        stored_status = stored["status"]
        label = stored["number"] or "(no number)"
        if "status" in attnames and self.status not in self.NEXT_STATUSES.get(
            stored_status, frozenset({stored_status})
        ):
            raise InvoiceImmutable(
                f"Invoice {label} is {stored_status}: it cannot move to {self.status} (only "
                "draft -> issued -> paid, and issued or paid -> void)."
            )
        if stored_status == self.Status.DRAFT:
            return
        changed = {name for name in attnames if getattr(self, name) != stored[name]}
        illegal = changed - self.LIFECYCLE_FIELDS
        if illegal:
            fields = ", ".join(sorted(illegal))
            raise InvoiceImmutable(f"Invoice {label} is {stored_status}; cannot change {fields}.")

    @property
    def payment_state(self):
        """How it was paid (Stripe, by hand, nothing due), refunds, disputes:
        billing/payment_state.py. Reads `payments` (prefetch them for a list)."""
        from .payment_state import invoice_payment_state

        return invoice_payment_state(self)


class InvoiceLine(models.Model):
    class Kind(models.TextChoices):
        USAGE = "usage", "Usage"
        SUBSCRIPTION = "subscription", "Subscription fee"
        OVERAGE = "overage", "Overage"
        TIER = "tier", "Tiered usage"
        PACKAGE = "package", "Package"
        MINIMUM = "minimum", "Minimum commitment"
        MANUAL = "manual", "Manual"

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="lines")
    position = models.PositiveIntegerField(default=0)
    kind = models.CharField(max_length=20, choices=Kind.choices)
    model_id = models.CharField(max_length=200, blank=True)
    description = models.CharField(max_length=300)
    quantity = models.DecimalField(max_digits=20, decimal_places=3, default=Decimal(0))
    unit = models.CharField(max_length=30, blank=True)
    unit_price = models.DecimalField(**UNIT_PRICE, null=True, blank=True)
    amount = models.DecimalField(**MONEY)

    class Meta:
        ordering = ["invoice", "position", "id"]

    def __str__(self):
        return self.description

    def save(self, *args, **kwargs):
        self._guard()
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        self._guard()
        return super().delete(*args, **kwargs)

    def _guard(self):
        status = Invoice.objects.filter(pk=self.invoice_id).values_list("status", flat=True).first()
        if status and status != Invoice.Status.DRAFT:
            raise InvoiceImmutable("Lines of an issued invoice cannot change.")


class CreditApplication(models.Model):
    """How much of which grant paid which invoice: the debit side of the wallet ledger."""

    grant = models.ForeignKey(CreditGrant, on_delete=models.PROTECT, related_name="applications")
    invoice = models.ForeignKey(
        Invoice, on_delete=models.PROTECT, related_name="credit_applications"
    )
    amount = models.DecimalField(**MONEY)
    created_at = models.DateTimeField(auto_now_add=True)
    reversed = models.BooleanField(default=False)

    def __str__(self):
        return f"{self.amount} from grant {self.grant_id} to {self.invoice_id}"


class InvoiceCounter(models.Model):
    """The last number handed out. Locked with select_for_update inside the issue transaction,
    so numbers are sequential and gapless: a rolled-back issue gives its number back."""

    name = models.CharField(max_length=40, primary_key=True)
    last_number = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"{self.name}: {self.last_number}"


class InvoiceRun(BackgroundRun):
    """One invoice run for a month (staff page, monthly beat or command), with its progress.

    The run itself (billing.invoice_run) is all or nothing; this row only reports on it and is
    written outside the run's insert transaction, so it says "failed" when the drafts were not.
    `progress_at` is set when claimed and at each progress step: an active run with none for
    invoice_run.STALE_MINUTES lost its worker (billing.invoice_run.invoice_run_request).
    """

    class Trigger(models.TextChoices):
        STAFF = "staff", "Staff page"
        MONTHLY = "monthly", "Monthly schedule"
        COMMAND = "command", "Command"

    period_start = models.DateField()
    trigger = models.CharField(max_length=16, choices=Trigger.choices, default=Trigger.STAFF)
    customers_total = models.PositiveIntegerField(default=0)
    customers_rated = models.PositiveIntegerField(default=0)
    drafts_created = models.PositiveIntegerField(default=0)
    drafts_skipped = models.PositiveIntegerField(default=0)  # already there before the run
    error = models.TextField(blank=True)

    class Meta(BackgroundRun.Meta):
        constraints = [
            # One queued or running run per month: a second is refused, not run alongside.
            models.UniqueConstraint(
                fields=["period_start"],
                condition=Q(status__in=["queued", "running"]),
                name="invoicerun_one_active_per_period",
            )
        ]

    def __str__(self):
        return f"{self.period_start:%Y-%m} {self.status}"

    @property
    def progress_percent(self) -> int:
        if self.status == self.Status.SUCCEEDED:
            return 100
        if not self.customers_total:
            return 0
        return 100 * self.customers_rated // self.customers_total


class PriceBookVersion(models.Model):
    """One row: the version of the last price item recorded for the proxy. Locked and bumped by
    every outbox row of the price book (billing/price_sync.py), so items' versions only grow."""

    version = models.PositiveBigIntegerField(default=0)

    def __str__(self):
        return f"price book version {self.version}"


# Stripe payments live in their own module; imported here so they belong to this app.
from .payment_models import OPEN_DISPUTE_STATUSES, Payment, PaymentEvent  # noqa: E402, F401
