"""The audit trail as people read it: what happened, to what, and each change before → after.

Events keep raw snapshots (customers/audit.py): field names, JSON lists, ISO instants, money as
exact text. The pages show labels ("Allowed models"), lists as "a, b", numbers and money with
thousands separators, instants in UTC, and what an empty value means for that field ("no limit",
"all models").
"""

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from django.conf import settings

ACTION_LABELS = {
    "customer.create": "Customer created",
    "customer.update": "Details changed",
    "customer.limits": "Limits changed",
    "customer.suspend": "Customer suspended",
    "customer.reactivate": "Customer reactivated",
    "customer.close": "Customer closed",
    "token.create": "Token created",
    "token.rotate": "Token rotated",
    "token.rotate.new": "Replacement token created",
    "token.revoke": "Token revoked",
    "token.rotate.scheduled": "Token rotated by the rotation policy",
    "token.reveal": "Replacement token revealed",
    "token.limits": "Token limits changed",
    "user.invite": "User invited",
    "user.reinvite": "Invitation sent again",
    "user.enable": "Login enabled",
    "user.disable": "Login disabled",
    "sync.repair": "Proxy copy repaired",
    "price.schedule": "Price scheduled",
    "api_key.created": "API key created",
    "api_key.revoked": "API key revoked",
}

FIELD_LABELS = {
    "name": "Name",
    "contact_email": "Contact email",
    "extra_contact_emails": "Other contact emails",
    "status": "Status",
    "billing_name": "Billing name",
    "billing_address": "Billing address",
    "tax_id": "Tax id",
    "notes": "Notes",
    "daily_request_limit": "Daily requests",
    "monthly_token_quota": "Monthly tokens",
    "rpm_limit": "Requests per minute",
    "tpm_limit": "Tokens per minute",
    "allowed_models": "Allowed models",
    "ip_allowlist": "IP allowlist",
    "default_model_params": "Default model parameters",
    "monthly_budget": "Monthly budget",
    "prepaid": "Prepaid",
    "rotate_every_days": "Rotate tokens every (days)",
    "counter_shards": "Admission shards",
    "rotated_on_schedule_at": "Rotated by the policy",
    "token_id": "Token id",
    "label": "Label",
    "masked": "Token",
    "token": "Token",
    "expires_at": "Expires",
    "grace_until": "Old token works until",
    "replaced_by": "Replaced by token",
    "revoked_at": "Revoked",
    "email": "Email",
    "full_name": "Full name",
    "is_active": "Can log in",
    "problem": "Problem found",
    "model_id": "Model",
    "display_name": "Display name",
    "effective_from": "Effective from",
    "input_per_1m": "Input per 1M tokens",
    "output_per_1m": "Output per 1M tokens",
    "cache_read_per_1m": "Cache read per 1M tokens",
    "cache_write_per_1m": "Cache write per 1M tokens",
    "per_request": "Per request",
    "source_url": "Source",
    "scope": "Scope",
    "key": "Key",
    "rate_limit_per_minute": "Requests per minute",
}

# What an empty value means, per field; anything else empty reads as a dash (EMPTY).
EMPTY_TEXT = {
    "daily_request_limit": "no limit",
    "monthly_token_quota": "no limit",
    "rpm_limit": "no limit",
    "tpm_limit": "no limit",
    "rate_limit_per_minute": "no limit",
    "allowed_models": "all models",
    "ip_allowlist": "any address",
    "default_model_params": "none",
    "extra_contact_emails": "none",
    "monthly_budget": "no budget",
    "rotate_every_days": "no rotation policy",
    "expires_at": "never",
    "revoked_at": "not revoked",
    "cache_read_per_1m": "as input tokens",
    "cache_write_per_1m": "as input tokens",
}

INSTANT_FIELDS = {"expires_at", "grace_until", "revoked_at", "rotated_on_schedule_at"}
MONEY_FIELDS = {"monthly_budget"}
STATUS_LABELS = {
    "active": "Active",
    "suspended": "Suspended",
    "closed": "Closed",
    "revoked": "Revoked",
}
# Long free text (notes, an address, a repair's problem) is cut here; the API has it whole.
MAX_TEXT = 300
EMPTY = "\u2013"  # an en dash, as the pages show an empty cell


@dataclass(frozen=True)
class Change:
    field: str
    label: str
    before: str | None  # None: the event records no earlier value (a creation, a repair)
    after: str


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


def field_label(name: str) -> str:
    return FIELD_LABELS.get(name) or str(name).replace("_", " ").capitalize()


def _number(value) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}"


def _money(value) -> str:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return _text(str(value))
    if not amount.is_finite():
        return _text(str(value))
    return f"{amount.quantize(Decimal('0.01')):,} {settings.BILLING_CURRENCY}"


def _instant(value) -> str:
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return _text(str(value))
    if moment.tzinfo is not None:
        moment = moment.astimezone(dt.UTC)
    return f"{moment:%Y-%m-%d %H:%M} UTC"


def _text(value: str) -> str:
    return value if len(value) <= MAX_TEXT else value[: MAX_TEXT - 1] + "…"


def _item(value) -> str:
    """One element of a list or a value of a mapping."""
    if value is None:
        return EMPTY
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float | Decimal):
        return _number(value)
    if isinstance(value, list):
        return "[" + ", ".join(_item(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_item(v)}" for k, v in sorted(value.items())) + "}"
    return str(value)


def value_text(field: str, value) -> str:
    """`value` of `field` as a person reads it."""
    if value in (None, "", [], {}):
        return EMPTY_TEXT.get(field, EMPTY)
    if field in MONEY_FIELDS:
        return _money(value)
    if field in INSTANT_FIELDS:
        return _instant(value)
    if field == "status" and value in STATUS_LABELS:
        return STATUS_LABELS[value]
    if isinstance(value, list):
        return _text(", ".join(_item(v) for v in value))
    if isinstance(value, dict):  # keys sorted: PostgreSQL's jsonb keeps no order
        return _text("; ".join(f"{k}: {_item(v)}" for k, v in sorted(value.items())))
    return _text(_item(value))


def changed_keys(before: dict, after: dict) -> list[str]:
    """The fields an event changed; for a creation, only those it set to something."""
    keys = [k for k in after if before.get(k) != after.get(k)]
    if not before:  # a creation: its empty fields say nothing
        keys = [k for k in keys if after[k] not in ("", [], {}, None)]
    return keys + [k for k in before if k not in after]


def readable_changes(event) -> list[Change]:
    before, after = event.before or {}, event.after or {}
    if not isinstance(before, dict) or not isinstance(after, dict):  # not written by audit.py
        return [Change("", "Recorded", None, _text(str(event.after)))]
    return [
        Change(
            field=key,
            label=field_label(key),
            before=value_text(key, before.get(key)) if event.before else None,
            after=value_text(key, after.get(key)),
        )
        for key in changed_keys(before, after)
    ]


def event_subject(event) -> str:
    """What the event was about, beyond its customer: a token, a user, an API key, a price."""
    before = event.before if isinstance(event.before, dict) else {}
    after = event.after if isinstance(event.after, dict) else {}
    known = {**before, **after}
    if event.object_type == "token":
        return f"Token {known.get('masked') or known.get('token') or event.object_id}"
    if event.object_type == "user":
        return f"User {known.get('email') or event.object_id}"
    if event.object_type == "api_key":
        name = known.get("name") or event.object_id
        return f"API key {name} ({known['key']})" if known.get("key") else f"API key {name}"
    if event.object_type == "price":
        return f"Price of {known.get('model_id') or event.object_id}"
    return ""
