"""Accounts: one user model for staff and customer users, logging in by email.

A user is either staff (`is_staff`) or belongs to exactly one customer account; the database
enforces it, so no code path can create a user that is both or neither.
"""

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.crypto import salted_hmac


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create(self, email, password, **fields):
        if not email:
            raise ValueError("An email address is required.")
        user = self.model(email=self.normalize_email(email).lower(), **fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **fields):
        fields.setdefault("is_staff", False)
        fields.setdefault("is_superuser", False)
        return self._create(email, password, **fields)

    def create_superuser(self, email, password=None, **fields):
        fields.update(is_staff=True, is_superuser=True)
        return self._create(email, password, **fields)

    def get_by_natural_key(self, username):
        return self.get(email__iexact=username)


class User(AbstractBaseUser, PermissionsMixin):
    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    is_staff = models.BooleanField(
        default=False, help_text="Staff run the business: every customer, token and invoice."
    )
    is_active = models.BooleanField(default=True)
    customer = models.ForeignKey(
        "customers.Customer",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="users",
        help_text="The customer account a customer user belongs to; empty for staff.",
    )
    is_service_account = models.BooleanField(
        default=False, help_text="A staff account used by automation through API keys; no login."
    )
    date_joined = models.DateTimeField(default=timezone.now)
    session_epoch = models.PositiveIntegerField(
        default=0, help_text="Raised to end every session of the user (e.g. when disabled)."
    )

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]
        constraints = [
            models.CheckConstraint(
                condition=Q(is_staff=True, customer__isnull=True)
                | Q(is_staff=False, customer__isnull=False),
                name="user_is_staff_or_customer_user",
                violation_error_message="A user is either staff or belongs to one customer.",
            )
        ]

    def __str__(self):
        return self.email

    @property
    def is_customer_user(self) -> bool:
        return not self.is_staff and self.customer_id is not None

    def _get_session_auth_hash(self, secret=None):
        """A session stays valid only while the password, the role (staff, superuser, which
        customer) and the session epoch are what they were at login. Disabling a user raises
        the epoch, so re-enabling does not bring old sessions back."""
        identity = (
            f"{self.password}|{self.session_epoch}|{int(self.is_staff)}|"
            f"{int(self.is_superuser)}|{self.customer_id or ''}"
        )
        return salted_hmac(
            "portal.User.session_auth_hash", identity, secret=secret, algorithm="sha256"
        ).hexdigest()

    def get_full_name(self):
        return self.full_name or self.email

    def get_short_name(self):
        return self.full_name.split(" ")[0] if self.full_name else self.email


class ApiKey(models.Model):
    """A key for automation: belongs to a staff service account, stored only as a SHA-256 hash."""

    class Scope(models.TextChoices):
        READ = "read", "Read only"
        READ_WRITE = "read_write", "Read and write"

    name = models.CharField(max_length=100, help_text="What uses it, e.g. 'crm-sync'.")
    owner = models.ForeignKey(User, on_delete=models.PROTECT, related_name="api_keys")
    key_hash = models.CharField(max_length=64, unique=True)
    display_prefix = models.CharField(max_length=16)
    last4 = models.CharField(max_length=4)
    scope = models.CharField(max_length=16, choices=Scope.choices, default=Scope.READ)
    rate_limit_per_minute = models.PositiveIntegerField(default=600)
    created_by = models.ForeignKey(
        User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.display_prefix}…{self.last4})"

    def is_usable(self, now) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)

    @property
    def can_write(self) -> bool:
        return self.scope == self.Scope.READ_WRITE


class IdempotencyRecord(models.Model):
    """The stored answer to a creating POST sent with an `Idempotency-Key` header (24 h)."""

    owner = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    request_hash = models.CharField(max_length=64)
    status_code = models.PositiveSmallIntegerField(null=True)
    response_body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["owner", "key"], name="idempotency_key_per_owner")
        ]
        indexes = [models.Index(fields=["created_at"])]

    def __str__(self):
        return f"{self.method} {self.path} [{self.key}]"


class BackgroundRun(models.Model):
    """What every long job staff can follow on a page has (usage's IngestRun, billing's
    InvoiceRun): a status, who asked, and when it was queued, started, last made progress and
    finished. A run "running" whose `progress_at` is old lost its worker."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"

    ACTIVE = (Status.QUEUED, Status.RUNNING)

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    progress_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @property
    def active(self) -> bool:
        return self.status in self.ACTIVE


class Heartbeat(models.Model):
    """The last sign of life of a background process: one row per name ("worker", "beat"),
    updated in place. Kept in the database, not the cache, so that every process (web,
    worker, beat, `make run`) reads the same value whatever the cache backend."""

    name = models.CharField(max_length=32, primary_key=True)
    at = models.DateTimeField()
    host = models.CharField(max_length=255, blank=True)
    pid = models.PositiveIntegerField(null=True, blank=True)

    def __str__(self):
        return f"{self.name} at {self.at:%Y-%m-%d %H:%M:%S}"


class FormSubmissionKey(models.Model):
    """A one-time key carried by a form that creates a secret (a token, an API key, a webhook
    secret): the first POST with it uses it up, so a reload of the page that showed the secret,
    or Back and re-send, cannot create a second live one (core/once.py)."""

    key = models.CharField(max_length=64, primary_key=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    purpose = models.CharField(max_length=32)
    created_at = models.DateTimeField(default=timezone.now)
    used_at = models.DateTimeField(null=True, blank=True)

    def __str__(self):
        return f"{self.purpose} key of {self.user_id}"
