"""Create, rotate and revoke from the customer page: confirmation first, token shown once."""

import uuid

import pytest
from django.urls import reverse

from customers.models import Token

from .conftest import remote_token

pytestmark = pytest.mark.django_db


def test_create_token(staff_client, ddb, customer):
    url = reverse("staff:token_create", args=[customer.pk])
    assert staff_client.get(url).status_code == 200
    response = staff_client.post(url, {"label": "batch-jobs", "never_expires": "on"}, follow=True)
    plaintext = response.context["plaintext"]
    assert remote_token(ddb, plaintext).expires_at is None
    assert Token.objects.get(customer=customer).label == "batch-jobs"


def test_create_token_bad_date(staff_client, ddb, customer):
    url = reverse("staff:token_create", args=[customer.pk])
    response = staff_client.post(url, {"label": "x", "expires_on": "2020-02-30"})
    assert response.status_code == 200 and response.context["form"].errors


def test_rotate_asks_first_then_rotates(staff_client, ddb, customer, issued):
    url = reverse("staff:token_rotate", args=[customer.pk, issued.token.pk])
    page = staff_client.get(url)
    # a page that asks (the page is the confirmation, no extra JavaScript dialog)
    assert page.status_code == 200 and b'method="post"' in page.content and b"24" in page.content
    assert issued.token.masked.encode() in page.content
    assert Token.objects.count() == 1
    response = staff_client.post(url, {"grace_hours": "1.5"}, follow=True)
    new_plaintext = response.context["plaintext"]
    assert remote_token(ddb, new_plaintext).status == "active"
    old = remote_token(ddb, issued.plaintext)
    assert old.status == "active" and old.expires_at is not None
    # Rotating the same token twice is refused with a message, not a 500.
    again = staff_client.post(url, {"grace_hours": "1"}, follow=True)
    assert b"can be rotated" in again.content


def test_rotate_bad_grace(staff_client, ddb, customer, issued):
    url = reverse("staff:token_rotate", args=[customer.pk, issued.token.pk])
    response = staff_client.post(url, {"grace_hours": "-2"})
    assert response.status_code == 200 and response.context["form"].errors


def test_revoke_asks_first_then_revokes(staff_client, ddb, customer, issued):
    url = reverse("staff:token_revoke", args=[customer.pk, issued.token.pk])
    page = staff_client.get(url)
    assert b'method="post"' in page.content and issued.token.masked.encode() in page.content
    assert remote_token(ddb, issued.plaintext).status == "active"
    staff_client.post(url)
    assert remote_token(ddb, issued.plaintext).status == "revoked"


def test_token_of_another_customer_is_404(staff_client, ddb, other_customer, issued):
    url = reverse("staff:token_revoke", args=[other_customer.pk, issued.token.pk])
    assert staff_client.post(url).status_code == 404
    url = reverse("staff:token_rotate", args=[issued.token.customer_id, uuid.uuid4()])
    assert staff_client.get(url).status_code == 404


def test_customer_users_cannot_touch_tokens(customer_client, ddb, customer, issued):
    url = reverse("staff:token_revoke", args=[customer.pk, issued.token.pk])
    assert customer_client.post(url).status_code == 403
    assert remote_token(ddb, issued.plaintext).status == "active"
