"""Reading Stripe's event objects: every field the portal uses is checked for its type and
range before anything is applied (billing/stripe_events.py, billing/stripe_refunds.py). A field
of the wrong shape raises Refused: the event is recorded with the reason and not applied."""

import unicodedata
import uuid
from decimal import Decimal

from customers.audit import audit_record

from .models import Payment
from .stripe_gateway import STRIPE_ID, from_minor

MAX_MINOR = 10**15  # more than any amount column holds; larger is refused, not converted
DISPUTE_STATUSES = frozenset(
    {
        "warning_needs_response",
        "warning_under_review",
        "warning_closed",
        "needs_response",
        "under_review",
        "won",
        "lost",
        "prevented",
    }
)
FINAL_DISPUTE_STATUSES = frozenset({"warning_closed", "won", "lost", "prevented"})


class Refused(Exception):
    """A signed event whose object cannot be applied: recorded with the reason."""


def clean_text(value, limit: int) -> str:
    """Text from Stripe as it may be stored and shown: no control characters (NUL included)."""
    if not isinstance(value, str):
        return ""
    kept = "".join(c for c in value if unicodedata.category(c) != "Cc")
    return kept[:limit]


def field_id(obj: dict, key: str, *, required: bool = True) -> str:
    value = obj.get(key)
    if isinstance(value, dict):  # an expanded object
        value = value.get("id")
    if value is None or value == "":
        if required:
            raise Refused(f"{key} is missing")
        return ""
    if not (isinstance(value, str) and STRIPE_ID.fullmatch(value)):
        raise Refused(f"{key} is not a Stripe id")
    return value


def field_minor(obj: dict, key: str) -> int:
    value = obj.get(key)
    if type(value) is not int:  # bool is an int to Python, not to Stripe
        raise Refused(f"{key} is not a whole number of minor units")
    if not 0 <= value < MAX_MINOR:
        raise Refused(f"{key} is out of range")
    return value


def field_currency(obj: dict) -> str:
    value = obj.get("currency")
    if not (isinstance(value, str) and len(value) == 3 and value.isascii() and value.isalpha()):
        raise Refused("currency is not a currency code")
    return value.upper()


def exact_amount(minor: int, currency: str) -> Decimal:
    amount = from_minor(minor, currency)
    if amount is None:
        raise Refused(f"{minor} minor units of {currency} is not a whole number of cents")
    return amount


def field_metadata(obj: dict) -> dict:
    raw = obj.get("metadata")
    if not isinstance(raw, dict):
        return {}
    return {clean_text(k, 40): clean_text(v, 500) for k, v in raw.items() if isinstance(v, str)}


def parse_uuid(value: str):
    try:
        return uuid.UUID(value[:64])
    except (ValueError, TypeError, AttributeError):
        return None


def payment_audit(payment: Payment, action: str, after: dict) -> None:
    audit_record(
        customer=payment.customer,
        actor=None,
        action=action,
        object_type="payment",
        object_id=str(payment.pk),
        after={"checkout_session": payment.checkout_session_id, **after},
        source="stripe",
    )
