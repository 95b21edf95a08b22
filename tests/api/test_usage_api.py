"""/api/v1/usage/ (rows, totals, CSV), /api/v1/alerts/ and alert settings."""

import datetime as dt

import pytest

from usage.models import Alert, CustomerUsageSettings, UsageDaily

from .conftest import error_of

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 3, 14)


@pytest.fixture
def rows(customer, other_customer):
    def row(customer, model, app="", cc="", day=DAY, requests=1):
        return UsageDaily.objects.create(
            customer=customer,
            day=day,
            model_id=model,
            application_id=app,
            cost_center=cc,
            requests=requests,
            input_tokens=10 * requests,
            output_tokens=5 * requests,
        )

    return [
        row(customer, "claude", "chat", "=cc1", requests=3),
        row(customer, "llama", "batch", "cc2", requests=2),
        row(customer, "claude", "chat", "=cc1", day=DAY + dt.timedelta(days=1)),
        row(other_customer, "claude", "x", "y", requests=7),
    ]


def test_rows_with_filters(ro, rows, customer):
    body = ro.get("/api/v1/usage/", {"customer": str(customer.pk)}).json()
    assert len(body["results"]) == 3
    body = ro.get("/api/v1/usage/", {"model_id": "llama"}).json()
    assert [r["requests"] for r in body["results"]] == [2]
    body = ro.get("/api/v1/usage/", {"start": str(DAY), "end": str(DAY), "cost_center": "=cc1"})
    assert [r["requests"] for r in body.json()["results"]] == [3]
    body = ro.get("/api/v1/usage/", {"application_id": "chat", "ordering": "day"}).json()
    assert [r["day"] for r in body["results"]] == ["2026-03-14", "2026-03-15"]
    response = ro.get("/api/v1/usage/", {"start": "yesterday"})
    assert response.status_code == 400 and "start" in error_of(response)["fields"]


def test_totals_grouped(ro, rows, customer):
    params = {"customer": str(customer.pk), "start": "2026-03-01", "end": "2026-03-31"}
    body = ro.get("/api/v1/usage/totals/", {**params, "group_by": "model_id"}).json()
    assert body["totals"]["requests"] == 6 and body["totals"]["input_tokens"] == 60
    assert {g["key"]: g["requests"] for g in body["groups"]} == {"claude": 4, "llama": 2}
    everyone = ro.get("/api/v1/usage/totals/", {"start": "2026-03-01", "end": "2026-03-31"})
    assert everyone.json()["totals"]["requests"] == 13
    bad = ro.get("/api/v1/usage/totals/", {"start": "2026-03-31", "end": "2026-03-01"})
    assert bad.status_code == 400
    assert ro.get("/api/v1/usage/totals/", {"group_by": "nope"}).status_code == 400


def test_csv(ro, rows, customer):
    params = {"customer": str(customer.pk), "start": "2026-03-01", "end": "2026-03-31"}
    response = ro.get("/api/v1/usage/csv/", params, HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("day,customer_id,model_id")
    assert len(lines) == 4
    assert "'=cc1" in lines[1]  # spreadsheet formulas neutralised


def test_customer_sees_own_usage_only(customer_api, rows, customer, other_customer):
    body = customer_api.get("/api/v1/usage/").json()
    assert {r["customer"] for r in body["results"]} == {str(customer.pk)}
    assert (
        customer_api.get("/api/v1/usage/", {"customer": str(other_customer.pk)}).json()["results"]
        == []
    )
    params = {"start": "2026-03-01", "end": "2026-03-31"}
    totals = customer_api.get("/api/v1/usage/totals/", params).json()
    assert totals["totals"]["requests"] == 6
    other = {**params, "customer": str(other_customer.pk)}
    assert customer_api.get("/api/v1/usage/totals/", other).status_code == 404
    assert customer_api.get("/api/v1/usage/csv/", other).status_code == 404
    csv = customer_api.get("/api/v1/usage/csv/", params)
    assert str(other_customer.pk) not in b"".join(csv.streaming_content).decode()


def test_alerts_list_and_scoping(ro, customer_api, customer, other_customer, anon):
    for c in (customer, other_customer):
        Alert.objects.create(
            customer=c, rule="monthly_tokens", threshold=80, period="2026-03", value=8, limit=10
        )
    assert len(ro.get("/api/v1/alerts/").json()["results"]) == 2
    assert len(ro.get("/api/v1/alerts/", {"customer": str(customer.pk)}).json()["results"]) == 1
    mine = customer_api.get("/api/v1/alerts/").json()["results"]
    assert [a["customer"] for a in mine] == [str(customer.pk)]
    theirs = Alert.objects.get(customer=other_customer)
    assert customer_api.get(f"/api/v1/alerts/{theirs.pk}/").status_code == 404
    assert anon.get("/api/v1/alerts/").status_code == 401


def test_alert_settings_read_and_patch(rw, ro, customer_api, customer, other_customer):
    url = f"/api/v1/customers/{customer.pk}/alert-settings/"
    assert rw.get(url).json()["monthly_token_percents"] == [50, 80, 100]
    response = rw.patch(
        url,
        {"monthly_token_percents": [90, 50], "webhook_url": "https://hooks.example/x"},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert response.json()["monthly_token_percents"] == [50, 90]
    secret = response.json()["webhook_secret"]
    saved = CustomerUsageSettings.objects.get(customer=customer)
    assert saved.webhook_secret == secret and saved.daily_request_percents == [50, 80, 100]
    assert rw.get(url).json()["webhook_secret"] is None
    bad = rw.patch(url, {"daily_request_percents": [0], "webhook_url": "http://x.example"})
    assert bad.status_code == 400
    assert {"daily_request_percents", "webhook_url"} <= set(error_of(bad)["fields"])
    assert ro.patch(url, {"notify_staff": False}, format="json").status_code == 403
    assert customer_api.get(url).status_code == 200
    assert customer_api.patch(url, {"notify_staff": False}, format="json").status_code == 403
    other = f"/api/v1/customers/{other_customer.pk}/alert-settings/"
    assert customer_api.get(other).status_code == 404
