import datetime as dt
from decimal import Decimal

import pytest

from billing.models import ModelPrice
from customers.models import Customer
from usage.models import UsageDaily
from usage.services import utc_today

MODELS = ["test.model-a", "test.model-b", "us.test.model-a"]
APPS = ["chatbot", "search", ""]
CENTERS = ["sales", "support", ""]


@pytest.fixture
def prices(db):
    ModelPrice.objects.create(
        model_id="test.model-a",
        display_name="Model A",
        effective_from=dt.date(2020, 1, 1),
        input_per_1k=Decimal("0.003"),
        output_per_1k=Decimal("0.015"),
    )
    ModelPrice.objects.create(
        model_id="test.model-b",
        display_name="Model B",
        effective_from=dt.date(2020, 1, 1),
        input_per_1k=Decimal("0.00025"),
        output_per_1k=Decimal("0.00125"),
    )


@pytest.fixture
def make_usage(db):
    """Usage rows for `customers` over the last `days` days, every model x app x cost center."""

    def make(customers, *, days=3, extra_apps=0):
        today = utc_today()
        apps = APPS + [f"app-{n}" for n in range(extra_apps)]
        rows = []
        for c_index, customer in enumerate(customers):
            for d in range(1, days + 1):
                day = today - dt.timedelta(days=d)
                for m_index, model in enumerate(MODELS):
                    for a_index, app in enumerate(apps):
                        rows.append(
                            UsageDaily(
                                customer=customer,
                                day=day,
                                model_id=model,
                                application_id=app,
                                cost_center=CENTERS[a_index % len(CENTERS)],
                                environment="production" if a_index % 2 else "staging",
                                requests=10 + c_index,
                                input_tokens=1000 * (m_index + 1),
                                output_tokens=500 * (a_index + 1),
                            )
                        )
        UsageDaily.objects.bulk_create(rows)
        return len(rows)

    return make


@pytest.fixture
def many_customers(db):
    def make(n):
        return [
            Customer.objects.create(
                name=f"Customer {i:03d}",
                contact_email=f"c{i}@example.com",
                monthly_token_quota=1000 if i % 2 else None,
                daily_request_limit=10 if i % 3 == 0 else None,
            )
            for i in range(n)
        ]

    return make
