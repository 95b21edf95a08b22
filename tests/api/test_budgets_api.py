"""Monthly budgets and the prepaid flag through the API: decimal strings in and out, hostile
bodies refused as a 400 naming the field, tokens' budgets on create and PATCH."""

import json
from decimal import Decimal

import pytest

from customers.models import AuditEvent, Customer, SyncOutbox
from customers.services import customer_update_limits, token_create

from .conftest import error_of

pytestmark = pytest.mark.django_db


def _limits(customer):
    return f"/api/v1/customers/{customer.pk}/limits/"


def _token(customer, token=None):
    return f"/api/v1/customers/{customer.pk}/tokens/" + (f"{token.pk}/" if token else "")


def _raw(client, method, url, text):
    """A body sent as written: JSON the test client's encoder would never produce."""
    return client.generic(method, url, data=text.encode(), content_type="application/json")


def test_budget_and_prepaid_are_read_and_written_as_decimal_strings(rw, customer):
    response = rw.patch(
        _limits(customer), {"monthly_budget": "12.34", "prepaid": True}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["monthly_budget"] == "12.34" and response.json()["prepaid"] is True
    customer.refresh_from_db()
    assert customer.monthly_budget == Decimal("12.34") and customer.prepaid
    row = SyncOutbox.objects.filter(kind="customer").latest("id")
    assert row.payload["monthly_budget_micros"] == 12_340_000 and row.payload["prepaid"] is True
    body = rw.get(f"/api/v1/customers/{customer.pk}/").json()
    assert body["monthly_budget"] == "12.34" and body["prepaid"] is True
    event = AuditEvent.objects.filter(action="customer.limits").latest("id")
    assert event.after == {"monthly_budget": "12.34", "prepaid": True}
    assert event.actor_label.endswith("via api")
    # a JSON integer is exact too; null (or "", as for every decimal of the API) clears it
    assert rw.patch(_limits(customer), {"monthly_budget": 70}).json()["monthly_budget"] == "70.00"
    cleared = rw.patch(_limits(customer), {"monthly_budget": None}, format="json")
    assert cleared.json()["monthly_budget"] is None
    rw.patch(_limits(customer), {"monthly_budget": "70"})
    assert rw.patch(_limits(customer), {"monthly_budget": ""}).json()["monthly_budget"] is None


def test_create_a_customer_with_a_budget(rw):
    response = rw.post(
        "/api/v1/customers/",
        {"name": "Initech", "contact_email": "it@initech.example", "monthly_budget": "250.00"},
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["monthly_budget"] == "250.00" and response.json()["prepaid"] is False
    assert Customer.objects.get(name="Initech").monthly_budget == Decimal("250.00")


HOSTILE_BODIES = [
    '{"monthly_budget": "-1"}',
    '{"monthly_budget": -1}',
    '{"monthly_budget": "0"}',
    '{"monthly_budget": "NaN"}',
    '{"monthly_budget": "Infinity"}',
    '{"monthly_budget": "1e999"}',
    '{"monthly_budget": 1e999}',
    '{"monthly_budget": 12.5}',
    '{"monthly_budget": "12.345"}',
    '{"monthly_budget": "1000000000.01"}',
    '{"monthly_budget": 100000000000000000000000000000000}',
    '{"monthly_budget": "12\\u0000"}',
    '{"monthly_budget": "\\u001b[31m12"}',
    '{"monthly_budget": "none"}',
    '{"monthly_budget": true}',
    '{"monthly_budget": ["12.00"]}',
    '{"monthly_budget": {"amount": "12.00"}}',
    '{"monthly_budget": [[[[[[[["1"]]]]]]]]}',
]


@pytest.mark.parametrize("text", HOSTILE_BODIES)
def test_hostile_customer_budgets_are_a_400_naming_the_field(rw, customer, text):
    response = _raw(rw, "PATCH", _limits(customer), text)
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert "monthly_budget" in error["fields"]
    customer.refresh_from_db()
    assert customer.monthly_budget is None and customer.sync_version == 0


@pytest.mark.parametrize("text", HOSTILE_BODIES)
def test_hostile_token_budgets_are_a_400_naming_the_field(rw, customer, text):
    token = token_create(customer=customer).token
    response = _raw(rw, "PATCH", _token(customer, token), text)
    assert response.status_code == 400, response.content
    assert "monthly_budget" in error_of(response)["fields"]
    created = _raw(rw, "POST", _token(customer), text)
    assert created.status_code == 400, created.content
    token.refresh_from_db()
    assert token.monthly_budget is None and customer.tokens.count() == 1


@pytest.mark.parametrize("text", ['{"prepaid": "maybe"}', '{"prepaid": [true]}', '{"prepaid": 2}'])
def test_hostile_prepaid_values_are_a_400(rw, customer, text):
    response = _raw(rw, "PATCH", _limits(customer), text)
    assert response.status_code == 400 and "prepaid" in error_of(response)["fields"]
    customer.refresh_from_db()
    assert customer.prepaid is False


def test_the_refusal_says_what_to_fix(rw, customer):
    response = _raw(rw, "PATCH", _limits(customer), '{"monthly_budget": 12.5}')
    message = json.dumps(error_of(response)["fields"]["monthly_budget"])
    assert "at most 2 decimals" in message and "not as a floating-point number" in message


def test_tokens_carry_their_budget(rw, customer):
    customer_update_limits(customer=customer, monthly_budget="100")
    created = rw.post(_token(customer), {"label": "etl", "monthly_budget": "12.34"}, format="json")
    assert created.status_code == 201, created.json()
    assert created.json()["monthly_budget"] == "12.34"
    token = customer.tokens.get()
    payload = SyncOutbox.objects.filter(kind="token", token=token).latest("id").payload
    assert payload["monthly_budget_micros"] == 12_340_000
    patched = rw.patch(_token(customer, token), {"monthly_budget": "5.00"}, format="json")
    assert patched.status_code == 200 and patched.json()["monthly_budget"] == "5.00"
    assert patched.json()["daily_request_limit"] is None
    listed = rw.get(_token(customer)).json()["results"][0]
    assert listed["monthly_budget"] == "5.00"


def test_customer_users_read_but_never_write_budgets(customer_api, customer):
    customer_update_limits(customer=customer, monthly_budget="9.99", prepaid=True)
    body = customer_api.get(f"/api/v1/customers/{customer.pk}/").json()
    assert body["monthly_budget"] == "9.99" and body["prepaid"] is True
    refused = customer_api.patch(_limits(customer), {"monthly_budget": "1000"}, format="json")
    assert refused.status_code == 403
    customer.refresh_from_db()
    assert customer.monthly_budget == Decimal("9.99")
