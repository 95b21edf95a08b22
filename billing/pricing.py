"""Pure pricing functions: quantities and prices in, Decimal amounts out. No database.

Amounts returned here are unrounded unless the name says otherwise; callers round once per
invoice line with `round_money`, so rounding never compounds across tiers or days.
Floats are rejected: a float price is a bug waiting to lose a cent.
"""

import decimal
import math
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

from core.errors import ServiceError
from proxy.models import INFERENCE_PROFILE_PREFIXES

CENT = Decimal("0.01")
THOUSAND = Decimal(1000)


# Cross-region inference profiles ("us.anthropic.claude-3-haiku-...") are billed at the price of
# the model they route to, so the price book holds base model ids only. The list is the proxy's
# (proxy/models.py), so the proxy's price items resolve a profile as invoices do.


def price_model_id(model_id: str) -> str:
    for prefix in INFERENCE_PROFILE_PREFIXES:
        if model_id.startswith(prefix):
            return model_id[len(prefix) :]
    return model_id


class PricingError(ServiceError, ValueError):
    """Prices or tiers that cannot be applied (bad configuration, never a server error)."""


def to_decimal(value) -> Decimal:
    if isinstance(value, float):
        raise PricingError("Money must be Decimal or str, never float.")
    if isinstance(value, Decimal):
        return value
    try:
        return Decimal(str(value))
    except decimal.InvalidOperation as exc:
        raise PricingError(f"Not a number: {value!r}") from exc


def rounding_mode() -> str:
    mode = getattr(settings, "BILLING_ROUNDING", decimal.ROUND_HALF_UP)
    if not (mode.startswith("ROUND_") and hasattr(decimal, mode)):
        raise PricingError(f"Unknown rounding mode {mode!r}.")
    return getattr(decimal, mode)


def round_money(amount: Decimal) -> Decimal:
    """Round one line to cents, half-up unless BILLING_ROUNDING says otherwise."""
    return to_decimal(amount).quantize(CENT, rounding=rounding_mode())


@dataclass(frozen=True)
class Tier:
    """Units up to and including `up_to` (None: no upper bound) cost `unit_price` each,
    plus `flat_fee` once when the tier is reached (Stripe's `flat_amount`)."""

    up_to: int | None
    unit_price: Decimal
    flat_fee: Decimal = Decimal(0)


# Tier prices live in the plan's JSON, not in a column: they get the limits of the unit-price
# columns (billing.models.UNIT_PRICE: 18 digits, 9 of them decimal places).
PRICE_PLACES = 9
PRICE_LIMIT = Decimal(10) ** 9
TIER_BOUND_LIMIT = 10**18


def plan_number(value, what: str, *, places: int = PRICE_PLACES, limit=PRICE_LIMIT) -> Decimal:
    """A price, fee or minimum of a plan: a finite Decimal, not negative, at most `places`
    decimal places and below `limit`. NaN and Infinity are refused (Decimal and PostgreSQL's
    numeric both accept them, and one NaN makes every amount it touches NaN)."""
    if isinstance(value, float):
        raise PricingError(f'{what} must be written as a string, such as "6.5", not {value!r}.')
    try:
        number = to_decimal(value)
    except PricingError:
        raise PricingError(f"{what} must be a number, not {value!r}.") from None
    if not number.is_finite():
        raise PricingError(f"{what} must be a finite number, not {value}.")
    if number < 0:
        raise PricingError(f"{what} must not be negative.")
    if number != number.quantize(Decimal(1).scaleb(-places), rounding=decimal.ROUND_DOWN):
        raise PricingError(f"{what} has more than {places} decimal places.")
    if number >= limit:
        raise PricingError(f"{what} must be below {limit:,}.")
    return number


def whole_number(value, what: str) -> int:
    """A count such as a tier bound: a whole number, never a fraction silently cut (5.7 is not
    5), a boolean, NaN or Infinity. JSON may give 5 or 5.0 or "5"."""
    if isinstance(value, bool):
        raise PricingError(f"{what} must be a whole number, not {value!r}.")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if math.isfinite(value) and value.is_integer():
            return int(value)
        raise PricingError(f"{what} must be a whole number, not {value!r}.")
    try:
        number = Decimal(str(value).strip())
    except decimal.InvalidOperation:
        raise PricingError(f"{what} must be a whole number, not {value!r}.") from None
    if not number.is_finite() or number != number.to_integral_value():
        raise PricingError(f"{what} must be a whole number, not {value!r}.")
    return int(number)


