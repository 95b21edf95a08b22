"""A reload of the page that showed a new secret (or Back and re-send) creates nothing: every
form that creates a token, an API key or a webhook secret carries a one-time key."""

import pytest
from django.urls import reverse

from core.models import ApiKey, FormSubmissionKey
from core.once import ALREADY_SENT, FIELD
from customers.models import Customer, Token
from customers.services import token_create
from usage.models import CustomerUsageSettings

pytestmark = pytest.mark.django_db


def _key(client, url) -> str:
    key = client.get(url).context["form_key"]
    assert key and FormSubmissionKey.objects.filter(key=key, used_at__isnull=True).exists()
    return key


def _twice(client, url, data):
    first = client.post(url, data)
    again = client.post(url, data)  # the browser re-sends the same form
    return first, again


def test_staff_token_create(staff_client, aws, customer):
    url = reverse("staff:token_create", args=[customer.pk])
    data = {"label": "backend", FIELD: _key(staff_client, url)}
    first, again = _twice(staff_client, url, data)
    assert first.status_code == 200 and first.context["plaintext"]
    assert again.status_code == 409 and ALREADY_SENT in again.content.decode()
    assert Token.objects.filter(customer=customer, label="backend").count() == 1


def test_staff_token_rotate(staff_client, aws, customer):
    old = token_create(customer=customer, label="backend").token
    url = reverse("staff:token_rotate", args=[customer.pk, old.pk])
    data = {"grace_hours": "1", FIELD: _key(staff_client, url)}
    first, again = _twice(staff_client, url, data)
    assert first.status_code == 200 and first.context["plaintext"]
    assert again.status_code == 302
    assert Token.objects.filter(customer=customer).count() == 2


def test_onboarding(staff_client, aws):
    url = reverse("staff:customer_onboard")
    data = {
        "name": "Initech",
        "contact_email": "it@initech.example",
        "user_email": "peter@initech.example",
        "token_label": "backend",
        "allowed_models": "sandbox.echo-v1",
        FIELD: _key(staff_client, url),
    }
    first, again = _twice(staff_client, url, data)
    assert first.status_code == 200 and first.context["plaintext"], first.content[:300]
    assert again.status_code == 409 and ALREADY_SENT in again.content.decode()
    assert Customer.objects.filter(name="Initech").count() == 1


def test_customer_token_create_and_rotate(customer_client, aws, customer):
    url = reverse("customer:customer_tokens")
    first, again = _twice(customer_client, url, {"label": "app", FIELD: _key(customer_client, url)})
    assert first.status_code == 200 and first.context["issued"]
    assert again.status_code == 409
    assert Token.objects.filter(customer=customer, label="app").count() == 1

    token = Token.objects.get(customer=customer, label="app")
    rotate = reverse("customer:customer_token_rotate", args=[token.pk])
    data = {"grace_hours": "1", "confirm": "1", FIELD: _key(customer_client, url)}
    first, again = _twice(customer_client, rotate, data)
    assert first.status_code == 200 and first.context["issued"]
    assert again.status_code == 302
    assert Token.objects.filter(customer=customer).count() == 2


def test_api_key_create(staff_client):
    url = reverse("staff:api_keys")
    data = {"name": "crm", "scope": "read", FIELD: _key(staff_client, url)}
    first, again = _twice(staff_client, url, data)
    assert first.status_code == 200 and first.context["issued"]
    assert again.status_code == 409 and again.context["issued"] is None
    assert ApiKey.objects.filter(name="crm").count() == 1


def test_webhook_secret_is_not_replaced_by_a_reload(staff_client, customer):
    url = reverse("staff:usage_customer_settings", args=[customer.pk])
    data = {
        "monthly_token_percents": "80",
        "webhook_url": "https://127.0.0.1:9/usage",
        FIELD: _key(staff_client, url),
    }
    first, again = _twice(staff_client, url, data)
    shown = first.context["new_webhook_secret"]
    assert again.status_code == 409
    assert CustomerUsageSettings.objects.get(customer=customer).webhook_secret == shown


def test_a_key_of_another_user_or_purpose_is_refused(staff_client, staff_user, aws, customer):
    api_key_form = _key(staff_client, reverse("staff:api_keys"))
    url = reverse("staff:token_create", args=[customer.pk])
    response = staff_client.post(url, {"label": "x", FIELD: api_key_form})
    assert response.status_code == 409 and not Token.objects.filter(label="x").exists()


def test_a_post_without_a_key_still_works(staff_client, aws, customer):
    url = reverse("staff:token_create", args=[customer.pk])
    assert staff_client.post(url, {"label": "script"}).status_code == 200
    assert Token.objects.filter(label="script").exists()
