"""Writes: every change to customers and tokens goes through these functions.

Staff views, management commands and (later) the REST API call them with the acting user (or
None for automation), the source IP and a `source` label. Each runs in one transaction that
also writes the audit event and, for what the proxy must see, the sync outbox row.
"""

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from proxy import contract

from . import validators
from .audit import audit_record, changed_only, customer_snapshot, token_snapshot
from .models import Customer, Token
from .money import money_text
from .sync import outbox_enqueue_customer, outbox_enqueue_token

DEFAULT = object()  # "use the configured default" for token expiry
UNSET = object()  # "leave unchanged" for partial limit updates

DETAIL_FIELDS = [
    "name",
    "contact_email",
    "extra_contact_emails",
    "billing_name",
    "billing_address",
    "tax_id",
    "notes",
]
LIMIT_FIELDS = [
    "daily_request_limit",
    "monthly_token_quota",
    "rpm_limit",
    "tpm_limit",
    "allowed_models",
    "ip_allowlist",
    "default_model_params",
    "monthly_budget",
    "prepaid",
    "rotate_every_days",
    "counter_shards",
]
SYNCED_DETAIL_FIELDS = {"name"}
# Limits the portal applies itself (customers/rotation.py): the proxy's item does not carry them.
PORTAL_ONLY_LIMIT_FIELDS = {"rotate_every_days"}
# A token's own limits, inside its customer's (the proxy enforces both).
TOKEN_LIMIT_FIELDS = [
    "daily_request_limit",
    "rpm_limit",
    "monthly_token_quota",
    "tpm_limit",
    "allowed_models",
    "monthly_budget",
]
LIMIT_LABELS = {
    "daily_request_limit": "Daily request limit",
    "monthly_token_quota": "Monthly token quota",
    "rpm_limit": "Requests per minute",
    "tpm_limit": "Tokens per minute",
    "monthly_budget": "Monthly budget",
}


@dataclass(frozen=True)
class IssuedToken:
    """A token just created: `plaintext` exists only here, to be shown once."""

    token: Token
    plaintext: str

    def __repr__(self):  # never let the plaintext reach a log through repr()
        return f"IssuedToken(token={self.token.pk})"


def _locked(customer: Customer) -> Customer:
    return Customer.objects.select_for_update().get(pk=customer.pk)


def clean_limits(**raw) -> dict:
    """Validate limit values given as strings or parsed values; unknown keys are an error."""
    parsers = {
        "daily_request_limit": lambda v: validators.positive_int_or_none(
            v, label="Daily request limit"
        ),
        "monthly_token_quota": lambda v: validators.positive_int_or_none(
            v, label="Monthly token quota", maximum=validators.INT64_MAX
        ),
        "rpm_limit": lambda v: validators.positive_int_or_none(v, label="Requests per minute"),
        "tpm_limit": lambda v: validators.positive_int_or_none(
            v, label="Tokens per minute", maximum=validators.TPM_MAX
        ),
        "allowed_models": validators.allowed_models,
        "ip_allowlist": validators.ip_allowlist,
        "default_model_params": validators.default_model_params,
        "monthly_budget": validators.monthly_budget,
        "prepaid": lambda v: validators.flag(v, label="Prepaid"),
        "rotate_every_days": validators.rotation_days,
        "counter_shards": validators.counter_shards,
    }
    unknown = set(raw) - set(parsers)
    if unknown:
        raise ValidationError(f"Unknown limits: {', '.join(sorted(unknown))}")
    return {name: parsers[name](value) for name, value in raw.items() if value is not UNSET}