def parse_tiers(raw: object) -> list[Tier]:
    """Tiers from the JSON stored on a plan: [{"up_to": 5, "unit_price": "5"}, ...].

    Bounds are positive whole numbers that increase, only the last tier is open-ended, and
    prices and flat fees are finite and not negative (plan_number)."""
    if not isinstance(raw, list) or not all(isinstance(t, dict) for t in raw):
        raise PricingError("Tiers must be a list of objects.")
    if not raw:
        raise PricingError("A tiered plan needs at least one tier.")
    tiers = []
    previous = 0
    for i, item in enumerate(raw):
        label = f"Tier {i + 1}"
        up_to = item.get("up_to")
        if up_to is not None:
            up_to = whole_number(up_to, f"{label} up_to")
            if up_to <= 0 or up_to >= TIER_BOUND_LIMIT:
                raise PricingError(
                    f"{label} up_to must be a whole number from 1 to {TIER_BOUND_LIMIT - 1:,}."
                )
            if up_to <= previous:
                raise PricingError("Tier bounds must increase.")
            previous = up_to
        elif i != len(raw) - 1:
            raise PricingError("Only the last tier may be open-ended.")
        tiers.append(
            Tier(
                up_to=up_to,
                unit_price=plan_number(item.get("unit_price", "0"), f"{label} unit_price"),
                flat_fee=plan_number(item.get("flat_fee", "0"), f"{label} flat_fee"),
            )
        )
    if tiers[-1].up_to is not None:
        raise PricingError("The last tier must be open-ended (up_to empty).")
    return tiers


# The plan fields that are amounts or prices: never negative, never NaN or Infinity.
PLAN_NUMBER_FIELDS = (
    "markup_percent",
    "per_request_price",
    "monthly_fee",
    "overage_unit_price",
    "package_price",
    "minimum_commitment",
)
PLAN_COUNT_FIELDS = ("included_units", "package_size")


def plan_problems(plan) -> dict[str, str]:
    """The one rule for a plan's terms, used by the plan form, PricingPlan.save(), plan
    assignment and the invoice run: {field: what is wrong}, empty when the plan can be applied.
    `plan` is anything with the plan's attributes (a PricingPlan, rating.PlanTerms, a form's
    cleaned data); a missing or None value is not checked (minimum_commitment is optional)."""
    problems = {}
    for name in PLAN_NUMBER_FIELDS:
        value = getattr(plan, name, None)
        if value is None:
            continue
        try:
            number = to_decimal(value)
            if not number.is_finite():
                raise PricingError("Must be a finite number.")
            if number < 0:
                raise PricingError("Must not be negative.")
        except PricingError as exc:
            problems[name] = str(exc)
    for name in PLAN_COUNT_FIELDS:
        value = getattr(plan, name, None)
        if value is None:
            continue
        try:
            if whole_number(value, "Must be a whole number") < 0:
                problems[name] = "Must not be negative."
        except PricingError:
            problems[name] = "Must be a whole number."
    kind = getattr(plan, "kind", None)
    positive_size = (getattr(plan, "package_size", None) or 0) > 0
    if kind == "package" and "package_size" not in problems and not positive_size:
        problems["package_size"] = "A package plan needs a positive size."
    if kind == "tiered":
        try:
            parse_tiers(getattr(plan, "tiers", None))
        except PricingError as exc:
            problems["tiers"] = str(exc)
    return problems


def plan_problems_text(problems: dict[str, str]) -> str:
    return "; ".join(f"{name}: {message}" for name, message in problems.items())


# The terms each plan kind uses (rating.rate_usage reads no other): the plan form shows and
# takes only these, besides the ones every plan has (name, code, minimum commitment, ...).
PLAN_KIND_FIELDS = {
    "per_token": ("markup_percent",),
    "per_request": ("per_request_price",),
    "tiered": ("metric", "tier_mode", "tiers"),
    "subscription": ("metric", "monthly_fee", "included_units", "overage_unit_price"),
    "package": ("metric", "package_size", "package_price"),
}
PLAN_KIND_FIELD_NAMES = tuple(
    dict.fromkeys(n for names in PLAN_KIND_FIELDS.values() for n in names)
)


@dataclass(frozen=True)
class TierCharge:
    tier_index: int
    quantity: int
    unit_price: Decimal
    amount: Decimal


