"""One error shape for every status the API answers with, including an unexpected 500, and
every list in the schema cursor-paginated with ordering."""

import logging

import pytest
from rest_framework.test import APIClient

from core.models import ApiKey

from .conftest import error_of
from .test_schemathesis import _load_schema

pytestmark = pytest.mark.django_db


def _status_and_type(response) -> tuple[int, str]:
    return response.status_code, error_of(response)["type"]


def test_every_error_status_has_the_one_shape(rw, ro, anon, customer, customer_api):
    customers = "/api/v1/customers/"
    cases = {
        (400, "validation_error"): rw.post(customers, {"name": ""}),
        (401, "authentication_error"): anon.get(customers),
        (403, "permission_error"): ro.post(customers, {"name": "x"}),
        (404, "not_found"): rw.get(f"{customers}00000000-0000-0000-0000-000000000000/"),
        (405, "invalid_request"): rw.delete(f"{customers}{customer.pk}/"),
        (415, "validation_error"): rw.post(customers, {"name": "x"}, format="multipart"),
    }
    for expected, response in cases.items():
        assert _status_and_type(response) == expected, response.content
        assert response["Content-Type"] == "application/json"


def test_invalid_state_is_409(rw, customer):
    from billing.models import Invoice

    draft = Invoice.objects.create(
        customer=customer, period_start="2026-10-01", period_end="2026-10-31"
    )
    response = rw.post(f"/api/v1/invoices/{draft.pk}/mark-paid/")
    assert _status_and_type(response) == (409, "invalid_state")


def test_rate_limited_is_429_with_retry_after(rw):
    ApiKey.objects.filter(pk=rw.api_key.pk).update(rate_limit_per_minute=1)
    assert rw.get("/api/v1/me/").status_code == 200
    response = rw.get("/api/v1/me/")
    assert _status_and_type(response) == (429, "rate_limit_error")
    assert int(response["Retry-After"]) > 0


def test_unexpected_error_is_a_json_500_without_details(rw, monkeypatch, caplog):
    def boom(user):
        raise RuntimeError("secret internals: db password")

    monkeypatch.setattr("portal.api.views.is_staff_user", boom)
    client = APIClient(raise_request_exception=False)
    client.credentials(HTTP_AUTHORIZATION=rw._credentials["HTTP_AUTHORIZATION"])
    with caplog.at_level(logging.ERROR):
        response = client.get("/api/v1/me/", HTTP_X_REQUEST_ID="trace-500")
    assert _status_and_type(response) == (500, "server_error")
    error = error_of(response)
    assert error["request_id"] == "trace-500"
    assert "secret internals" not in response.content.decode()
    assert "API error on GET /api/v1/me/" in caplog.text  # logged for us, not shown to them


SCHEMA = _load_schema()
LISTS = [
    path
    for path, item in SCHEMA["paths"].items()
    if "get" in item
    and "Paginated" in str(item["get"]["responses"].get("200", {}).get("content", {}))
]


def test_lists_are_cursor_paginated_with_ordering():
    """Every collection in the schema pages with a cursor and takes `ordering` (the wallet and
    the totals answer one object; the CSV is streamed)."""
    assert len(LISTS) >= 10
    for path in LISTS:
        names = {p["name"] for p in SCHEMA["paths"][path]["get"]["parameters"]}
        assert {"cursor", "page_size", "ordering"} <= names, path


@pytest.mark.parametrize("path", LISTS)
def test_each_list_answers_the_cursor_page_shape(path, rw, customer):
    response = rw.get(path.replace("{customer_pk}", str(customer.pk)), {"page_size": 1})
    assert response.status_code == 200
    assert set(response.json()) == {"next", "previous", "results"}
    assert len(response.json()["results"]) <= 1
