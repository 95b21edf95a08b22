"""A token's own limits through the API (PATCH on a token, fields on create and in listings),
and tokens per minute in a customer's limits."""

import pytest

from customers.models import AuditEvent
from customers.services import customer_update_limits, token_create, token_revoke

from .conftest import error_of

pytestmark = pytest.mark.django_db


def _url(customer, suffix=""):
    return f"/api/v1/customers/{customer.pk}/tokens/{suffix}"


def test_tokens_show_their_limits_and_patch_changes_only_what_is_sent(rw, customer):
    token = token_create(customer=customer, limits={"daily_request_limit": 9}).token
    row = rw.get(_url(customer)).json()["results"][0]
    assert row["daily_request_limit"] == 9 and row["tpm_limit"] is None
    assert row["allowed_models"] == []
    response = rw.patch(
        _url(customer, f"{token.pk}/"),
        {"tpm_limit": 4000, "allowed_models": ["nova-lite"]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["tpm_limit"] == 4000 and body["allowed_models"] == ["nova-lite"]
    assert body["daily_request_limit"] == 9  # not sent: unchanged
    response = rw.patch(_url(customer, f"{token.pk}/"), {"daily_request_limit": None})
    assert response.json()["daily_request_limit"] is None
    event = AuditEvent.objects.filter(action="token.limits").latest("id")
    assert event.actor_label.endswith("via api") and event.after["daily_request_limit"] is None


def test_create_with_limits(rw, customer):
    response = rw.post(
        _url(customer), {"label": "etl", "rpm_limit": 30, "tpm_limit": 6000}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert response.json()["rpm_limit"] == 30 and response.json()["tpm_limit"] == 6000


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rpm_limit": -1}, "rpm_limit"),
        ({"rpm_limit": 0}, "rpm_limit"),
        ({"daily_request_limit": 10**13}, "daily_request_limit"),
        ({"tpm_limit": 10**12 + 1}, "tpm_limit"),
        ({"monthly_token_quota": 10**12 + 1}, "monthly_token_quota"),
        ({"tpm_limit": 1.5}, "tpm_limit"),
        ({"tpm_limit": "many"}, "tpm_limit"),
        ({"rpm_limit": "5\x00"}, "rpm_limit"),
        ({"allowed_models": ["gpt-99-imaginary"]}, "allowed_models"),
        ({"allowed_models": ["nova\x00lite"]}, "allowed_models"),
        ({"allowed_models": "nova-lite"}, "allowed_models"),
    ],
)
def test_hostile_values_are_a_400_naming_the_field(rw, customer, body, field):
    token = token_create(customer=customer).token
    response = rw.patch(_url(customer, f"{token.pk}/"), body, format="json")
    assert response.status_code == 400, response.json()
    assert field in error_of(response)["fields"]
    token.refresh_from_db()
    assert token.sync_version == 1  # nothing changed


def test_a_model_outside_the_customers_is_refused(rw, customer):
    customer_update_limits(customer=customer, allowed_models=["nova-lite"])
    token = token_create(customer=customer).token
    response = rw.patch(
        _url(customer, f"{token.pk}/"), {"allowed_models": ["claude-3-haiku"]}, format="json"
    )
    assert response.status_code == 400
    assert "not among the account's allowed models" in error_of(response)["message"]


def test_a_revoked_token_keeps_its_limits(rw, customer):
    token = token_create(customer=customer).token
    token_revoke(token=token)
    response = rw.patch(_url(customer, f"{token.pk}/"), {"rpm_limit": 3}, format="json")
    assert response.status_code == 400
    assert "revoked" in error_of(response)["message"]


def test_only_staff_with_write_access_may_patch(ro, customer_api, customer):
    token = token_create(customer=customer).token
    for client in (ro, customer_api):
        response = client.patch(_url(customer, f"{token.pk}/"), {"rpm_limit": 3}, format="json")
        assert response.status_code == 403
    assert customer_api.get(_url(customer, f"{token.pk}/")).json()["rpm_limit"] is None


def test_customer_limits_carry_tokens_per_minute(rw, customer):
    url = f"/api/v1/customers/{customer.pk}/limits/"
    response = rw.patch(url, {"tpm_limit": 90000}, format="json")
    assert response.status_code == 200 and response.json()["tpm_limit"] == 90000
    assert rw.get(f"/api/v1/customers/{customer.pk}/").json()["tpm_limit"] == 90000
    refused = rw.patch(url, {"tpm_limit": 10**13}, format="json")
    assert refused.status_code == 400 and "tpm_limit" in error_of(refused)["fields"]
