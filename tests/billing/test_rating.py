"""Plans applied to a month of usage: the lines an invoice gets, worked by hand."""

from datetime import date
from decimal import Decimal as D

from billing.pricing import TokenPrice, TokenUsage
from billing.rating import PlanTerms, UsageRow, rate_usage

A_OLD = ("a", date(2026, 1, 1))
A_NEW = ("a", date(2026, 10, 16))
PRICES = {
    A_OLD: TokenPrice(D("0.003"), D("0.015")),
    A_NEW: TokenPrice(D("0.0015"), D("0.0075")),
    ("b", date(2026, 1, 1)): TokenPrice(D("0.00025"), D("0.00125"), per_request=D("0.001")),
}
ROWS = [
    UsageRow("a", A_OLD[1], TokenUsage(requests=100, input_tokens=100_000, output_tokens=10_000)),
    UsageRow("a", A_NEW[1], TokenUsage(requests=300, input_tokens=100_000, output_tokens=10_000)),
    UsageRow(
        "b", date(2026, 1, 1), TokenUsage(requests=600, input_tokens=40_000, output_tokens=4_000)
    ),
]


def amounts(lines):
    return [(line.kind, line.amount) for line in lines]


def test_per_token_prices_each_day_at_the_price_in_force_with_markup():
    lines = rate_usage(
        ROWS, terms=PlanTerms(markup_percent=D(10)), prices=PRICES, names={"a": "Model A"}
    )
    # a before the change: 100 x 0.003 + 10 x 0.015 = 0.45, x1.1 = 0.495 -> 0.50 (half-up)
    # a after:             100 x 0.0015 + 10 x 0.0075 = 0.225, x1.1 = 0.2475 -> 0.25
    # b: 40 x 0.00025 + 4 x 0.00125 + 600 x 0.001 = 0.615, x1.1 = 0.6765 -> 0.68
    assert amounts(lines) == [("usage", D("0.50")), ("usage", D("0.25")), ("usage", D("0.68"))]
    assert "price from 2026-10-16" in lines[1].description


def test_per_request_plan_one_line_per_model():
    terms = PlanTerms(kind="per_request", per_request_price=D("0.002"))
    lines = rate_usage(ROWS, terms=terms, prices=PRICES)
    # a: 400 requests x 0.002 = 0.80; b: 600 x 0.002 = 1.20
    assert [(line.model_id, line.quantity, line.amount) for line in lines] == [
        ("a", D(400), D("0.80")),
        ("b", D(600), D("1.20")),
    ]


def test_tiered_graduated_and_volume_on_requests():
    tiers = [
        {"up_to": 500, "unit_price": "0.01"},
        {"up_to": 900, "unit_price": "0.008"},
        {"unit_price": "0.005"},
    ]
    graduated = rate_usage(ROWS, terms=PlanTerms(kind="tiered", tiers=tiers), prices=PRICES)
    # 1,000 requests: 500 x 0.01 + 400 x 0.008 + 100 x 0.005 = 5 + 3.20 + 0.50 = 8.70
    assert amounts(graduated) == [("tier", D("5.00")), ("tier", D("3.20")), ("tier", D("0.50"))]
    volume = rate_usage(
        ROWS, terms=PlanTerms(kind="tiered", tier_mode="volume", tiers=tiers), prices=PRICES
    )
    # all 1,000 at the third tier: 5.00
    assert amounts(volume) == [("tier", D("5.00"))]


def test_tiered_on_thousands_of_tokens():
    # tokens: 110,000 + 110,000 + 44,000 = 264,000 -> 264 thousand
    tiers = [{"up_to": 100, "unit_price": "0.02"}, {"unit_price": "0.01"}]
    lines = rate_usage(
        ROWS, terms=PlanTerms(kind="tiered", metric="kilotokens", tiers=tiers), prices=PRICES
    )
    assert amounts(lines) == [("tier", D("2.00")), ("tier", D("1.64"))]


def test_subscription_with_overage():
    terms = PlanTerms(
        kind="subscription",
        name="Team",
        monthly_fee=D("49"),
        included_units=800,
        overage_unit_price=D("0.004"),
    )
    lines = rate_usage(ROWS, terms=terms, prices=PRICES)
    # 1,000 requests, 800 included: fee 49 + 200 x 0.004 = 0.80
    assert amounts(lines) == [("subscription", D("49.00")), ("overage", D("0.80"))]


def test_package():
    terms = PlanTerms(kind="package", package_size=300, package_price=D("2.50"))
    # 1,000 requests -> 4 packages of 300 -> 10.00
    assert amounts(rate_usage(ROWS, terms=terms, prices=PRICES)) == [("package", D("10.00"))]


def test_minimum_commitment_tops_up():
    terms = PlanTerms(kind="per_request", per_request_price=D("0.002"), minimum_commitment=D("25"))
    lines = rate_usage(ROWS, terms=terms, prices=PRICES)
    # usage 2.00, minimum 25 -> top-up 23.00
    assert amounts(lines)[-1] == ("minimum", D("23.00"))
    assert sum(line.amount for line in lines) == D("25.00")


def test_unknown_model_is_flagged_not_crashing():
    rows = [UsageRow("mystery", None, TokenUsage(requests=1, input_tokens=1000))]
    lines = rate_usage(rows, terms=PlanTerms(), prices=PRICES)
    assert lines[0].amount == D("0.00")
    assert "no price in the price book" in lines[0].description


def test_no_usage_no_lines():
    assert rate_usage([], terms=PlanTerms(), prices=PRICES) == []