def graduated_charge(quantity: int, tiers: list[Tier]) -> list[TierCharge]:
    """Each tier prices only the units that fall inside it (Stripe: tiers_mode=graduated)."""
    charges = []
    lower = 0
    for i, tier in enumerate(tiers):
        if quantity <= lower:
            break
        upper = quantity if tier.up_to is None else min(quantity, tier.up_to)
        units = upper - lower
        charges.append(
            TierCharge(i, units, tier.unit_price, units * tier.unit_price + tier.flat_fee)
        )
        lower = upper
    return charges


def volume_charge(quantity: int, tiers: list[Tier]) -> TierCharge | None:
    """All units at the price of the tier the total falls in (Stripe: tiers_mode=volume)."""
    if quantity <= 0:
        return None
    for i, tier in enumerate(tiers):
        if tier.up_to is None or quantity <= tier.up_to:
            return TierCharge(
                i, quantity, tier.unit_price, quantity * tier.unit_price + tier.flat_fee
            )
    raise PricingError("No tier covers this quantity.")  # unreachable with parse_tiers


def per_request_charge(requests: int, unit_price: Decimal) -> Decimal:
    return requests * to_decimal(unit_price)


@dataclass(frozen=True)
class TokenPrice:
    """Prices per 1,000 tokens; cache prices of None mean "charged as input tokens"."""

    input_per_1k: Decimal
    output_per_1k: Decimal
    cache_read_per_1k: Decimal | None = None
    cache_write_per_1k: Decimal | None = None
    per_request: Decimal = Decimal(0)


@dataclass(frozen=True)
class TokenUsage:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )


def token_cost(
    usage: TokenUsage, price: TokenPrice, markup_percent: Decimal = Decimal(0)
) -> Decimal:
    """Price-book cost of the usage, times (1 + markup %). Unrounded."""
    cache_read = price.cache_read_per_1k
    cache_write = price.cache_write_per_1k
    cost = (
        usage.input_tokens * price.input_per_1k
        + usage.output_tokens * price.output_per_1k
        + usage.cache_read_tokens * (price.input_per_1k if cache_read is None else cache_read)
        + usage.cache_write_tokens * (price.input_per_1k if cache_write is None else cache_write)
    ) / THOUSAND + usage.requests * price.per_request
    return cost * (1 + to_decimal(markup_percent) / 100)


def package_charge(quantity: int, package_size: int, package_price: Decimal) -> tuple[int, Decimal]:
    """Units sold in whole packages; a started package is a full one. Returns (packages, amount)."""
    if package_size <= 0:
        raise PricingError("Package size must be positive.")
    packages = math.ceil(quantity / package_size) if quantity > 0 else 0
    return packages, packages * to_decimal(package_price)


@dataclass(frozen=True)
class SubscriptionCharge:
    fee: Decimal
    overage_quantity: int
    overage_amount: Decimal


def subscription_charge(
    quantity: int, *, monthly_fee: Decimal, included: int, overage_unit_price: Decimal
) -> SubscriptionCharge:
    """A fixed fee covering `included` units; the units beyond it at the overage price."""
    overage = max(0, quantity - included)
    return SubscriptionCharge(
        fee=to_decimal(monthly_fee),
        overage_quantity=overage,
        overage_amount=overage * to_decimal(overage_unit_price),
    )


def minimum_commitment_topup(subtotal: Decimal, minimum: Decimal | None) -> Decimal:
    """What to add so the period is billed at least the committed minimum."""
    if not minimum:
        return Decimal(0)
    return max(Decimal(0), to_decimal(minimum) - subtotal)


def tax_amount(taxable: Decimal, rate: Decimal) -> Decimal:
    return round_money(max(Decimal(0), taxable) * to_decimal(rate))


def share(total: Decimal, part: Decimal, whole: Decimal) -> Decimal:
    """`total` x part / whole, rounded once to cents (a credit note's share of an invoice's tax
    or credits, from the amount credited so far). part == whole gives `total` exactly."""
    if whole <= 0:
        return Decimal("0.00")
    if part >= whole:
        return to_decimal(total)
    return round_money(to_decimal(total) * part / whole)


def column_overflow(value: Decimal, *, max_digits: int, decimal_places: int) -> bool:
    """Whether `value` is too large for a DECIMAL(max_digits, decimal_places) column.
    PostgreSQL refuses such a value with "numeric field overflow"; SQLite stores it and Django
    then cannot read it back, so amounts are checked before they are written."""
    if not value.is_finite():
        return True
    try:
        rounded = value.quantize(Decimal(1).scaleb(-decimal_places), rounding=rounding_mode())
    except decimal.InvalidOperation:
        return True
    return abs(rounded) >= Decimal(10) ** (max_digits - decimal_places)
