"""/api/v1/prices/, /api/v1/plans/ (and assign), /api/v1/customers/{id}/credits/."""

from datetime import date
from decimal import Decimal

import pytest

from billing.models import CreditGrant, CustomerPlan, ModelPrice, PricingPlan

from .conftest import error_of

pytestmark = pytest.mark.django_db


@pytest.fixture
def plan(db):
    return PricingPlan.objects.create(code="payg", name="Pay as you go", kind="per_token")


def test_price_book(ro, customer_api):
    ModelPrice.objects.create(
        model_id="test.model-a",
        effective_from=date(2026, 1, 1),
        input_per_1k=Decimal("0.003"),
        output_per_1k=Decimal("0.015"),
    )
    body = ro.get("/api/v1/prices/", {"model_id": "test.model-a"}).json()
    assert [p["input_per_1k"] for p in body["results"]] == ["0.003000000"]
    assert customer_api.get("/api/v1/prices/").status_code == 403


def test_plans_and_assign(rw, ro, plan, customer):
    assert ro.get("/api/v1/plans/").json()["results"][0]["code"] == "payg"
    url = f"/api/v1/plans/{plan.pk}/assign/"
    body = {"customer": str(customer.pk), "effective_from": "2026-11-01"}
    assert ro.post(url, body).status_code == 403
    response = rw.post(url, body)
    assert response.status_code == 201, response.json()
    assert CustomerPlan.objects.get().plan == plan
    again = rw.post(url, body)
    assert again.status_code == 400
    assert rw.post(url, {"customer": "00000000-0000-0000-0000-000000000009",
                         "effective_from": "2026-11-01"}).status_code == 404  # fmt: skip


def test_credits_balance_and_grant_idempotent(rw, customer):
    url = f"/api/v1/customers/{customer.pk}/credits/"
    assert rw.get(url).json() == {
        "customer": str(customer.pk),
        "balance": "0.00",
        "prepaid": False,
        "available_now": None,
        "usage_not_invoiced": None,
        "live": False,
        "grants": [],
    }
    body = {"amount": "25.50", "note": "top-up"}
    first = rw.post(url, body, HTTP_IDEMPOTENCY_KEY="grant-1")
    again = rw.post(url, body, HTTP_IDEMPOTENCY_KEY="grant-1")
    assert first.status_code == again.status_code == 201
    assert CreditGrant.objects.count() == 1
    assert rw.get(url).json()["balance"] == "25.50"
    bad = rw.post(url, {"amount": "-1", "kind": "credit_note"})
    assert bad.status_code == 400
    assert {"amount", "kind"} <= set(error_of(bad)["fields"])
    bad = rw.post(url, {"amount": "1.00", "expires_on": "2001-01-01"})
    assert bad.status_code == 400


def test_credits_permissions(ro, customer_api, customer, other_customer, anon):
    url = f"/api/v1/customers/{customer.pk}/credits/"
    assert ro.post(url, {"amount": "1.00"}).status_code == 403
    assert customer_api.get(url).status_code == 200
    assert customer_api.post(url, {"amount": "1.00"}).status_code == 403
    other = f"/api/v1/customers/{other_customer.pk}/credits/"
    assert customer_api.get(other).status_code == 404
    assert anon.get(url).status_code == 401
