"""Monthly budgets: amounts of the portal's currency (BILLING_CURRENCY) as the portal keeps them
(Decimal, whole cents) and as the proxy counts them (integer micro-units, contract.MICROS_PER_UNIT
per unit). Conversions are exact Decimal arithmetic; no float anywhere."""

from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings

from proxy.contract import MICROS_PER_UNIT

CENT = Decimal("0.01")
# The most a monthly budget may be: a billion units of the currency (10**15 micro-units, the
# proxy's largest money hold, far inside DynamoDB's numbers and a signed 64-bit column).
BUDGET_MAX = Decimal(1_000_000_000)


def currency() -> str:
    return str(settings.BILLING_CURRENCY).strip().upper()


def budget_micros(amount: Decimal | None) -> int | None:
    """A budget in whole micro-units (12.34 -> 12340000); None stays None (no budget)."""
    if amount is None:
        return None
    micros = Decimal(amount) * MICROS_PER_UNIT
    if micros != micros.to_integral_value():  # budgets are whole cents: never the case
        raise ValueError(f"{amount} is not a whole number of micro-units")
    return int(micros)


def amount_from_micros(micros: int) -> Decimal:
    """Micro-units as an exact amount of the currency (12340000 -> Decimal("12.34"))."""
    return Decimal(int(micros)).scaleb(-6)


def to_cents(amount: Decimal) -> Decimal:
    """An amount rounded to the cent, half up (what pages and emails show)."""
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def money_text(amount: Decimal | None, *, with_currency: bool = True) -> str:
    """An amount as people read it: "1,234.50 USD" (to the cent, half up)."""
    if amount is None:
        return ""
    text = f"{to_cents(amount):,}"
    return f"{text} {currency()}" if with_currency else text


def micros_text(micros: int) -> str:
    """Micro-units as people read them: 40000000 -> "40.00 USD"."""
    return money_text(amount_from_micros(micros))


def percent_used(spent_micros: int, budget_micros: int | None) -> int | None:
    """Whole percent of a budget (in micro-units) spent, rounded down; None without a budget.
    Integer arithmetic: 39_999_999 of 50_000_000 is 79 %, not 80 %."""
    if not budget_micros:
        return None
    return 100 * max(int(spent_micros), 0) // int(budget_micros)
