"""/api/v1/customers/{id}/users/: list and invite."""

import pytest

from core.models import User

from .conftest import error_of

pytestmark = pytest.mark.django_db


def _url(customer):
    return f"/api/v1/customers/{customer.pk}/users/"


def test_list_and_invite(
    rw, customer, customer_user, mailoutbox, django_capture_on_commit_callbacks
):
    assert rw.get(_url(customer)).json()["results"][0]["email"] == customer_user.email
    with django_capture_on_commit_callbacks(execute=True):
        response = rw.post(_url(customer), {"email": "New@Acme.example", "full_name": "N"})
    assert response.status_code == 201, response.json()
    assert response.json()["email"] == "new@acme.example"
    assert response.json()["invitation_pending"] is True
    assert User.objects.get(email="new@acme.example").customer == customer
    assert len(mailoutbox) == 1


def test_invite_validates(rw, customer, customer_user):
    response = rw.post(_url(customer), {"email": "not-an-email"})
    assert response.status_code == 400 and "email" in error_of(response)["fields"]
    response = rw.post(_url(customer), {"email": customer_user.email})
    assert response.status_code == 400


def test_permissions(ro, customer_api, anon, customer, other_customer):
    assert ro.post(_url(customer), {"email": "a@b.example"}).status_code == 403
    assert customer_api.get(_url(customer)).status_code == 200
    assert customer_api.get(_url(other_customer)).status_code == 404
    assert customer_api.post(_url(customer), {"email": "a@b.example"}).status_code == 403
    assert anon.get(_url(customer)).status_code == 401


def test_disable_and_enable(rw, ro, customer_api, customer, customer_user):
    url = f"{_url(customer)}{customer_user.pk}/"
    assert rw.get(url).json()["email"] == customer_user.email
    assert ro.post(f"{url}disable/").status_code == 403
    response = rw.post(f"{url}disable/")
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert rw.post(f"{url}enable/").json()["is_active"] is True
    # The session from before the disable ended for good; a new login is a customer again.
    assert customer_api.get("/api/v1/me/").status_code == 401
    customer_user.refresh_from_db()
    customer_api.force_login(customer_user)
    assert customer_api.post(f"{url}disable/").status_code == 403
