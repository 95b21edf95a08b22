from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from billing.models import ModelPrice, PricingPlan
from customers.models import Customer
from usage.models import UsageDaily

OCTOBER = date(2026, 10, 1)
# The customers of these tests were created before the months they are billed for: the run
# makes no invoice for a month that ended before the customer existed.
ESTABLISHED = datetime(2025, 1, 1, tzinfo=UTC)


def established(*customers):
    """Date the customers' creation back to 2025 (the run bills months they existed in)."""
    Customer.objects.filter(pk__in=[c.pk for c in customers]).update(created_at=ESTABLISHED)
    for c in customers:
        c.created_at = ESTABLISHED
    return customers[0] if len(customers) == 1 else list(customers)


@pytest.fixture
def customer(customer):
    return established(customer)


@pytest.fixture
def other_customer(other_customer):
    return established(other_customer)


@pytest.fixture
def price_book(db):
    """A test price book, apart from the migrated one: one model whose price halves mid-month."""
    ModelPrice.objects.create(
        model_id="test.model-a",
        display_name="Model A",
        effective_from=date(2026, 1, 1),
        input_per_1k=Decimal("0.003"),
        output_per_1k=Decimal("0.015"),
    )
    ModelPrice.objects.create(
        model_id="test.model-a",
        display_name="Model A",
        effective_from=date(2026, 10, 16),
        input_per_1k=Decimal("0.0015"),
        output_per_1k=Decimal("0.0075"),
    )
    ModelPrice.objects.create(
        model_id="test.model-b",
        display_name="Model B",
        effective_from=date(2026, 1, 1),
        input_per_1k=Decimal("0.00025"),
        output_per_1k=Decimal("0.00125"),
        per_request=Decimal("0.001"),
    )


@pytest.fixture
def add_usage(db):
    def add(
        customer, day, model_id="test.model-a", requests=1, input_tokens=0, output_tokens=0, **kw
    ):
        return UsageDaily.objects.create(
            customer=customer,
            day=day,
            model_id=model_id,
            requests=requests,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            **kw,
        )

    return add


@pytest.fixture
def make_plan(db):
    def make(**fields):
        fields.setdefault("code", f"plan-{PricingPlan.objects.count() + 1}")
        fields.setdefault("name", fields["code"])
        return PricingPlan.objects.create(**fields)

    return make


TWO_TIERS = [{"up_to": 5, "unit_price": "1"}, {"unit_price": "1"}]


def written_around_the_rule(plan, **fields):
    """Give a plan terms that PricingPlan.save() refuses, with a plain UPDATE: a plan stored
    before the plan rule existed, or changed by SQL."""
    PricingPlan.objects.filter(pk=plan.pk).update(**fields)
    plan.refresh_from_db()
    return plan
