"""Details, limits, status, invitations from the customer page."""

import pytest
from django.core import mail
from django.urls import reverse

from customers.models import AuditEvent
from proxy import contract

pytestmark = pytest.mark.django_db


def test_edit_details(staff_client, ddb, customer):
    url = reverse("staff:customer_edit", args=[customer.pk])
    assert staff_client.get(url).status_code == 200
    data = {
        "name": "Acme Analytics GmbH",
        "contact_email": "billing@acme.example",
        "extra_contact_emails": "cto@acme.example, ops@acme.example",
        "billing_name": "Acme GmbH",
        "billing_address": "1 Road",
        "tax_id": "DE123",
        "notes": "",
    }
    assert staff_client.post(url, data).status_code == 302
    customer.refresh_from_db()
    assert customer.extra_contact_emails == ["cto@acme.example", "ops@acme.example"]
    assert contract.get_customer(ddb, str(customer.pk)).name == "Acme Analytics GmbH"
    bad = staff_client.post(url, {**data, "extra_contact_emails": "not an email"})
    assert bad.status_code == 200 and bad.context["form"].errors


def test_edit_limits(staff_client, ddb, customer):
    url = reverse("staff:customer_limits", args=[customer.pk])
    assert staff_client.get(url).status_code == 200
    data = {
        "daily_request_limit": "100",
        "monthly_token_quota": "2000000",
        "rpm_limit": "",
        "allowed_models": "sandbox.echo-v1\nclaude-3-haiku",
        "ip_allowlist": "127.0.0.0/24\n::1/128",
        "default_model_params": '{"max_tokens": 256}',
    }
    assert staff_client.post(url, data).status_code == 302
    item = contract.get_customer(ddb, str(customer.pk))
    assert item.ip_allowlist == ["127.0.0.0/24", "::1/128"]
    assert item.default_model_params == {"max_tokens": 256}
    assert item.monthly_token_quota == 2000000 and item.rpm_limit is None


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("ip_allowlist", "300.1.1.1/8"),
        ("default_model_params", "{bad"),
        ("monthly_token_quota", "0"),
    ],
)
def test_edit_limits_bad_input(staff_client, ddb, customer, field, value):
    url = reverse("staff:customer_limits", args=[customer.pk])
    response = staff_client.post(url, {field: value})
    assert response.status_code == 200 and field in response.context["form"].errors


def test_status_actions(staff_client, ddb, customer):
    url = reverse("staff:customer_status", args=[customer.pk])
    staff_client.post(url, {"action": "suspend", "confirm": "1"})
    assert contract.get_customer(ddb, str(customer.pk)).status == "suspended"
    staff_client.post(url, {"action": "reactivate"})
    assert contract.get_customer(ddb, str(customer.pk)).status == "active"
    assert staff_client.post(url, {"action": "explode"}).status_code == 302
    assert staff_client.get(url).status_code == 405
    staff_client.post(url, {"action": "close", "confirm": "1"})
    assert contract.get_customer(ddb, str(customer.pk)).status == "closed"


def test_invite(staff_client, ddb, customer):
    url = reverse("staff:customer_invite", args=[customer.pk])
    response = staff_client.post(url, {"email": "second@acme.example", "full_name": "Sec"})
    assert response.status_code == 302
    assert mail.outbox[-1].to == ["second@acme.example"]
    assert AuditEvent.objects.filter(action="user.invite").exists()
    again = staff_client.post(url, {"email": "second@acme.example"})
    assert again.status_code == 200 and b"already exists" in again.content
