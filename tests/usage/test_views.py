"""Usage pages: access rules, customer isolation, CSV streaming, forms that never 500."""

import datetime as dt

import pytest
from django.contrib.messages.storage.cookie import CookieStorage
from django.http import HttpRequest
from django.urls import reverse

from usage.models import Alert, CustomerUsageSettings, IngestRun, UsageDifference
from usage.services import usage_day_replace, utc_today

from .conftest import put_counter
from .events import make_event, write_events

DAY = dt.date(2026, 11, 20)

STAFF_PAGES = [
    "staff:usage_dashboard",
    "staff:usage_ingest",
    "staff:usage_reconciliation",
    "staff:usage_alerts",
]
CUSTOMER_PAGES = ["customer:usage_overview", "customer:usage_alerts", "customer:usage_summaries"]


@pytest.fixture
def usage(customer, other_customer):
    usage_day_replace(
        day=DAY,
        engine="duckdb",
        rows=[
            (str(customer.pk), "acme-model", "acme-app", "cc-acme", "prod", 7, 700, 70, 0, 0),
            (str(other_customer.pk), "globex-model", "globex-app", "", "", 9, 900, 90, 0, 0),
        ],
    )


@pytest.mark.parametrize("name", STAFF_PAGES)
def test_staff_pages(staff_client, dynamodb, usage, name):
    assert staff_client.get(reverse(name)).status_code == 200


@pytest.mark.parametrize("name", STAFF_PAGES)
def test_customers_cannot_open_staff_pages(customer_client, name):
    assert customer_client.get(reverse(name)).status_code == 403


@pytest.mark.parametrize("name", CUSTOMER_PAGES)
def test_customer_pages_need_a_customer_account(staff_client, name):
    from django.test import Client

    assert staff_client.get(reverse(name)).status_code == 403
    assert Client().get(reverse(name)).status_code == 302


