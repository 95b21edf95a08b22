"""The portal's only door to Stripe's API: the client, Checkout Sessions, and money in the
minor units Stripe counts in. Nothing here writes to the database.

Stripe is on when both STRIPE_SECRET_KEY and STRIPE_WEBHOOK_SECRET are set (settings refuse one
without the other). The client uses `stripe.default_http_client` when one is set (the tests set
a stub there), else the library's own, and STRIPE_API_BASE when set (e.g. stripe-mock).
"""

import logging
import re
from decimal import Decimal

import stripe
from django.conf import settings
from stripe.checkout import Session
from stripe.params.checkout import SessionCreateParams

logger = logging.getLogger("billing.payments")

CENT = Decimal("0.01")
# Stripe's ids (cs_..., pi_..., ch_..., dp_..., evt_...): ASCII letters, digits, underscores.
STRIPE_ID = re.compile(r"[A-Za-z0-9_]{1,255}")
# Currencies whose minor unit is not the hundredth (docs.stripe.com/currencies).
ZERO_DECIMAL = frozenset(
    {"BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA"}
    | {"PYG", "RWF", "UGX", "VND", "VUV", "XAF", "XOF", "XPF"}
)
THREE_DECIMAL = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


class PaymentError(ValueError):
    """A payment the portal cannot start or accept: said to the person who asked."""


class StripeUnavailable(PaymentError):
    """Stripe answered with an error or could not be reached."""


def stripe_enabled() -> bool:
    return bool(settings.STRIPE_SECRET_KEY and settings.STRIPE_WEBHOOK_SECRET)


def stripe_client() -> stripe.StripeClient:
    base = (settings.STRIPE_API_BASE or "").rstrip("/")
    return stripe.StripeClient(
        settings.STRIPE_SECRET_KEY,
        http_client=stripe.default_http_client,
        base_addresses={"api": base} if base else None,
        max_network_retries=2,
    )


def billing_currency() -> str:
    return str(settings.BILLING_CURRENCY).upper()


def minor_exponent(currency: str) -> int:
    currency = currency.upper()
    if currency in ZERO_DECIMAL:
        return 0
    return 3 if currency in THREE_DECIMAL else 2


def to_minor(amount: Decimal, currency: str) -> int:
    """An amount in whole cents as Stripe's integer of minor units, exactly (12.34 USD -> 1234;
    1200 JPY -> 1200). Refuses what the currency cannot hold (12.34 JPY)."""
    if not isinstance(amount, Decimal) or not amount.is_finite():
        raise PaymentError("An amount must be a finite Decimal.")
    scaled = amount.scaleb(minor_exponent(currency))
    if scaled != scaled.to_integral_value():
        raise PaymentError(f"{amount} cannot be paid in {currency}: it has a fraction of a unit.")
    return int(scaled)


def from_minor(value: int, currency: str) -> Decimal | None:
    """Stripe's integer of minor units as an amount in cents, exactly; None when it is not a
    whole number of cents (a three-decimal currency's last digit)."""
    amount = Decimal(value).scaleb(-minor_exponent(currency))
    if amount != amount.quantize(CENT):
        return None
    return amount.quantize(CENT)


def _failed(action: str, exc: Exception) -> StripeUnavailable:
    # The error's class, code and HTTP status only: its message may repeat request details.
    logger.warning(
        "Stripe %s failed: %s (code %s, HTTP %s)",
        action,
        type(exc).__name__,
        getattr(exc, "code", None),
        getattr(exc, "http_status", None),
    )
    return StripeUnavailable("Stripe could not start the payment just now. Try again in a minute.")


def session_create(*, params: SessionCreateParams, idempotency_key: str) -> Session:
    """Create a Checkout Session; the same key within 24 hours gives back the same session."""
    try:
        session = stripe_client().v1.checkout.sessions.create(
            params, {"idempotency_key": idempotency_key}
        )
    except stripe.StripeError as exc:
        raise _failed("Checkout Session creation", exc) from None
    if not (isinstance(session.id, str) and STRIPE_ID.fullmatch(session.id)):
        raise StripeUnavailable("Stripe answered with a session the portal cannot read.")
    url = getattr(session, "url", None)
    if not (isinstance(url, str) and url.startswith(("https://", "http://"))):
        raise StripeUnavailable("Stripe answered without a payment page address.")
    return session


def session_expire(session_id: str) -> str:
    """Expire an open session; answers the session's status afterwards ("expired", or
    "complete" when the customer paid just before)."""
    sessions = stripe_client().v1.checkout.sessions
    try:
        return str(sessions.expire(session_id).status)
    except stripe.InvalidRequestError:
        pass  # not open any more: ask what it became
    except stripe.StripeError as exc:
        raise _failed("Checkout Session expiry", exc) from None
    try:
        return str(sessions.retrieve(session_id).status)
    except stripe.StripeError as exc:
        raise _failed("Checkout Session lookup", exc) from None
