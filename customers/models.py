"""Customers, their Bearer tokens, the sync outbox towards DynamoDB and the audit trail.

PostgreSQL is the source of truth. Every change the proxy must see bumps a per-entity
`sync_version` and writes a `SyncOutbox` row in the same transaction; a Celery task applies the
rows to DynamoDB through `proxy.contract`, whose versioned puts make delivery idempotent.
"""

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from core.model_names import display_name


class Customer(models.Model):
    """A business that buys metered Bedrock access. Its id is the proxy's customer_id."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        SUSPENDED = "suspended", "Suspended"
        CLOSED = "closed", "Closed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    contact_email = models.EmailField()
    extra_contact_emails = models.JSONField(
        default=list, blank=True, help_text="Further addresses copied on notices."
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    billing_name = models.CharField(max_length=200, blank=True)
    billing_address = models.TextField(blank=True)
    tax_id = models.CharField("tax id", max_length=64, blank=True)
    notes = models.TextField(blank=True)

    # Limits the proxy enforces; None means "no limit", an empty list means "all models".
    daily_request_limit = models.PositiveIntegerField(null=True, blank=True)
    monthly_token_quota = models.PositiveBigIntegerField(null=True, blank=True)
    rpm_limit = models.PositiveIntegerField("requests per minute", null=True, blank=True)
    # Input + output tokens of priced models per minute (holds of calls in flight included).
    tpm_limit = models.PositiveBigIntegerField("tokens per minute", null=True, blank=True)
    allowed_models = models.JSONField(default=list, blank=True)
    ip_allowlist = models.JSONField(default=list, blank=True)
    default_model_params = models.JSONField(default=dict, blank=True)
    # Money, in the portal's currency (BILLING_CURRENCY): the most this month's calls may cost
    # at list price (None: no cap); the proxy counts it in micro-units (customers/money.py).
    monthly_budget = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="The most a calendar month's calls may cost (UTC); empty: no budget.",
    )
    prepaid = models.BooleanField(
        default=False,
        help_text="Calls are refused when the customer's prepaid credit runs out; the billing "
        "app computes the credit.",
    )
    # Rotation policy (customers/rotation.py): every active token is rotated once it is this
    # many days old; None: tokens are rotated only by hand.
    rotate_every_days = models.PositiveIntegerField(
        "rotate tokens every (days)",
        null=True,
        blank=True,
        help_text="Each token is replaced once it is this many days old; empty: never by itself.",
    )

    # How many items the proxy spreads this customer's admissions over (proxy/sharded.py): 1
    # (one transaction a call) suits nearly everyone; a customer sending hundreds of calls a
    # second at once needs more. Limits held for tokens or money may then be exceeded by up to
    # one call per shard; prepaid customers are always admitted with one.
    counter_shards = models.PositiveSmallIntegerField(
        "admission shards",
        default=1,
        help_text="1 for nearly every customer. For one that sends hundreds of requests a "
        "second at once: 16 admits over 1,000 a second. Request limits stay exact; token and "
        "money limits may be exceeded by up to one call per shard. Prepaid customers use 1.",
    )

    sync_version = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        indexes = [
            models.Index(fields=["status", "name"]),
            models.Index(fields=["name"]),
            models.Index(fields=["contact_email"]),
            models.Index(fields=["created_at"]),
        ]

    def __str__(self):
        return self.name

    @property
    def contact_emails(self) -> list[str]:
        return [self.contact_email, *[e for e in self.extra_contact_emails if e]]


class Token(models.Model):
    """A Bearer token. Only its SHA-256 hash is kept; the plaintext is shown once."""

    class Status(models.TextChoices):
        ACTIVE = "active", "Active"
        REVOKED = "revoked", "Revoked"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    customer = models.ForeignKey(Customer, on_delete=models.PROTECT, related_name="tokens")
    label = models.CharField(max_length=100, default="default")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    display_prefix = models.CharField(max_length=32)
    last4 = models.CharField(max_length=8)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    expires_at = models.DateTimeField(null=True, blank=True)
    # A rotated token keeps working until grace_until, then stops (the proxy sees the earlier
    # of expires_at and grace_until as the item's expires_at).
    grace_until = models.DateTimeField(null=True, blank=True)
    replaced_by = models.OneToOneField(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="replaces"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    expiry_warning_sent_at = models.DateTimeField(null=True, blank=True)
    # The customer's rotation policy (customers/rotation.py): the notice before the rotation,
    # the rotation itself (the grace period starts; the replacement is generated when a
    # customer user reveals it, so no plaintext waits anywhere), and the reminder during the
    # grace period. Each is set once, by a conditional update or under the row's lock.
    rotation_notice_sent_at = models.DateTimeField(null=True, blank=True)
    rotated_on_schedule_at = models.DateTimeField(null=True, blank=True)
    rotation_reminder_sent_at = models.DateTimeField(null=True, blank=True)
    # The token's own limits, inside the customer's (a request must pass both): None means
    # only the customer's limit applies; an empty list means the customer's models.
    daily_request_limit = models.PositiveIntegerField(null=True, blank=True)
    rpm_limit = models.PositiveIntegerField("requests per minute", null=True, blank=True)
    monthly_token_quota = models.PositiveBigIntegerField(null=True, blank=True)
    tpm_limit = models.PositiveBigIntegerField("tokens per minute", null=True, blank=True)
    allowed_models = models.JSONField(default=list, blank=True)
    monthly_budget = models.DecimalField(
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text="The most this token's calls may cost in a calendar month (UTC), inside the "
        "customer's budget; empty: only the customer's.",
    )
    sync_version = models.PositiveBigIntegerField(default=0)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["customer", "status"]),
            models.Index(fields=["status", "expires_at"]),
            models.Index(
                fields=["customer"],
                condition=models.Q(rotated_on_schedule_at__isnull=False, replaced_by__isnull=True),
                name="token_awaiting_reveal_idx",
            ),
        ]

    def __str__(self):
        return f"{self.label} ({self.masked})"

    @property
    def masked(self) -> str:
        return f"{self.display_prefix}…{self.last4}"

    @property
    def limit_summary(self) -> list[str]:
        """Its own limits in words, for pages (models by display name); empty: the customer's."""
        return self.limits_in_words()

    def limits_in_words(self, *, model_label=display_name) -> list[str]:
        """Its own limits in words; the command passes `model_label=str` to print model ids,
        which is what its options take."""
        parts = []
        for value, unit in (
            (self.daily_request_limit, "requests/day"),
            (self.rpm_limit, "requests/min"),
            (self.monthly_token_quota, "tokens/month"),
            (self.tpm_limit, "tokens/min"),
        ):
            if value is not None:
                parts.append(f"{value:,} {unit}")
        if self.monthly_budget is not None:
            from .money import money_text

            parts.append(f"{money_text(self.monthly_budget)}/month")
        if self.allowed_models:
            parts.append("models: " + ", ".join(model_label(m) for m in self.allowed_models))
        return parts

    @property
    def awaiting_reveal(self) -> bool:
        """Rotated by the policy; its replacement waits for a customer user to reveal it."""
        return (
            self.rotated_on_schedule_at is not None
            and self.replaced_by_id is None
            and self.status == self.Status.ACTIVE
        )

    @property
    def effective_expires_at(self):
        ends = [t for t in (self.expires_at, self.grace_until) if t is not None]
        return min(ends) if ends else None

    def state(self, now=None) -> str:
        """active, rotating (in its grace period), expired or revoked."""
        now = now or timezone.now()
        if self.status == self.Status.REVOKED:
            return "revoked"
        ends = self.effective_expires_at
        if ends is not None and ends <= now:
            return "expired"
        if self.grace_until is not None:
            return "rotating"
        return "active"