def test_customer_overview_shows_only_own_usage(customer_client, dynamodb, usage, customer):
    put_counter(
        dynamodb, customer.pk, f"DAY#{utc_today()}", requests=42, input_tokens=1234, output_tokens=1
    )
    put_counter(dynamodb, customer.pk, f"DAY#{utc_today()}#MODEL#live-model", requests=42)
    response = customer_client.get(
        reverse("customer:usage_overview"), {"start": "2026-11-01", "end": "2026-11-30"}
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "acme-model" in body and "globex-model" not in body
    assert "provisional" in body and ">42<" in body and "live-model" in body
    by_app = customer_client.get(
        reverse("customer:usage_overview"),
        {"start": "2026-11-01", "end": "2026-11-30", "by": "application_id"},
    )
    assert "acme-app" in by_app.content.decode()


def test_bad_dates_are_form_errors_not_500(customer_client, dynamodb):
    response = customer_client.get(
        reverse("customer:usage_overview"), {"start": "2026-02-30", "end": "x"}
    )
    assert response.status_code == 200
    assert "Enter a valid date" in response.content.decode()
    response = customer_client.get(
        reverse("customer:usage_overview"), {"start": "2026-11-30", "end": "2026-11-01"}
    )
    assert "The start date is after the end date." in response.content.decode()
    assert (
        customer_client.get(
            reverse("customer:usage_export"), {"start": "nope", "end": "2026-11-01"}
        ).status_code
        == 400
    )


def test_staff_bad_dates_are_messages_not_500(staff_client):
    response = staff_client.get(reverse("staff:usage_reconciliation"), {"day": "2026-99-01"})
    assert response.status_code == 200
    assert "YYYY-MM-DD" in response.content.decode()
    response = staff_client.get(reverse("staff:usage_export"), {"start": "bad", "end": "bad"})
    assert response.status_code == 302


def test_customer_csv_is_streamed_and_isolated(customer_client, usage):
    response = customer_client.get(
        reverse("customer:usage_export"), {"start": "2026-11-01", "end": "2026-11-30"}
    )
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    lines = b"".join(response.streaming_content).decode().splitlines()
    assert lines[0].startswith("day,customer_id,model_id,application_id")
    assert len(lines) == 2 and "acme-model" in lines[1] and "globex" not in lines[1]


def test_staff_csv_for_all_or_one_customer(staff_client, usage, other_customer):
    url = reverse("staff:usage_export")
    all_rows = (
        b"".join(
            staff_client.get(url, {"start": "2026-11-20", "end": "2026-11-20"}).streaming_content
        )
        .decode()
        .splitlines()
    )
    assert len(all_rows) == 3
    one = (
        b"".join(
            staff_client.get(
                url, {"start": "2026-11-20", "end": "2026-11-20", "customer": other_customer.pk}
            ).streaming_content
        )
        .decode()
        .splitlines()
    )
    assert len(one) == 2 and "globex-model" in one[1]


def test_csv_neutralises_formulas(customer_client, customer):
    usage_day_replace(
        day=DAY,
        engine="duckdb",
        rows=[(str(customer.pk), "m", "=HYPERLINK(1)", "", "", 1, 1, 1, 0, 0)],
    )
    body = b"".join(
        customer_client.get(
            reverse("customer:usage_export"), {"start": "2026-11-20", "end": "2026-11-20"}
        ).streaming_content
    ).decode()
    assert "'=HYPERLINK(1)" in body


def test_customer_alert_history_is_own_only(customer_client, customer, other_customer):
    Alert.objects.create(
        customer=customer,
        rule="monthly_tokens",
        threshold=80,
        period="2026-11",
        value=800,
        limit=1000,
    )
    Alert.objects.create(
        customer=other_customer,
        rule="daily_requests",
        threshold=50,
        period="2026-11-20",
        value=5,
        limit=10,
    )
    body = customer_client.get(reverse("customer:usage_alerts")).content.decode()
    assert "Monthly token quota" in body and "Daily request limit" not in body


def test_staff_customer_page_404_for_unknown(staff_client, dynamodb):
    url = reverse("staff:usage_customer", args=["5b0e6c3e-0000-4000-8000-000000000000"])
    assert staff_client.get(url).status_code == 404


def test_staff_customer_page(staff_client, dynamodb, usage, customer):
    body = staff_client.get(
        reverse("staff:usage_customer", args=[customer.pk]),
        {"start": "2026-11-01", "end": "2026-11-30"},
    ).content.decode()
    assert "acme-model" in body and "globex-model" not in body
    assert f"customer={customer.pk}" in body


def test_staff_customer_page_shows_live_counters_as_provisional(staff_client, dynamodb, customer):
    today = utc_today()
    put_counter(
        dynamodb, customer.pk, f"DAY#{today}", requests=31, input_tokens=4000, output_tokens=1
    )
    put_counter(dynamodb, customer.pk, f"MONTH#{today:%Y-%m}", requests=977, input_tokens=50_000)
    body = staff_client.get(reverse("staff:usage_customer", args=[customer.pk])).content.decode()
    assert ">31<" in body and ">4,001<" in body and ">977<" in body
    assert body.count(">provisional</span>") >= 4


def test_staff_edit_thresholds(staff_client, customer):
    url = reverse("staff:usage_customer_settings", args=[customer.pk])
    assert staff_client.get(url).status_code == 200
    bad = staff_client.post(
        url, {"monthly_token_percents": "50, lots", "daily_request_percents": ""}
    )
    assert "whole percents" in bad.content.decode()
    response = staff_client.post(
        url,
        {
            "monthly_token_percents": "90, 75",
            "daily_request_percents": "",
            "hourly_token_threshold": "10000",
            "notify_staff": "on",
            "webhook_url": "https://127.0.0.1:9/usage",
            "summary_frequency": "monthly",
        },
    )
    assert response.status_code == 200  # a new signing secret: shown in this answer, once
    saved = CustomerUsageSettings.objects.get(customer=customer)
    assert saved.monthly_token_percents == [75, 90] and saved.daily_request_percents == []
    assert saved.hourly_token_threshold == 10000 and len(saved.webhook_secret) > 30
    plain = staff_client.post(
        url, {"monthly_token_percents": "50", "webhook_url": "http://127.0.0.1:9/usage"}
    )
    assert "https URL" in plain.content.decode()


def test_a_new_webhook_secret_is_shown_once_and_kept_in_no_cookie(staff_client, customer):
    url = reverse("staff:usage_customer_settings", args=[customer.pk])
    form = {"monthly_token_percents": "80", "webhook_url": "https://127.0.0.1:9/usage"}
    response = staff_client.post(url, form)
    secret = CustomerUsageSettings.objects.get(customer=customer).webhook_secret
    assert response.status_code == 200 and secret in response.content.decode()
    assert "no-store" in response["Cache-Control"]
    stored = response.cookies.get("messages")
    kept = CookieStorage(HttpRequest())._decode(stored.value) if stored else []
    assert kept is not None and all(secret not in str(m) for m in kept)
    for page in (reverse("staff:usage_customer", args=[customer.pk]), url):
        assert secret not in staff_client.get(page).content.decode()
    # Saving again without a new secret goes back to the usage page; nothing shown.
    again = staff_client.post(url, form)
    assert again.status_code == 302 and secret not in str(again.cookies)


def test_customer_opts_in_to_summaries(customer_client, customer):
    url = reverse("customer:usage_summaries")
    assert customer_client.post(url, {"summary_frequency": "weekly"}).status_code == 302
    assert CustomerUsageSettings.objects.get(customer=customer).summary_frequency == "weekly"


def test_staff_reingest_queues_and_runs(
    staff_client, dynamodb, events_dir, customer, django_capture_on_commit_callbacks
):
    write_events(
        events_dir, [make_event(customer.pk, when=dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC))]
    )
    url = reverse("staff:usage_ingest")
    with django_capture_on_commit_callbacks(execute=True):
        response = staff_client.post(
            url, {"start": "2026-11-19", "end": "2026-11-20", "engine": "duckdb", "confirm": "1"}
        )
    run = IngestRun.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("staff:usage_ingest_run", args=[run.pk])
    run.refresh_from_db()
    assert (run.status, run.trigger, run.rows_written) == ("succeeded", "staff", 1)
    assert "Succeeded" in staff_client.get(response["Location"]).content.decode()
    future = staff_client.post(url, {"start": "2026-11-19", "end": "2099-01-01"})
    assert "Only finished days" in future.content.decode()
    assert IngestRun.objects.count() == 1


