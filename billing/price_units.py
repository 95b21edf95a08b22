"""Prices per 1M tokens, as Bedrock's pricing page and the staff price book page show them.

The price book keeps prices per 1,000 tokens with PRICE_PLACES (9) decimal places. The
conversion is a shift of the decimal point, exact both ways; a price that would need more places
per 1,000 tokens is refused rather than rounded (0.25 per 1M is 0.00025 per 1K; 0.0000001 per
1M would be 0.0000000001 per 1K and is refused).
"""

import decimal
from datetime import date
from decimal import Decimal
from typing import overload

from .pricing import PRICE_LIMIT, PRICE_PLACES, THOUSAND, PricingError, to_decimal

PER_MILLION_PLACES = PRICE_PLACES - 3


def per_million_to_per_1k(value, what: str) -> Decimal:
    """A price per 1M tokens as the book keeps it, per 1,000 tokens: 0.25 -> 0.00025.
    Finite, not negative, below the column's limit, and exact in PRICE_PLACES places."""
    if isinstance(value, float | bool):
        raise PricingError(f'{what} must be written as text, such as "0.25", not {value!r}.')
    try:
        number = to_decimal(value)
    except PricingError:
        raise PricingError(f"{what} must be a number, not {value!r}.") from None
    if not number.is_finite():
        raise PricingError(f"{what} must be a finite number.")
    if number < 0:
        raise PricingError(f"{what} must not be negative.")
    if number >= PRICE_LIMIT * THOUSAND:
        raise PricingError(f"{what} must be below {PRICE_LIMIT * THOUSAND:,} per 1M tokens.")
    per_1k = number.scaleb(-3)
    if per_1k != per_1k.quantize(Decimal(1).scaleb(-PRICE_PLACES), rounding=decimal.ROUND_DOWN):
        raise PricingError(
            f"{what} {number:f} per 1M tokens is {per_1k:f} per 1,000 tokens, more than the"
            f" {PRICE_PLACES} decimal places the price book keeps: use at most"
            f" {PER_MILLION_PLACES} decimals per 1M tokens."
        )
    return per_1k


@overload
def per_1k_to_per_million(value: Decimal) -> Decimal: ...


@overload
def per_1k_to_per_million(value: None) -> None: ...


@overload
def per_1k_to_per_million(value: Decimal | None) -> Decimal | None: ...


def per_1k_to_per_million(value: Decimal | None) -> Decimal | None:
    """A price of the book per 1M tokens (exact: 0.00025 -> 0.25); None stays None."""
    if value is None:
        return None
    return to_decimal(value).scaleb(3)


def price_text(value: Decimal | None) -> str:
    """A price as people read it, without trailing zeros or an exponent: "0.25", "3,000"."""
    if value is None:
        return ""
    number = to_decimal(value)
    if not number.is_finite():
        return str(number)
    number = number.normalize()
    if number == 0:
        return "0"
    return f"{number:,f}"


def price_start_problem(day: date, today: date) -> str | None:
    """Why a price cannot start on `day` (None: it can). A change takes effect today or later:
    the usage of past days is priced already, on drafts and invoices."""
    if day < today:
        return (
            f"{day:%Y-%m-%d} is in the past: a price change takes effect today"
            f" ({today:%Y-%m-%d}, UTC) or later, since the usage of past days is already priced."
        )
    return None
