"""Worked examples for every charge model, by hand, in Decimal."""

from decimal import Decimal as D

import pytest

from billing import pricing
from billing.pricing import TokenPrice, TokenUsage

# Stripe's documented tiers (docs.stripe.com/subscriptions/pricing-models/tiered-pricing,
# "Typographic" fonts example): 1-5 at 7 USD, 6-10 at 6.50 USD, 11+ at 6 USD.
STRIPE_TIERS = pricing.parse_tiers(
    [{"up_to": 5, "unit_price": "7"}, {"up_to": 10, "unit_price": "6.5"}, {"unit_price": "6"}]
)
# The variant of the same shape: 1-5 at $5, 6-10 at $4, 11+ at $3.
SIMPLE_TIERS = pricing.parse_tiers(
    [{"up_to": 5, "unit_price": "5"}, {"up_to": 10, "unit_price": "4"}, {"unit_price": "3"}]
)


def total(charges):
    return sum((c.amount for c in charges), D(0))


@pytest.mark.parametrize(
    ("quantity", "volume"),
    # Stripe's own table for volume pricing: 1 -> 7, 5 -> 35, 6 -> 39, 20 -> 120, 25 -> 150.
    [(1, D("7")), (5, D("35")), (6, D("39")), (20, D("120")), (25, D("150"))],
)
def test_volume_matches_stripes_documented_table(quantity, volume):
    assert pricing.volume_charge(quantity, STRIPE_TIERS).amount == volume


def test_graduated_vs_volume_on_stripes_tiers():
    # 12 fonts graduated: 5x7 + 5x6.50 + 2x6 = 35 + 32.50 + 12 = 79.50; volume: 12x6 = 72.
    assert total(pricing.graduated_charge(12, STRIPE_TIERS)) == D("79.50")
    assert pricing.volume_charge(12, STRIPE_TIERS).amount == D("72")
    # 5 fonts: the same under both modes (35).
    assert total(pricing.graduated_charge(5, STRIPE_TIERS)) == D("35")


def test_graduated_vs_volume_simple_tiers():
    charges = pricing.graduated_charge(12, SIMPLE_TIERS)
    assert [(c.quantity, c.amount) for c in charges] == [(5, D(25)), (5, D(20)), (2, D(6))]
    assert total(charges) == D("51")
    assert pricing.volume_charge(12, SIMPLE_TIERS).amount == D("36")


def test_tier_flat_fee_and_zero_quantity():
    tiers = pricing.parse_tiers(
        [{"up_to": 10, "unit_price": "0", "flat_fee": "20"}, {"unit_price": "1"}]
    )
    assert total(pricing.graduated_charge(15, tiers)) == D("25")
    assert pricing.graduated_charge(0, tiers) == []
    assert pricing.volume_charge(0, tiers) is None


@pytest.mark.parametrize(
    "raw",
    [
        [],
        [{"up_to": 5, "unit_price": "1"}],
        [{"unit_price": "1"}, {"unit_price": "2"}],
        [{"up_to": 5, "unit_price": "1"}, {"up_to": 5, "unit_price": "1"}, {"unit_price": "1"}],
    ],
)
def test_bad_tiers_are_rejected(raw):
    with pytest.raises(pricing.PricingError):
        pricing.parse_tiers(raw)


def test_per_request():
    # 12,345 requests at $0.002 = $24.69
    assert pricing.round_money(pricing.per_request_charge(12345, D("0.002"))) == D("24.69")


def test_per_token_with_markup():
    # Claude 3 Haiku: 1,000,000 input x $0.00025/1K = $0.25; 200,000 output x $0.00125/1K = $0.25.
    # $0.50 + 20 % markup = $0.60.
    price = TokenPrice(D("0.00025"), D("0.00125"))
    usage = TokenUsage(requests=10, input_tokens=1_000_000, output_tokens=200_000)
    assert pricing.token_cost(usage, price) == D("0.5")
    assert pricing.round_money(pricing.token_cost(usage, price, D(20))) == D("0.60")


def test_cache_tokens_use_cache_prices_or_fall_back_to_input():
    usage = TokenUsage(cache_read_tokens=10_000, cache_write_tokens=1_000)
    with_cache = TokenPrice(D("0.003"), D("0.015"), D("0.0003"), D("0.00375"))
    # 10 x 0.0003 + 1 x 0.00375 = 0.00675
    assert pricing.token_cost(usage, with_cache) == D("0.00675")
    # No cache prices: charged as input, 11 x 0.003 = 0.033
    assert pricing.token_cost(usage, TokenPrice(D("0.003"), D("0.015"))) == D("0.033")


def test_package():
    # Packages of 1,000 requests at $5: 2,001 requests -> 3 packages -> $15.
    assert pricing.package_charge(2001, 1000, D("5")) == (3, D("15"))
    assert pricing.package_charge(2000, 1000, D("5")) == (2, D("10"))
    assert pricing.package_charge(0, 1000, D("5")) == (0, D("0"))
    with pytest.raises(pricing.PricingError):
        pricing.package_charge(10, 0, D("5"))


def test_subscription_with_allowance_and_overage():
    # $49/month includes 10,000 requests; 12,500 used -> 2,500 x $0.004 = $10 overage.
    charge = pricing.subscription_charge(
        12_500, monthly_fee=D("49"), included=10_000, overage_unit_price=D("0.004")
    )
    assert (charge.fee, charge.overage_quantity, charge.overage_amount) == (
        D(49),
        2500,
        D("10.000"),
    )
    under = pricing.subscription_charge(
        900, monthly_fee=D("49"), included=10_000, overage_unit_price=D("0.004")
    )
    assert under.overage_quantity == 0 and under.overage_amount == 0


def test_minimum_commitment():
    assert pricing.minimum_commitment_topup(D("60.00"), D("100")) == D("40.00")
    assert pricing.minimum_commitment_topup(D("160.00"), D("100")) == 0
    assert pricing.minimum_commitment_topup(D("60.00"), None) == 0


def test_rounding_is_half_up_by_default_and_configurable(settings):
    assert pricing.round_money(D("0.125")) == D("0.13")
    assert pricing.round_money(D("0.135")) == D("0.14")
    settings.BILLING_ROUNDING = "ROUND_HALF_EVEN"
    assert pricing.round_money(D("0.125")) == D("0.12")
    settings.BILLING_ROUNDING = "nonsense"
    with pytest.raises(pricing.PricingError):
        pricing.round_money(D("1"))


def test_floats_are_refused():
    with pytest.raises(pricing.PricingError):
        pricing.to_decimal(0.1)


def test_tax_is_rounded_once():
    assert pricing.tax_amount(D("10.05"), D("0.2")) == D("2.01")
    assert pricing.tax_amount(D("-5"), D("0.2")) == D("0.00")