def test_reconciliation_page_lists_differences(staff_client, customer):
    UsageDifference.objects.create(
        customer=customer, day=DAY, billed_requests=5, counter_requests=7
    )
    body = staff_client.get(reverse("staff:usage_reconciliation")).content.decode()
    assert "Acme Analytics" in body and "-2" in body


def test_staff_home_includes_usage(staff_client, dynamodb, customer):
    assert "Counter differences" in staff_client.get(reverse("staff:home")).content.decode()


def test_customer_home_includes_usage(customer_client, dynamodb):
    assert "Tokens this month" in customer_client.get(reverse("customer:home")).content.decode()


def test_counters_unavailable_still_renders(customer_client, monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("no DynamoDB")

    monkeypatch.setattr("usage.counters.read_counters", down)
    body = customer_client.get(reverse("customer:usage_overview")).content.decode()
    assert "Real-time counters are unavailable" in body


def test_run_page_polls_only_while_the_run_is_unfinished(staff_client):
    run = IngestRun.objects.create(
        trigger="staff", engine="duckdb", start_day=DAY, end_day=DAY, days=[str(DAY)], days_total=1
    )
    url = reverse("staff:usage_ingest_run", args=[run.pk])
    body = staff_client.get(url).content.decode()
    assert 'hx-trigger="every 3s"' in body and "While the run" not in body
    IngestRun.objects.filter(pk=run.pk).update(status="succeeded", days_done=1)
    assert "hx-trigger" not in staff_client.get(url).content.decode()


def test_the_breakdown_by_model_shows_catalog_names_with_the_id_on_hover(
    customer_client, dynamodb, customer
):
    haiku = "anthropic.claude-3-haiku-20240307-v1:0"
    usage_day_replace(
        day=DAY,
        engine="duckdb",
        rows=[(str(customer.pk), haiku, "app", "", "", 3, 300, 30, 0, 0)],
    )
    body = customer_client.get(
        reverse("customer:usage_overview"), {"start": "2026-11-01", "end": "2026-11-30"}
    ).content.decode()
    assert f'<span class="model" title="{haiku}">Claude 3 Haiku</span>' in body
    by_app = customer_client.get(
        reverse("customer:usage_overview"),
        {"start": "2026-11-01", "end": "2026-11-30", "by": "application_id"},
    ).content.decode()
    assert '<span class="mono">app</span>' in by_app
