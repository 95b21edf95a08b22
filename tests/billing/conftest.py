from datetime import date
from decimal import Decimal

import pytest

from billing.models import ModelPrice, PricingPlan
from usage.models import UsageDaily

OCTOBER = date(2026, 10, 1)


@pytest.fixture
def price_book(db):
    """A test price book, independent of the seeded one: one model whose price halves mid-month."""
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
