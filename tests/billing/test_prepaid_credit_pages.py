"""The live prepaid credit on the customer's and the staff billing pages, and in the API."""

from decimal import Decimal as D

import pytest
from botocore.exceptions import EndpointConnectionError
from django.urls import reverse
from rest_framework.test import APIClient

from billing.services import credit_grant
from core.aws import aws_client
from core.models import User
from proxy import contract

from .test_prepaid_credit import make_prepaid, proxy_spends

AVAILABLE = "Available credit now"


@pytest.fixture
def dynamodb(aws):
    return aws_client("dynamodb")


@pytest.fixture
def wallets(customer, other_customer, dynamodb, django_capture_on_commit_callbacks):
    """Both prepaid: Acme 30.00 with 12.345678 used at the proxy, Globex 80.00 unused."""
    make_prepaid(customer, other_customer)
    with django_capture_on_commit_callbacks(execute=True):
        credit_grant(customer=customer, amount=D("30.00"))
        credit_grant(customer=other_customer, amount=D("80.00"))
    proxy_spends(dynamodb, customer, 12_345_678, month="2026-11")
    return customer, other_customer


def unreachable(*args, **kwargs):
    raise EndpointConnectionError(endpoint_url="https://dynamodb.example")


def test_customer_page_shows_the_live_figure(customer_client, wallets):
    page = customer_client.get(reverse("customer:billing_overview")).content.decode()
    assert AVAILABLE in page
    assert "17.65 USD" in page  # 30.00 - 12.345678, rounded down
    assert "30.00 USD" in page  # the wallet
    assert "12.35 USD" in page  # usage not yet invoiced, rounded up
    assert "80.00 USD" not in page


def test_another_customers_page_shows_only_its_own_figure(client, wallets):
    _, globex = wallets
    user = User.objects.create_user("ops@globex.example", "pw-123456789", customer=globex)
    client.force_login(user)
    page = client.get(reverse("customer:billing_overview")).content.decode()
    assert AVAILABLE in page and "80.00 USD" in page
    assert "17.65 USD" not in page and "12.35 USD" not in page


def test_a_customer_that_is_not_prepaid_sees_no_live_figure(customer_client, customer, monkeypatch):
    monkeypatch.setattr(contract, "get_credit", unreachable)  # and it is never read
    page = customer_client.get(reverse("customer:billing_overview"))
    assert page.status_code == 200
    assert AVAILABLE not in page.content.decode()


def test_live_figure_unavailable_shows_the_wallet(customer_client, wallets, monkeypatch):
    monkeypatch.setattr(contract, "get_credit", unreachable)
    response = customer_client.get(reverse("customer:billing_overview"))
    assert response.status_code == 200
    page = response.content.decode()
    assert AVAILABLE in page and "live figure unavailable" in page
    assert "30.00 USD" in page
    assert "17.65" not in page


@pytest.mark.parametrize("value", ["1.5", str(10**30)])
def test_hostile_item_values_show_as_unavailable(customer_client, wallets, dynamodb, value):
    acme, _ = wallets
    dynamodb.update_item(
        TableName=contract.table_names().usage_counters,
        Key={
            contract.COUNTER_PK: {"S": contract.counter_pk(str(acme.pk))},
            contract.COUNTER_SK: {"S": contract.CREDIT_SK},
        },
        UpdateExpression="SET #g = :v",
        ExpressionAttributeNames={"#g": contract.CREDIT_GRANTED},
        ExpressionAttributeValues={":v": {"N": value}},
    )
    response = customer_client.get(reverse("customer:billing_overview"))
    assert response.status_code == 200
    assert "live figure unavailable" in response.content.decode()


def test_staff_page_of_a_prepaid_customer(staff_client, wallets, other_customer):
    acme, _ = wallets
    page = staff_client.get(reverse("staff:billing_customer", args=[acme.pk])).content.decode()
    assert AVAILABLE in page and "17.65 USD" in page and "12.35 USD" in page


def test_staff_page_of_a_customer_that_is_not_prepaid(staff_client, customer):
    page = staff_client.get(reverse("staff:billing_customer", args=[customer.pk]))
    assert page.status_code == 200
    assert AVAILABLE not in page.content.decode()


def test_staff_page_when_dynamodb_is_down(staff_client, wallets, monkeypatch):
    monkeypatch.setattr(contract, "get_credit", unreachable)
    acme, _ = wallets
    response = staff_client.get(reverse("staff:billing_customer", args=[acme.pk]))
    assert response.status_code == 200
    assert "live figure unavailable" in response.content.decode()


def test_api_credits_carry_the_live_figure(customer_user, wallets, monkeypatch):
    acme, globex = wallets
    api = APIClient()
    api.force_login(customer_user)
    body = api.get(f"/api/v1/customers/{acme.pk}/credits/").json()
    assert body["balance"] == "30.00"
    assert (body["prepaid"], body["live"]) == (True, True)
    assert body["available_now"] == "17.654322"
    assert body["usage_not_invoiced"] == "12.345678"
    assert api.get(f"/api/v1/customers/{globex.pk}/credits/").status_code == 404

    monkeypatch.setattr(contract, "get_credit", unreachable)
    body = api.get(f"/api/v1/customers/{acme.pk}/credits/").json()
    assert (body["balance"], body["live"], body["available_now"]) == ("30.00", False, None)
