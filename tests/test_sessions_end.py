"""A session ends for good when its user is disabled, and when the password or the role
(staff, superuser, customer) changes; it survives changes that do not touch access."""

import pytest
from django.test import Client
from django.urls import reverse

from core.models import User
from customers.onboarding import customer_user_set_active

pytestmark = pytest.mark.django_db


def _signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    assert client.get("/app/" if user.customer_id else "/staff/").status_code == 200
    return client


def test_disabled_user_stays_signed_out_after_re_enable(customer_user):
    session = _signed_in(customer_user)
    customer_user_set_active(user=customer_user, active=False)
    assert session.get("/app/").status_code == 302
    customer_user_set_active(user=customer_user, active=True)
    response = session.get("/app/")
    assert response.status_code == 302
    assert response.url.startswith(reverse("login"))
    _signed_in(User.objects.get(pk=customer_user.pk))  # a new login works


def test_disable_through_the_staff_page_ends_sessions_for_good(
    staff_client, customer_user, customer
):
    session = _signed_in(customer_user)
    url = reverse("staff:customer_user_action", args=[customer.pk, customer_user.pk])
    staff_client.post(url, {"action": "disable", "confirm": "1"})
    staff_client.post(url, {"action": "enable", "confirm": "1"})
    assert User.objects.get(pk=customer_user.pk).is_active
    assert session.get("/app/").status_code == 302


def test_disable_in_django_admin_ends_sessions_for_good(client, customer_user):
    admin = User.objects.create_superuser("root@example.com", "pw-0123456789")
    session = _signed_in(customer_user)
    client.force_login(admin)
    url = reverse("admin:portal_user_change", args=[customer_user.pk])
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "password"}
    data.update(
        {"email": customer_user.email, "customer": customer_user.customer_id, "is_active": ""}
    )
    data.pop("groups", None)
    data.pop("last_login", None)
    data.update({"date_joined_0": "2026-01-01", "date_joined_1": "00:00:00"})
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    User.objects.filter(pk=customer_user.pk).update(is_active=True)
    assert session.get("/app/").status_code == 302


def test_password_change_ends_other_sessions(customer_user):
    session = _signed_in(customer_user)
    customer_user.set_password("a-new-password-0123")
    customer_user.save()
    assert session.get("/app/").status_code == 302


def test_role_change_ends_sessions(staff_user):
    session = _signed_in(staff_user)
    User.objects.filter(pk=staff_user.pk).update(is_superuser=True)
    assert session.get("/staff/").status_code == 302


def test_unrelated_change_keeps_the_session(customer_user):
    session = _signed_in(customer_user)
    User.objects.filter(pk=customer_user.pk).update(full_name="Renamed")
    assert session.get("/app/").status_code == 200