class SyncOutbox(models.Model):
    """One change the proxy must see, written in the transaction that made it."""

    class Kind(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        TOKEN = "token", "Token"
        PRICE = "price", "Price"  # a model's price item (billing/price_sync.py): no customer

    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="outbox"
    )
    token = models.ForeignKey(
        Token, null=True, blank=True, on_delete=models.CASCADE, related_name="outbox"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    version = models.PositiveBigIntegerField()
    # The item's fields at that version, without the token hash (read from `token` on delivery).
    payload = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    next_attempt_at = models.DateTimeField(default=timezone.now)
    delivered_at = models.DateTimeField(null=True, blank=True)
    # False when DynamoDB already held a newer version: delivered, but superseded.
    applied = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=models.Q(delivered_at__isnull=True),
                name="outbox_pending_idx",
            ),
            models.Index(
                fields=["customer", "id"],
                condition=models.Q(delivered_at__isnull=True),
                name="outbox_customer_pending_idx",
            ),
        ]

    def __str__(self):
        if self.kind == self.Kind.PRICE:
            return f"price v{self.version} of {self.payload.get('model_id', '?')}"
        return f"{self.kind} v{self.version} for {self.customer_id}"


class AuditEvent(models.Model):
    """Who changed what, when, from where. Never holds a token or a token hash."""

    customer = models.ForeignKey(
        Customer, null=True, blank=True, on_delete=models.CASCADE, related_name="audit_events"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_label = models.CharField(max_length=200, help_text="Email, or the command that acted.")
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=32)
    object_id = models.CharField(max_length=64, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["customer", "-created_at"])]

    def __str__(self):
        return f"{self.created_at:%Y-%m-%d %H:%M} {self.actor_label} {self.action}"
