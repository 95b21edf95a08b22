"""The audit trail: services call `audit_record` inside their transaction.

Snapshots are built by the functions below from an allow-list of fields, so a token hash (or a
plaintext token) can never reach the log by accident.
"""

from decimal import Decimal

from django.utils import timezone

from .models import AuditEvent, Customer, Token

CUSTOMER_AUDIT_FIELDS = [
    "name",
    "contact_email",
    "extra_contact_emails",
    "status",
    "billing_name",
    "billing_address",
    "tax_id",
    "notes",
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


def _json(value):
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, Decimal):  # money: its exact text ("50.00"), never a float
        return str(value)
    return value


def customer_snapshot(customer: Customer, fields=None) -> dict:
    return {name: _json(getattr(customer, name)) for name in fields or CUSTOMER_AUDIT_FIELDS}


TOKEN_LIMIT_AUDIT_FIELDS = [
    "daily_request_limit",
    "rpm_limit",
    "monthly_token_quota",
    "tpm_limit",
    "allowed_models",
    "monthly_budget",
]


def token_snapshot(token: Token, fields=None) -> dict:
    """The token's audited fields (never its hash); `fields`: only these of its limits."""
    if fields is not None:
        return {name: _json(getattr(token, name)) for name in fields}
    return {
        "token_id": str(token.id),
        "label": token.label,
        "masked": token.masked,
        "status": token.status,
        "expires_at": _json(token.expires_at),
        "grace_until": _json(token.grace_until),
        **{name: _json(getattr(token, name)) for name in TOKEN_LIMIT_AUDIT_FIELDS},
    }


def changed_only(before: dict, after: dict) -> tuple[dict, dict]:
    keys = [k for k in after if before.get(k) != after.get(k)]
    return {k: before.get(k) for k in keys}, {k: after[k] for k in keys}


def actor_label(actor) -> str:
    return getattr(actor, "email", None) or "system"


def audit_record(
    *,
    customer: Customer | None,
    actor,
    action: str,
    object_type: str,
    object_id: str = "",
    before: dict | None = None,
    after: dict | None = None,
    ip: str | None = None,
    source: str = "",
) -> AuditEvent:
    """`actor` is a user or None (automation); `source` names the command or job that acted."""
    label = actor_label(actor) if actor is not None else (source or "system")
    if actor is not None and source:
        label = f"{label} via {source}"
    return AuditEvent.objects.create(
        customer=customer,
        actor=actor if getattr(actor, "pk", None) else None,
        actor_label=label[:200],
        action=action,
        object_type=object_type,
        object_id=str(object_id),
        before=before,
        after=after,
        source_ip=ip or None,
        created_at=timezone.now(),
    )
