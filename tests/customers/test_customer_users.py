"""Disable, enable and re-invite a customer's users from the customer page."""

import pytest
from django.core import mail
from django.urls import reverse

from customers.models import AuditEvent
from customers.onboarding import customer_user_invite

pytestmark = pytest.mark.django_db


def _url(customer, user):
    return reverse("staff:customer_user_action", args=[customer.pk, user.pk])


def test_disable_signs_the_user_out_and_enable_restores(client, staff_user, customer_user):
    customer = customer_user.customer
    user_client = type(client)()
    user_client.force_login(customer_user)
    assert user_client.get("/app/").status_code == 200
    client.force_login(staff_user)
    client.post(_url(customer, customer_user), {"action": "disable", "confirm": "1"})
    customer_user.refresh_from_db()
    assert not customer_user.is_active
    assert user_client.get("/app/").status_code == 302  # signed out
    client.post(_url(customer, customer_user), {"action": "enable"})
    customer_user.refresh_from_db()
    assert customer_user.is_active
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"user.disable", "user.enable"} <= actions


def test_resend_invitation(staff_client, ddb, customer):
    user = customer_user_invite(customer=customer, email="new@acme.example")
    mail.outbox.clear()
    staff_client.post(_url(customer, user), {"action": "reinvite"})
    assert mail.outbox[0].to == ["new@acme.example"]


def test_resend_refused_once_a_password_is_set(staff_client, customer_user):
    response = staff_client.post(
        _url(customer_user.customer, customer_user), {"action": "reinvite"}, follow=True
    )
    assert b"has not set a password" in response.content
    assert mail.outbox == []


def test_users_of_other_customers_are_404(staff_client, other_customer, customer_user):
    assert (
        staff_client.post(_url(other_customer, customer_user), {"action": "disable"}).status_code
        == 404
    )
