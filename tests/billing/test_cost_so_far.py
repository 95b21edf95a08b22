"""Cost so far this month and the run-rate forecast, by hand."""

from datetime import date
from decimal import Decimal as D

from billing.selectors import cost_so_far, cost_so_far_all
from billing.services import plan_assign
from customers.models import Customer

TODAY = date(2026, 11, 11)  # usage covers Nov 1-10: 10 of 30 days


def test_run_rate_forecast_per_token(customer, price_book, add_usage):
    # Model B: 40 x 0.00025 + 4 x 0.00125 + 600 x 0.001 = 0.615 per day-row
    for day in (1, 5):
        add_usage(
            customer,
            date(2026, 11, day),
            model_id="test.model-b",
            requests=600,
            input_tokens=40_000,
            output_tokens=4_000,
        )
    add_usage(customer, date(2026, 11, 11), model_id="test.model-b", requests=999_999)  # today
    cost = cost_so_far(customer.pk, today=TODAY)
    assert (cost["days_covered"], cost["days_in_month"]) == (10, 30)
    assert cost["so_far"] == D("1.23")
    # x3: 240 x 0.00025 + 24 x 0.00125 + 3,600 x 0.001 = 0.06 + 0.03 + 3.60 = 3.69
    assert cost["forecast"] == D("3.69")


def test_forecast_reprices_tiers_and_allowance(customer, price_book, add_usage, make_plan):
    plan = make_plan(
        kind="subscription",
        monthly_fee=D("10"),
        included_units=1000,
        overage_unit_price=D("0.01"),
        minimum_commitment=D("50"),
    )
    plan_assign(customer=customer, plan=plan, effective_from=date(2026, 11, 1))
    add_usage(customer, date(2026, 11, 2), requests=500)
    cost = cost_so_far(customer.pk, today=TODAY)
    # So far: fee 10, 500 of 1,000 included; the minimum is not counted yet.
    assert cost["so_far"] == D("10.00")
    # Month: 1,500 requests -> fee 10 + 500 x 0.01 = 15, topped up to the 50 minimum.
    assert cost["forecast"] == D("50.00")


def test_first_of_month_has_no_forecast(customer, price_book):
    cost = cost_so_far(customer.pk, today=date(2026, 11, 1))
    assert cost["so_far"] == 0 and cost["forecast"] is None


def test_staff_total_sums_customers(customer, other_customer, price_book, add_usage):
    add_usage(customer, date(2026, 11, 2), model_id="test.model-b", requests=1000)
    add_usage(other_customer, date(2026, 11, 3), model_id="test.model-b", requests=2000)
    total = cost_so_far_all(Customer.objects.all(), today=TODAY)
    assert total["so_far"] == D("3.00")
    assert total["forecast"] == D("9.00")