def clean_token_limits(*, customer: Customer, within_customer: bool = False, **raw) -> dict:
    """A token's own limits, validated as the customer's are; its models must be among the
    customer's. `within_customer` (a customer user setting them): no number above the
    customer's own limit. Unknown keys are an error; UNSET values are left out."""
    unknown = set(raw) - set(TOKEN_LIMIT_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown token limits: {', '.join(sorted(unknown))}")
    values = clean_limits(**raw)
    quota = values.get("monthly_token_quota")
    if quota is not None and quota > validators.TOKEN_QUOTA_MAX:
        raise ValidationError(
            f"Monthly token quota is too large: at most {validators.TOKEN_QUOTA_MAX:,}."
        )
    if "allowed_models" in values:
        validators.models_within(values["allowed_models"], list(customer.allowed_models or []))
    if within_customer:
        for name, label in LIMIT_LABELS.items():
            value, ceiling = values.get(name), getattr(customer, name)
            if value is not None and ceiling is not None and value > ceiling:
                shown = money_text(ceiling) if name == "monthly_budget" else f"{ceiling:,}"
                raise ValidationError(f"{label} of a token can be at most the account's: {shown}.")
    return values


def customer_create(
    *,
    name: str,
    contact_email: str,
    actor=None,
    ip: str | None = None,
    source: str = "",
    **fields,
) -> Customer:
    name = (name or "").strip()
    if not name:
        raise ValidationError("A customer needs a name.")
    validators.one_email(contact_email)
    details = {k: v for k, v in fields.items() if k in DETAIL_FIELDS}
    limits = clean_limits(**{k: v for k, v in fields.items() if k in LIMIT_FIELDS})
    unknown = set(fields) - set(DETAIL_FIELDS) - set(LIMIT_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        customer = Customer.objects.create(
            name=name, contact_email=contact_email.strip(), **details, **limits
        )
        outbox_enqueue_customer(customer=customer)
        audit_record(
            customer=customer,
            actor=actor,
            action="customer.create",
            object_type="customer",
            object_id=customer.pk,
            after=customer_snapshot(customer),
            ip=ip,
            source=source,
        )
    return customer


def customer_update(
    *, customer: Customer, actor=None, ip: str | None = None, source: str = "", **fields
) -> Customer:
    """Change contact and billing details (and the name, which the proxy also sees)."""
    unknown = set(fields) - set(DETAIL_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown fields: {', '.join(sorted(unknown))}")
    if "name" in fields and not (fields["name"] or "").strip():
        raise ValidationError("A customer needs a name.")
    if "contact_email" in fields:
        validators.one_email(fields["contact_email"])
    if "extra_contact_emails" in fields:
        fields["extra_contact_emails"] = validators.emails(fields["extra_contact_emails"])
    return _change(customer, fields, "customer.update", actor, ip, source)


def customer_update_limits(
    *, customer: Customer, actor=None, ip: str | None = None, source: str = "", **limits
) -> Customer:
    """Set any of LIMIT_FIELDS; omitted ones stay as they are, None clears a numeric limit."""
    return _change(customer, clean_limits(**limits), "customer.limits", actor, ip, source)


def _change(customer, values: dict, action, actor, ip, source) -> Customer:
    with transaction.atomic():
        locked = _locked(customer)
        before = customer_snapshot(locked, list(values))
        for name, value in values.items():
            setattr(locked, name, value)
        after = customer_snapshot(locked, list(values))
        before, after = changed_only(before, after)
        if after:
            locked.save()
            if (action == "customer.limits" and set(after) - PORTAL_ONLY_LIMIT_FIELDS) or (
                SYNCED_DETAIL_FIELDS & set(after)
            ):
                outbox_enqueue_customer(customer=locked)
            audit_record(
                customer=locked,
                actor=actor,
                action=action,
                object_type="customer",
                object_id=locked.pk,
                before=before,
                after=after,
                ip=ip,
                source=source,
            )
    customer.refresh_from_db()
    return customer


def _set_status(customer, status, action, actor, ip, source) -> Customer:
    with transaction.atomic():
        locked = _locked(customer)
        if locked.status == status:
            return locked
        if locked.status == Customer.Status.CLOSED and action != "customer.reactivate":
            raise ValidationError("This customer is closed.")
        before = {"status": locked.status}
        locked.status = status
        locked.save(update_fields=["status", "updated_at"])
        outbox_enqueue_customer(customer=locked)
        audit_record(
            customer=locked,
            actor=actor,
            action=action,
            object_type="customer",
            object_id=locked.pk,
            before=before,
            after={"status": status},
            ip=ip,
            source=source,
        )
    customer.refresh_from_db()
    return customer


def customer_suspend(*, customer: Customer, actor=None, ip=None, source="") -> Customer:
    """Every token of the customer stops working at once (the proxy checks the status)."""
    return _set_status(customer, Customer.Status.SUSPENDED, "customer.suspend", actor, ip, source)


def customer_reactivate(*, customer: Customer, actor=None, ip=None, source="") -> Customer:
    return _set_status(customer, Customer.Status.ACTIVE, "customer.reactivate", actor, ip, source)


def customer_close(*, customer: Customer, actor=None, ip=None, source="") -> Customer:
    """Close the account and revoke its tokens."""
    with transaction.atomic():
        for token in customer.tokens.filter(status=Token.Status.ACTIVE):
            token_revoke(token=token, actor=actor, ip=ip, source=source)
        return _set_status(customer, Customer.Status.CLOSED, "customer.close", actor, ip, source)


def _default_expiry():
    days = settings.TOKEN_DEFAULT_LIFETIME_DAYS
    return timezone.now() + timedelta(days=days) if days else None


def _clean_expiry(expires_at) -> datetime | None:
    if expires_at is DEFAULT:
        return _default_expiry()
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError("The expiry must be in the future.")
    return expires_at


def _refuse_unless_active(status: str) -> None:
    """A token of a suspended or closed account could never be used: none is issued."""
    if status != Customer.Status.ACTIVE:
        state = "closed" if status == Customer.Status.CLOSED else "suspended"
        raise ValidationError(
            f"This account is {state}; tokens cannot be created until it is reactivated."
        )


def token_create(
    *,
    customer: Customer,
    label: str = "default",
    expires_at=DEFAULT,
    plaintext: str | None = None,
    actor=None,
    ip: str | None = None,
    source: str = "",
    limits: dict | None = None,
    within_customer: bool = False,
    _action: str = "token.create",
    _limits_from: Token | None = None,
) -> IssuedToken:
    """Issue a new token (or import `plaintext`, a token brought from elsewhere), with its own
    `limits` (TOKEN_LIMIT_FIELDS, see clean_token_limits) if given."""
    label = (label or "default").strip()[:100]
    expires_at = _clean_expiry(expires_at)
    plaintext = (
        contract.generate_token() if plaintext is None else validators.importable_token(plaintext)
    )
    token_hash = contract.hash_token(plaintext)
    with transaction.atomic():
        # Decided on the row, locked: a suspension committed meanwhile is seen.
        locked_customer = _locked(customer)
        _refuse_unless_active(locked_customer.status)
        if _limits_from is not None:  # a rotation: the new token keeps the old one's limits
            own = {name: getattr(_limits_from, name) for name in TOKEN_LIMIT_FIELDS}
            own["allowed_models"] = list(own["allowed_models"] or [])
        else:
            own = clean_token_limits(
                customer=locked_customer, within_customer=within_customer, **(limits or {})
            )
        if Token.objects.filter(token_hash=token_hash).exists():
            raise ValidationError("This token is already in use; choose another.")
        token = Token.objects.create(
            customer=customer,
            label=label,
            token_hash=token_hash,
            display_prefix=contract.token_display_prefix(plaintext),
            last4=contract.token_last4(plaintext),
            expires_at=expires_at,
            created_by=actor if getattr(actor, "pk", None) else None,
            **own,
        )
        outbox_enqueue_token(token=token)
        audit_record(
            customer=customer,
            actor=actor,
            action=_action,
            object_type="token",
            object_id=token.pk,
            after=token_snapshot(token),
            ip=ip,
            source=source,
        )
    return IssuedToken(token=token, plaintext=plaintext)


def token_rotate(
    *,
    token: Token,
    grace_hours: float | None = None,
    plaintext: str | None = None,
    expires_at=DEFAULT,
    actor=None,
    ip: str | None = None,
    source: str = "",
) -> IssuedToken:
    """A new token with the same label; the old one works for `grace_hours`, then stops."""
    if grace_hours is None:
        grace_hours = settings.TOKEN_ROTATION_GRACE_HOURS
    # NaN passes both comparisons below (and timedelta then raises), so refuse it first.
    if not math.isfinite(grace_hours) or grace_hours < 0 or grace_hours > 24 * 90:
        raise ValidationError("The grace period must be between 0 hours and 90 days.")
    with transaction.atomic():
        old = Token.objects.select_for_update().get(pk=token.pk)
        if old.state() not in ("active", "rotating") or old.replaced_by_id:
            raise ValidationError("Only an active token that was not rotated yet can be rotated.")
        # token_create refuses for a suspended or closed account, before the old token changes
        issued = token_create(
            customer=old.customer,
            label=old.label,
            expires_at=expires_at,
            plaintext=plaintext,
            actor=actor,
            ip=ip,
            source=source,
            _action="token.rotate.new",
            _limits_from=old,
        )
        before = token_snapshot(old)
        now = timezone.now()
        old.replaced_by = issued.token
        if grace_hours == 0:
            old.status, old.revoked_at = Token.Status.REVOKED, now
        else:
            # A token the rotation policy already rotated keeps its announced end, if earlier
            # (rotating it by hand replaces the reveal; it does not lengthen the grace period).
            ends = now + timedelta(hours=grace_hours)
            old.grace_until = min(old.grace_until, ends) if old.grace_until else ends
        old.save()
        outbox_enqueue_token(token=old)
        audit_record(
            customer=old.customer,
            actor=actor,
            action="token.rotate",
            object_type="token",
            object_id=old.pk,
            before=before,
            after={**token_snapshot(old), "replaced_by": str(issued.token.pk)},
            ip=ip,
            source=source,
        )
    token.refresh_from_db()
    return issued


def token_revoke(*, token: Token, actor=None, ip: str | None = None, source: str = "") -> Token:
    """Effective at once: the proxy reads the token item on every request."""
    with transaction.atomic():
        locked = Token.objects.select_for_update().get(pk=token.pk)
        if locked.status == Token.Status.REVOKED:
            return locked
        before = token_snapshot(locked)
        locked.status, locked.revoked_at = Token.Status.REVOKED, timezone.now()
        locked.save(update_fields=["status", "revoked_at"])
        outbox_enqueue_token(token=locked)
        audit_record(
            customer=locked.customer,
            actor=actor,
            action="token.revoke",
            object_type="token",
            object_id=locked.pk,
            before=before,
            after=token_snapshot(locked),
            ip=ip,
            source=source,
        )
    token.refresh_from_db()
    return token


def token_update_limits(
    *,
    token: Token,
    actor=None,
    ip: str | None = None,
    source: str = "",
    within_customer: bool = False,
    **limits,
) -> Token:
    """Set any of TOKEN_LIMIT_FIELDS on one token; omitted ones stay, None clears a number and
    an empty list gives the token the customer's models again. The proxy sees the change on
    the token's next request (the admission checks the token item's version)."""
    with transaction.atomic():
        # Token, then customer: the order token_rotate and customer_close lock them in.
        locked = Token.objects.select_for_update().get(pk=token.pk)
        customer = _locked(locked.customer)
        state = locked.state()
        if state in ("revoked", "expired"):
            raise ValidationError(f"This token is {state}; its limits cannot change.")
        values = clean_token_limits(customer=customer, within_customer=within_customer, **limits)
        before = token_snapshot(locked, list(values))
        for name, value in values.items():
            setattr(locked, name, value)
        after = token_snapshot(locked, list(values))
        before, after = changed_only(before, after)
        if after:
            locked.save(update_fields=list(after))
            outbox_enqueue_token(token=locked)
            audit_record(
                customer=customer,
                actor=actor,
                action="token.limits",
                object_type="token",
                object_id=locked.pk,
                before={"masked": locked.masked, **before},
                after={"masked": locked.masked, **after},
                ip=ip,
                source=source,
            )
    token.refresh_from_db()
    return token


def tokens_record_last_used(*, last_used: dict) -> int:
    """Move `last_used_at` forward from usage data ({token_id: datetime}); never backwards.

    For the usage pipeline, which sees the token id on every usage event. Not audited: it is
    an observation, not a change anyone made.
    """
    updated = 0
    for token_id, when in last_used.items():
        updated += (
            Token.objects.filter(pk=token_id)
            .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=when))
            .update(last_used_at=when)
        )
    return updated
