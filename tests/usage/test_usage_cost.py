"""The usage page shows cost beside tokens, per model, application and cost center: each day's
usage at the price book's price that day (list price, as the invoice prices it before the
plan), in the currency, Decimal. The figures below are worked out by hand. The usage app never
imports billing: billing hands its pricing in (usage/costing.py)."""

import ast
import datetime as dt
from decimal import Decimal as D
from pathlib import Path

import pytest
from django.conf import settings
from django.urls import reverse

from billing.models import ModelPrice
from usage import costing
from usage.models import UsageDaily

pytestmark = pytest.mark.django_db

OCTOBER = {"start": "2026-10-01", "end": "2026-10-31"}


@pytest.fixture
def priced_usage(customer, other_customer):
    """Model A: $3 / $15 per 1M tokens (0.003 / 0.015 per 1K), halved from October 16.
    Model B: $0.25 / $1.25 per 1M and $0.001 a request; cache reads charged as input."""
    for effective_from, inp, out in (
        (dt.date(2026, 1, 1), "0.003", "0.015"),
        (dt.date(2026, 10, 16), "0.0015", "0.0075"),
    ):
        ModelPrice.objects.create(
            model_id="test.model-a",
            display_name="Model A",
            effective_from=effective_from,
            input_per_1k=D(inp),
            output_per_1k=D(out),
        )
    ModelPrice.objects.create(
        model_id="test.model-b",
        effective_from=dt.date(2026, 1, 1),
        input_per_1k=D("0.00025"),
        output_per_1k=D("0.00125"),
        per_request=D("0.001"),
    )

    def add(customer, day, model_id, application_id, cost_center, **counts):
        UsageDaily.objects.create(
            customer=customer,
            day=dt.date(2026, 10, day),
            model_id=model_id,
            application_id=application_id,
            cost_center=cost_center,
            **counts,
        )

    # Model A before the change: 100,000 x 0.003/1K + 20,000 x 0.015/1K = 0.30 + 0.30 = 0.60
    add(customer, 10, "test.model-a", "chat", "cc-1", requests=5, input_tokens=100_000,
        output_tokens=20_000)  # fmt: skip
    # Model A after it: 200,000 x 0.0015/1K + 40,000 x 0.0075/1K = 0.30 + 0.30 = 0.60
    add(customer, 20, "test.model-a", "chat", "cc-2", requests=5, input_tokens=200_000,
        output_tokens=40_000)  # fmt: skip
    # Model B: 1,000,000 x 0.00025/1K + 100,000 x 0.00125/1K + 40,000 cache read x 0.00025/1K
    #          + 10 requests x 0.001 = 0.25 + 0.125 + 0.01 + 0.01 = 0.395
    add(customer, 12, "test.model-b", "search", "cc-1", requests=10, input_tokens=1_000_000,
        output_tokens=100_000, cache_read_tokens=40_000)  # fmt: skip
    # No price in the book: counted apart, never priced at 0 silently.
    add(customer, 15, "test.unpriced", "chat", "cc-2", requests=1, input_tokens=5_000)
    # Another customer's usage is never on the page.
    add(other_customer, 12, "test.model-a", "globex", "cc-9", requests=1, input_tokens=10**9)


def _page(client, by):
    return client.get(reverse("customer:usage_overview"), {**OCTOBER, "by": by})


def _row(body: str, key: str) -> str:
    mono, model = f'<span class="mono">{key}</span>', f'title="{key}"'
    start = body.index(mono) if mono in body else body.index(model)
    return body[start : body.index("</tr>", start)]


def test_cost_per_model(customer_client, priced_usage, dynamodb):
    body = _page(customer_client, "model_id").content.decode()
    assert "1.20 USD" in _row(body, "test.model-a")  # 0.60 + 0.60
    assert "0.40 USD" in _row(body, "test.model-b")  # 0.395, rounded half up once
    unpriced = _row(body, "test.unpriced")
    assert "0.00 USD" in unpriced and "5,000 tokens without a price" in unpriced
    total = body[body.index("<tfoot>") : body.index("</tfoot>")]
    assert "1.60 USD" in total  # 1.20 + 0.40
    assert "list price" in body and "before the plan's discounts" in body
    assert "and tax" in body
    assert "globex" not in body


def test_cost_per_application(customer_client, priced_usage, dynamodb):
    body = _page(customer_client, "application_id").content.decode()
    chat = _row(body, "chat")
    assert "1.20 USD" in chat and "5,000 tokens without a price" in chat
    assert "0.40 USD" in _row(body, "search")


def test_cost_per_cost_center_is_rounded_once_per_row(customer_client, priced_usage, dynamodb):
    body = _page(customer_client, "cost_center").content.decode()
    # cc-1: 0.60 + 0.395 = 0.995 -> 1.00 (not 0.60 + 0.40 rounded apart, which happens to agree,
    # nor 0.99 from cutting); cc-2: 0.60 and the unpriced tokens.
    assert "1.00 USD" in _row(body, "cc-1")
    assert "0.60 USD" in _row(body, "cc-2")
    assert "1.60 USD" in body[body.index("<tfoot>") :]


def test_the_cost_is_the_invoices_list_price(customer, priced_usage):
    """The same usage rated for the invoice on a plan without markup comes to the same total."""
    from billing.rating import PlanTerms, rate_usage
    from billing.selectors import price_book, usage_cost_for_customer, usage_rows

    prices, dates, names = price_book()
    rows = usage_rows(
        dt.date(2026, 10, 1), dt.date(2026, 10, 31), customer_ids=[customer.pk], dates=dates
    )[customer.pk]
    lines = rate_usage(rows, terms=PlanTerms(), prices=prices, names=names)
    invoiced = sum(line.amount for line in lines)
    costs = usage_cost_for_customer(
        customer_id=customer.pk,
        start=dt.date(2026, 10, 1),
        end=dt.date(2026, 10, 31),
        by="model_id",
    )
    assert invoiced == costs["total"] == D("1.60")
    assert isinstance(costs["total"], D) and costs["currency"] == settings.BILLING_CURRENCY
    assert costs["rows"]["test.model-a"]["cost"] == D("1.20")
    assert costs["unpriced_tokens"] == 5_000


def test_staff_see_the_same_cost_on_the_customers_usage(staff_client, customer, priced_usage):
    url = reverse("staff:usage_customer", args=[customer.pk])
    body = staff_client.get(url, {**OCTOBER, "by": "model_id"}).content.decode()
    assert "1.20 USD" in body and "1.60 USD" in body


def test_without_pricing_the_page_shows_tokens_only(customer_client, priced_usage, dynamodb):
    registered = costing._cost_function
    costing.cost_function_register(None)
    try:
        body = _page(customer_client, "model_id").content.decode()
    finally:
        costing.cost_function_register(registered)
    assert "test.model-a" in body and "USD" not in body[body.index("<table") :]


def test_junk_grouping_falls_back_to_models(customer_client, priced_usage, dynamodb):
    for by in ("customer_id", "\x00", "model_id' OR 1=1", "day"):
        response = customer_client.get(reverse("customer:usage_overview"), {**OCTOBER, "by": by})
        assert response.status_code == 200
        assert "1.20 USD" in response.content.decode()


def test_usage_never_imports_billing():
    for path in (Path(settings.BASE_DIR) / "usage").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module or ""]
            assert not any(n == "billing" or n.startswith("billing.") for n in names), path
