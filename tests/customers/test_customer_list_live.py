"""The staff customer list: this month's spend, tokens and shares of quota and budget from the
live MONTH# counters (one batched read of the page's customers), and the search box."""

import re
import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from customers.models import Customer
from proxy import contract
from usage import counters
from usage.services import utc_today


def _month_item(dynamodb, customer, **values):
    item = {
        "pk": {"S": counters.customer_pk(customer.pk)},
        "sk": {"S": counters.month_sk(utc_today())},
    }
    item.update({k: {"N": str(v)} for k, v in values.items()})
    dynamodb.put_item(TableName=counters.counters_table_name(), Item=item)


def _row(html, name):
    """The table row of the customer named `name`."""
    for row in re.findall(r"<tr>.*?</tr>", html, flags=re.S):
        if f">{name}</a>" in row:
            return row
    raise AssertionError(f"no row for {name}")


@pytest.fixture
def counted(aws, customer, other_customer):
    customer.monthly_token_quota, customer.monthly_budget = 2_000_000, Decimal("50.00")
    customer.save()
    dynamodb = aws.client("dynamodb")
    _month_item(
        dynamodb,
        customer,
        requests=30,
        input_tokens=400_000,
        output_tokens=100_000,
        **{contract.QUOTA_TOKENS: 500_000, contract.SPEND_MICROS: 12_500_000},
    )
    _month_item(dynamodb, other_customer, requests=1, input_tokens=7, output_tokens=0)
    return customer


def test_list_shows_each_customers_spend_tokens_and_shares(staff_client, counted, other_customer):
    html = staff_client.get(reverse("staff:customer_list")).content.decode()
    row = _row(html, counted.name)
    assert "12.50 USD" in row  # 12,500,000 micro-units
    assert "500,000" in row  # tokens this month
    assert "25 %" in row  # of the 2,000,000-token quota
    assert "2,000,000" in row  # the quota itself, with separators
    assert "Active" in row
    other = _row(html, other_customer.name)
    assert "0.00 USD" in other and ">7<" in other and "12.50" not in other
    assert "No monthly token quota" in other and "No monthly budget" in other


def test_budget_share(staff_client, counted):
    html = staff_client.get(reverse("staff:customer_list")).content.decode()
    assert "25 %" in _row(html, counted.name)  # 12.50 of 50.00 as well


def test_counters_are_read_once_for_the_page(staff_client, counted, monkeypatch):
    calls = []
    real = counters.read_counters
    monkeypatch.setattr(
        counters, "read_counters", lambda keys, **kw: calls.append(list(keys)) or real(keys, **kw)
    )
    staff_client.get(reverse("staff:customer_list"))
    assert len(calls) == 1
    assert {pk for pk, _ in calls[0]} == {
        counters.customer_pk(c.pk) for c in Customer.objects.all()
    }


def test_unreadable_counters_leave_the_list(staff_client, counted, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("DynamoDB is away")

    monkeypatch.setattr(counters, "read_counters", broken)
    response = staff_client.get(reverse("staff:customer_list"))
    assert response.status_code == 200
    assert "Real-time counters are unavailable" in response.content.decode()


def test_search_by_part_of_the_name_in_any_case(staff_client, customer, other_customer, aws):
    html = staff_client.get(reverse("staff:customer_list"), {"q": "LOBEX res"}).content.decode()
    assert other_customer.name in html and customer.name not in html


def test_search_by_exact_id(staff_client, customer, other_customer, aws):
    html = staff_client.get(reverse("staff:customer_list"), {"q": str(customer.pk)}).content
    assert customer.name in html.decode() and other_customer.name not in html.decode()
    html = staff_client.get(reverse("staff:customer_list"), {"q": str(uuid.uuid4())}).content
    assert "No customers match" in html.decode()


@pytest.mark.parametrize(
    "value",
    ["a\x00b", "\x01\x02\x1b[31m", "x" * 100_000, "%", "_", "' OR 1=1 --", "\u202e", "😀" * 300],
)
def test_hostile_search_values_never_fail(staff_client, customer, aws, value):
    response = staff_client.get(reverse("staff:customer_list"), {"q": value})
    assert response.status_code == 200
