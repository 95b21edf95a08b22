"""Staff pages of unusual usage and latency: access, content, hostile filters, query counts."""

import datetime as dt
from decimal import Decimal

import pytest
from django.template import Context, Template
from django.test import Client
from django.urls import reverse

from usage.anomalies import recent_anomalies
from usage.models import ModelLatencyDaily, UsageAnomaly, UsageLatencyDaily
from usage.services import utc_today

PAGES = ["staff:usage_anomalies", "staff:usage_latency"]


@pytest.fixture
def findings(customer, other_customer):
    hour = dt.datetime.combine(utc_today() - dt.timedelta(days=1), dt.time(14), tzinfo=dt.UTC)
    for n, (who, kind) in enumerate(
        [(customer, "spike"), (other_customer, "silence")] * 40  # two pages
    ):
        UsageAnomaly.objects.create(
            customer=who,
            hour=hour - dt.timedelta(hours=n),
            kind=kind,
            requests=12_400 if kind == "spike" else 0,
            baseline=Decimal("800"),
            spread=Decimal("100"),
            score=Decimal("116.0") if kind == "spike" else Decimal("-8.0"),
            weeks=8,
            explanation=f"{kind} number {n}",
        )


@pytest.fixture
def latency(customer):
    yesterday = utc_today() - dt.timedelta(days=1)
    for n in range(60):
        day = yesterday - dt.timedelta(days=n % 10)
        model = f"model-{n // 10}"
        ModelLatencyDaily.objects.create(
            day=day, model_id=model, requests=12_345, errors=3, latency_p50_ms=420,
            latency_p95_ms=1_850,
        )  # fmt: skip
        UsageLatencyDaily.objects.create(
            customer=customer, day=day, model_id=model, requests=7, errors=0,
            latency_p50_ms=99, latency_p95_ms=101,
        )  # fmt: skip


@pytest.mark.parametrize("name", PAGES)
def test_access(name, staff_client, customer_user):
    assert staff_client.get(reverse(name)).status_code == 200
    customer = Client()
    customer.force_login(customer_user)
    assert customer.get(reverse(name)).status_code == 403
    anonymous = Client().get(reverse(name))
    assert anonymous.status_code == 302 and "login" in anonymous["Location"]


def test_the_anomaly_list(staff_client, findings, customer, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        response = staff_client.get(reverse("staff:usage_anomalies"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "spike number 0" in body and "12,400" in body and "Page 1 of 2" in body
    silences = staff_client.get(reverse("staff:usage_anomalies"), {"kind": "silence"})
    assert "spike number" not in silences.content.decode()
    mine = staff_client.get(reverse("staff:usage_anomalies"), {"customer": customer.name})
    assert "silence number" not in mine.content.decode()
    old = staff_client.get(reverse("staff:usage_anomalies"), {"days": "1"})
    assert "number 79" not in old.content.decode()


def test_the_latency_page(staff_client, latency, customer, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        response = staff_client.get(reverse("staff:usage_latency"))
    body = response.content.decode()
    assert response.status_code == 200
    assert "12,345" in body and "1,850" in body and "0.02 %" in body and "Page 1 of 2" in body
    one_model = staff_client.get(reverse("staff:usage_latency"), {"model": "model-3"})
    text = one_model.content.decode()
    assert "model-3" in text and "model-4" not in text and "Page 1 of" not in text
    one_customer = staff_client.get(reverse("staff:usage_latency"), {"customer": str(customer.pk)})
    assert ">101<" in one_customer.content.decode()


@pytest.mark.parametrize(
    ("name", "query"),
    [
        ("staff:usage_anomalies", {"days": "abc"}),
        ("staff:usage_anomalies", {"days": "9" * 40}),
        ("staff:usage_anomalies", {"days": "-1"}),
        ("staff:usage_anomalies", {"days": "1\x00"}),
        ("staff:usage_anomalies", {"kind": "volcano"}),
        ("staff:usage_anomalies", {"customer": "acme\x00"}),
        ("staff:usage_anomalies", {"customer": "x" * 10_000}),
        ("staff:usage_latency", {"model": "m\x00"}),
        ("staff:usage_latency", {"model": "m" * 10_000}),
        ("staff:usage_latency", {"start": "2026-02-30", "end": "2026-03-01"}),
        ("staff:usage_latency", {"start": "99999999-01-01", "end": "2026-03-01"}),
        ("staff:usage_latency", {"start": "2020-01-01", "end": "2026-03-01"}),
        ("staff:usage_latency", {"start": "2026-03-02", "end": "2026-03-01"}),
        ("staff:usage_latency", {"start": "2026-03-02"}),
        ("staff:usage_latency", {"customer": "\x00"}),
    ],
)
def test_hostile_filters_are_400_not_500(staff_client, name, query):
    response = staff_client.get(reverse(name), query)
    assert response.status_code == 400
    body = response.content.decode()
    assert 'class="error"' in body or 'class="message message-error"' in body


def test_page_numbers_out_of_range_give_a_page(staff_client, findings):
    for page in ("abc", "999999999999999999999", "-3"):
        assert staff_client.get(reverse("staff:usage_anomalies"), {"page": page}).status_code == 200


def test_the_dashboard_include(findings, django_assert_max_num_queries):
    with django_assert_max_num_queries(2):
        anomalies = recent_anomalies(days=7, limit=10)
    html = Template('{% include "usage/_anomalies.html" %}').render(
        Context({"anomalies": anomalies})
    )
    assert "Unusual usage" in html and "spike number 0" in html and "All 80" in html


def test_the_usage_dashboard_shows_comparisons_and_the_flag(staff_client, dynamodb, findings):
    body = staff_client.get(reverse("staff:usage_dashboard")).content.decode()
    assert "Compared with the previous period" in body and "spike number 0" in body
