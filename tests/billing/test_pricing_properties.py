"""Properties of the pricing maths (billing/pricing.py) over generated plans and quantities,
beside the worked examples of test_pricing.py. Tiers are written as a plan stores them (JSON
with string prices) and go through parse_tiers, so only tiers the product accepts are tried."""

import decimal
from decimal import Decimal

import pytest
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from billing import pricing

# 150 examples per property (60 per rounding mode) keep the file to a few seconds.
FAST = settings(max_examples=150, deadline=None)

QUANTITIES = st.integers(min_value=0, max_value=10**9)
# Prices and fees as a plan may hold them: up to 9 decimal places, not negative.
PRICES = st.decimals(min_value=0, max_value=Decimal("1000"), places=9)
FEES = st.decimals(min_value=0, max_value=Decimal("10000"), places=2)


@st.composite
def raw_tiers(draw, *, no_cheaper_later=False):
    """1 to 5 tiers with increasing bounds, the last open-ended, as stored on a plan. With
    `no_cheaper_later`, no tier's unit price or flat fee is below the tier before it."""
    bounds = sorted(draw(st.sets(st.integers(1, 10**6), max_size=4)))
    prices = draw(st.lists(PRICES, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    fees = draw(st.lists(FEES, min_size=len(bounds) + 1, max_size=len(bounds) + 1))
    if no_cheaper_later:
        prices, fees = sorted(prices), sorted(fees)
    return [
        {"up_to": up_to, "unit_price": str(price), "flat_fee": str(fee)}
        for up_to, price, fee in zip([*bounds, None], prices, fees, strict=True)
    ]


TIERS = raw_tiers().map(pricing.parse_tiers)
NO_CHEAPER_LATER = raw_tiers(no_cheaper_later=True).map(pricing.parse_tiers)


def graduated_total(quantity, tiers) -> Decimal:
    return sum((c.amount for c in pricing.graduated_charge(quantity, tiers)), Decimal(0))


def volume_total(quantity, tiers) -> Decimal:
    charge = pricing.volume_charge(quantity, tiers)
    return Decimal(0) if charge is None else charge.amount


@FAST
@given(tiers=TIERS, quantity=QUANTITIES)
def test_graduated_charges_split_the_quantity_over_the_tiers_it_reaches(tiers, quantity):
    charges = pricing.graduated_charge(quantity, tiers)
    assert sum(c.quantity for c in charges) == quantity
    # The tiers reached, in order from the first, each filled before the next one starts.
    assert [c.tier_index for c in charges] == list(range(len(charges)))
    lower = 0
    for charge in charges:
        tier = tiers[charge.tier_index]
        width = None if tier.up_to is None else tier.up_to - lower
        assert charge.quantity > 0 and (width is None or charge.quantity <= width)
        if charge is not charges[-1]:
            assert charge.quantity == width
        assert charge.unit_price == tier.unit_price
        assert charge.amount == charge.quantity * tier.unit_price + tier.flat_fee
        lower = tier.up_to if tier.up_to is not None else lower
    # Exactly the tiers that start below the quantity are charged (a flat fee only once reached).
    starts = [0, *(t.up_to for t in tiers[:-1])]
    assert len(charges) == sum(1 for start in starts if start < quantity)


@FAST
@given(tiers=TIERS, quantity=QUANTITIES, more=st.integers(0, 10**6))
def test_graduated_amount_never_decreases_as_the_quantity_grows(tiers, quantity, more):
    assert graduated_total(quantity + more, tiers) >= graduated_total(quantity, tiers)


@FAST
@given(tiers=TIERS, quantity=st.integers(1, 10**9), more=st.integers(0, 10**6))
def test_volume_amount_never_decreases_within_a_tier(tiers, quantity, more):
    charge = pricing.volume_charge(quantity, tiers)
    tier = tiers[charge.tier_index]
    larger = quantity + more if tier.up_to is None else min(quantity + more, tier.up_to)
    assert pricing.volume_charge(larger, tiers).tier_index == charge.tier_index
    assert volume_total(larger, tiers) >= charge.amount


@FAST
@given(tiers=NO_CHEAPER_LATER, quantity=QUANTITIES, more=st.integers(0, 10**6))
def test_volume_amount_never_decreases_when_no_later_tier_is_cheaper(tiers, quantity, more):
    """Across a bound every unit moves to the new tier's price, so volume pricing may drop
    there (the test below); with no cheaper tier later, it never does."""
    assert volume_total(quantity + more, tiers) >= volume_total(quantity, tiers)


def test_volume_amount_can_drop_at_a_bound_when_a_later_tier_is_cheaper():
    tiers = pricing.parse_tiers([{"up_to": 10, "unit_price": "5"}, {"unit_price": "1"}])
    assert volume_total(10, tiers) == Decimal(50) and volume_total(11, tiers) == Decimal(11)


# Amounts as the pricing functions produce them: many decimal places, large and small.
AMOUNTS = st.decimals(
    min_value=Decimal("-1e12"), max_value=Decimal("1e12"), allow_nan=False, allow_infinity=False
)
ROUNDING_MODES = sorted(name for name in dir(decimal) if name.startswith("ROUND_"))


@pytest.mark.parametrize("mode", ROUNDING_MODES)
@settings(max_examples=60, deadline=None)
@given(amount=AMOUNTS)
def test_rounding_twice_changes_nothing(mode, amount):
    with override_settings(BILLING_ROUNDING=mode):
        once = pricing.round_money(amount)
        assert pricing.round_money(once) == once
        assert once.as_tuple().exponent == -2
        with decimal.localcontext() as exact:  # the difference itself, not rounded to 28 digits
            exact.prec = 200
            assert abs(once - amount) < pricing.CENT


@FAST
@given(tiers=TIERS, quantity=QUANTITIES, rate=st.decimals(0, 1, places=4))
def test_a_rounded_line_and_its_tax_are_already_in_cents(tiers, quantity, rate):
    line = pricing.round_money(graduated_total(quantity, tiers))
    assert pricing.round_money(line) == line
    tax = pricing.tax_amount(line, rate)
    assert pricing.round_money(tax) == tax
