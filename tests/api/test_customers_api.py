"""/api/v1/customers/: list, filters, ordering, create, read, update, limits, suspend."""

import pytest

from customers.models import AuditEvent, Customer

from .conftest import error_of

pytestmark = pytest.mark.django_db

URL = "/api/v1/customers/"


def test_anonymous_is_401(anon):
    response = anon.get(URL)
    assert response.status_code == 401
    assert error_of(response)["type"] == "authentication_error"


def test_list_paginates_with_cursor_filters_and_orders(rw, customer, other_customer):
    Customer.objects.create(name="Zeta", contact_email="z@zeta.example", status="suspended")
    body = rw.get(URL, {"page_size": 2}).json()
    assert [c["name"] for c in body["results"]] == ["Acme Analytics", "Globex Research"]
    assert "cursor=" in body["next"]
    rest = rw.get(body["next"]).json()
    assert [c["name"] for c in rest["results"]] == ["Zeta"]
    assert rw.get(URL, {"status": "suspended"}).json()["results"][0]["name"] == "Zeta"
    assert [c["name"] for c in rw.get(URL, {"search": "globex"}).json()["results"]] == [
        "Globex Research"
    ]
    names = [c["name"] for c in rw.get(URL, {"ordering": "-name"}).json()["results"]]
    assert names == ["Zeta", "Globex Research", "Acme Analytics"]


def test_bad_filter_is_400_with_fields(rw):
    response = rw.get(URL, {"status": "nope"})
    assert response.status_code == 400
    assert "status" in error_of(response)["fields"]


def test_create_read_update(rw, staff_user):
    response = rw.post(
        URL,
        {"name": "Initech", "contact_email": "ops@initech.example", "rpm_limit": 60},
        format="json",
    )
    assert response.status_code == 201, response.json()
    customer_id = response.json()["id"]
    assert response.json()["rpm_limit"] == 60
    detail = rw.get(f"{URL}{customer_id}/").json()
    assert detail["name"] == "Initech" and detail["status"] == "active"
    response = rw.patch(
        f"{URL}{customer_id}/",
        {"billing_name": "Initech LLC", "allowed_models": ["claude-3-sonnet"]},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["billing_name"] == "Initech LLC"
    assert response.json()["allowed_models"] == ["claude-3-sonnet"]
    event = AuditEvent.objects.filter(action="customer.update").get()
    assert event.actor_label.endswith("via api") and event.source_ip == "127.0.0.1"


def test_bad_input_is_400_with_field_errors(rw):
    response = rw.post(
        URL,
        {"name": " ", "contact_email": "nope", "ip_allowlist": ["999.1.1.1"], "rpm_limit": 0},
        format="json",
    )
    assert response.status_code == 400
    fields = error_of(response)["fields"]
    assert {"name", "contact_email", "ip_allowlist", "rpm_limit"} <= set(fields)


def test_limits_read_and_patch(rw, customer):
    url = f"{URL}{customer.pk}/limits/"
    assert rw.get(url).json()["daily_request_limit"] is None
    response = rw.patch(url, {"daily_request_limit": 1000, "ip_allowlist": ["10.0.0.1"]})
    assert response.status_code == 200, response.json()
    assert response.json()["ip_allowlist"] == ["10.0.0.1/32"]
    customer.refresh_from_db()
    assert customer.daily_request_limit == 1000
    response = rw.patch(url, {"allowed_models": ["not a model!"]}, format="json")
    assert response.status_code == 400
    assert "allowed_models" in error_of(response)["fields"]


def test_suspend_and_reactivate(rw, customer):
    response = rw.post(f"{URL}{customer.pk}/suspend/")
    assert response.status_code == 200 and response.json()["status"] == "suspended"
    response = rw.post(f"{URL}{customer.pk}/reactivate/")
    assert response.json()["status"] == "active"
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"customer.suspend", "customer.reactivate"} <= actions


def test_read_only_key_reads_but_cannot_write(ro, customer):
    assert ro.get(URL).status_code == 200
    response = ro.post(f"{URL}{customer.pk}/suspend/")
    assert response.status_code == 403
    assert error_of(response)["type"] == "permission_error"
    assert ro.post(URL, {"name": "x", "contact_email": "x@x.example"}).status_code == 403


def test_revoked_key_refused(rw):
    from portal.api.keys import api_key_revoke

    api_key_revoke(api_key=rw.api_key)
    assert rw.get(URL).status_code == 401


def test_staff_session_can_write(staff_api, customer):
    assert staff_api.post(f"{URL}{customer.pk}/suspend/").status_code == 200


def test_customer_sees_only_own_account_read_only(customer_api, customer, other_customer):
    body = customer_api.get(URL).json()
    assert [c["id"] for c in body["results"]] == [str(customer.pk)]
    assert "notes" not in body["results"][0]
    assert customer_api.get(f"{URL}{customer.pk}/").status_code == 200
    assert customer_api.get(f"{URL}{other_customer.pk}/").status_code == 404
    assert customer_api.get(f"{URL}{other_customer.pk}/limits/").status_code == 404
    assert customer_api.post(f"{URL}{customer.pk}/suspend/").status_code == 403
    assert customer_api.patch(f"{URL}{customer.pk}/", {"name": "x"}).status_code == 403


def test_post_to_no_endpoint_is_json_404_even_for_sessions(staff_user):
    from rest_framework.test import APIClient

    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(staff_user)
    response = browser.post("/api/v1/nowhere/", {}, format="json")
    assert response.status_code == 404
    assert error_of(response)["code"] == "no_such_endpoint"


def test_unknown_customer_is_404(rw):
    response = rw.get(f"{URL}00000000-0000-0000-0000-000000000001/")
    assert response.status_code == 404
    assert rw.get(f"{URL}not-a-uuid/").status_code == 404


def test_values_beyond_the_columns_are_400_not_500(rw, customer):
    url = f"{URL}{customer.pk}/limits/"
    response = rw.patch(url, {"rpm_limit": 2**31, "default_model_params": {"a\x00": "b"}})
    assert response.status_code == 400
    assert {"rpm_limit", "default_model_params"} <= set(error_of(response)["fields"])
    lone_surrogate = b'{"default_model_params": {"x": "\\ud800"}}'
    response = rw.generic("PATCH", url, lone_surrogate, content_type="application/json")
    assert response.status_code == 400


def test_form_bodies_are_415_in_the_error_shape(rw):
    response = rw.post(URL, {"name": "x", "contact_email": "x@x.example"}, format="multipart")
    assert response.status_code == 415
    assert error_of(response)["type"] == "validation_error"


def test_close_revokes_tokens(rw, ro, customer):
    from customers.services import token_create

    token = token_create(customer=customer).token
    assert ro.post(f"{URL}{customer.pk}/close/").status_code == 403
    response = rw.post(f"{URL}{customer.pk}/close/")
    assert response.status_code == 200 and response.json()["status"] == "closed"
    token.refresh_from_db()
    assert token.status == "revoked"
