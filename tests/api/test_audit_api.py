"""/api/v1/audit-events/: staff only, read-only, filterable."""

import pytest

from customers.services import customer_suspend, token_create

pytestmark = pytest.mark.django_db

URL = "/api/v1/audit-events/"


def test_filter_by_customer_and_action(ro, customer, other_customer):
    token_create(customer=customer)
    customer_suspend(customer=other_customer)
    body = ro.get(URL, {"customer": str(customer.pk)}).json()
    assert [e["action"] for e in body["results"]] == ["token.create"]
    body = ro.get(URL, {"action": "customer.suspend"}).json()
    assert [e["customer"] for e in body["results"]] == [str(other_customer.pk)]
    event_id = body["results"][0]["id"]
    assert ro.get(f"{URL}{event_id}/").json()["after"] == {"status": "suspended"}
    assert ro.get(URL, {"created_after": "garbage"}).status_code == 400
    assert "token_hash" not in ro.get(URL).content.decode()


def test_read_only_resource(rw):
    assert rw.post(URL, {}).status_code == 405


def test_customers_and_anonymous_refused(customer_api, anon):
    assert customer_api.get(URL).status_code == 403
    assert anon.get(URL).status_code == 401


@pytest.mark.parametrize(
    "value, status",
    [("2286-04-10T15:44:49-23:07", 200), ("9999-12-31T23:59:59-14:00", 400), ("garbage", 400)],
)
def test_instants_are_compared_in_utc_never_a_500(ro, value, status):
    """PostgreSQL cannot store an offset beyond 15:59: the filter converts to UTC first."""
    assert ro.get(URL, {"created_before": value}).status_code == status
