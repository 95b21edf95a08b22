"""Threshold alerts: recorded and mailed exactly once per period, emails and webhook."""

import datetime as dt
import hashlib
import hmac
import json
import threading

import pytest
from django.core import mail
from django.db import connection

from usage.alerts import alerts_check
from usage.duckdb_engine import DuckDBEngine
from usage.models import Alert, CustomerUsageSettings
from usage.notifications import alert_deliver

from .conftest import put_counter
from .events import make_event, write_events

NOW = dt.datetime(2026, 11, 23, 14, 30, tzinfo=dt.UTC)


@pytest.fixture
def limited(customer):
    customer.monthly_token_quota = 1000
    customer.daily_request_limit = 10
    customer.extra_contact_emails = ["cto@acme.example"]
    customer.save()
    return customer


def _usage(client, customer, *, month_tokens=0, day_requests=0):
    """Counters as the proxy writes them for priced calls (held against the quota)."""
    put_counter(
        client, customer.pk, "MONTH#2026-11", requests=1, input_tokens=month_tokens,
        output_tokens=0, quota_tokens=month_tokens,
    )  # fmt: skip
    put_counter(client, customer.pk, "DAY#2026-11-23", requests=day_requests, input_tokens=0)


def test_crossings_are_recorded_and_mailed_together(
    dynamodb, limited, settings, django_capture_on_commit_callbacks
):
    """Three thresholds crossed in one check: three alerts, ONE email listing them."""
    settings.STAFF_ALERT_EMAILS = ["ops@example.com"]
    _usage(dynamodb, limited, month_tokens=850, day_requests=5)

    with django_capture_on_commit_callbacks(execute=True):
        created = alerts_check(now=NOW, client=dynamodb, engine=DuckDBEngine())

    assert created == 3
    keys = set(Alert.objects.values_list("rule", "threshold", "period"))
    assert keys == {
        ("monthly_tokens", 50, "2026-11"),
        ("monthly_tokens", 80, "2026-11"),
        ("daily_requests", 50, "2026-11-23"),
    }
    (message,) = mail.outbox
    assert message.subject == "[Usage alert] Acme Analytics: 3 alert thresholds crossed"
    assert message.to == ["billing@acme.example", "cto@acme.example"]
    assert message.bcc == ["ops@example.com"]
    for line in (
        "- 50% of the daily request limit: 5 of 10 requests on 23 Nov 2026 (UTC) (50%)",
        "- 50% of the monthly token quota: 850 of 1,000 tokens for Nov 2026 (85%)",
        "- 80% of the monthly token quota: 850 of 1,000 tokens for Nov 2026 (85%)",
    ):
        assert line in message.body
    assert "provisional" in message.body and "may be refused" not in message.body
    html = message.alternatives[0][0]
    assert "<li>80% of the monthly token quota: 850 of 1,000 tokens for Nov 2026 (85%)</li>" in html
    assert "http://127.0.0.1:8000/app/usage/" in message.body
    assert all(a.emailed_at for a in Alert.objects.all())


def test_a_single_crossing_gets_its_own_email(
    dynamodb, limited, settings, django_capture_on_commit_callbacks
):
    settings.STAFF_ALERT_EMAILS = ["ops@example.com"]
    CustomerUsageSettings.objects.create(
        customer=limited, monthly_token_percents=[80], daily_request_percents=[]
    )
    _usage(dynamodb, limited, month_tokens=850, day_requests=5)
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_check(now=NOW, client=dynamodb, engine=DuckDBEngine()) == 1
    (message,) = mail.outbox
    assert message.subject == "[Usage alert] Acme Analytics reached 80% of its monthly token quota"
    assert "used 850 of its 1,000 tokens for Nov 2026 (85%)" in message.body
    assert "<strong>850</strong> of its 1,000 tokens" in message.alternatives[0][0]
    assert message.bcc == ["ops@example.com"]


def test_a_second_check_sends_nothing_new(dynamodb, limited, django_capture_on_commit_callbacks):
    _usage(dynamodb, limited, month_tokens=1200)
    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_check(now=NOW, client=dynamodb, engine=DuckDBEngine()) == 3
    with django_capture_on_commit_callbacks(execute=True):
        assert (
            alerts_check(now=NOW + dt.timedelta(minutes=5), client=dynamodb, engine=DuckDBEngine())
            == 0
        )
    (message,) = mail.outbox
    assert "100% of the monthly token quota: 1,200 of 1,000 tokens" in message.body
    assert "further requests may be refused" in message.body


def test_next_month_alerts_again(dynamodb, limited, django_capture_on_commit_callbacks):
    _usage(dynamodb, limited, month_tokens=600)
    alerts_check(now=NOW, client=dynamodb, engine=DuckDBEngine())
    put_counter(
        dynamodb, limited.pk, "MONTH#2026-12", requests=1, input_tokens=600, quota_tokens=600
    )
    alerts_check(
        now=dt.datetime(2026, 12, 1, 0, 5, tzinfo=dt.UTC), client=dynamodb, engine=DuckDBEngine()
    )
    assert sorted(Alert.objects.values_list("period", flat=True)) == ["2026-11", "2026-12"]


def test_staff_edited_thresholds_are_used(dynamodb, limited):
    CustomerUsageSettings.objects.create(
        customer=limited, monthly_token_percents=[90], daily_request_percents=[], notify_staff=False
    )
    _usage(dynamodb, limited, month_tokens=850, day_requests=10)
    assert alerts_check(now=NOW, client=dynamodb, engine=DuckDBEngine()) == 0
    _usage(dynamodb, limited, month_tokens=950, day_requests=10)
    assert alerts_check(now=NOW, client=dynamodb, engine=DuckDBEngine()) == 1


def test_the_monthly_quota_counts_what_the_proxy_counts(dynamodb, limited):
    # quota_tokens (on MONTH#) leaves out free models; the proxy enforces the quota on it.
    put_counter(
        dynamodb,
        limited.pk,
        "MONTH#2026-11",
        requests=9,
        input_tokens=900,
        output_tokens=50,
        quota_tokens=400,
    )
    assert alerts_check(now=NOW, client=dynamodb, engine=DuckDBEngine()) == 0
    put_counter(
        dynamodb,
        limited.pk,
        "MONTH#2026-11",
        requests=9,
        input_tokens=900,
        output_tokens=50,
        quota_tokens=500,
    )
    assert alerts_check(now=NOW, client=dynamodb, engine=DuckDBEngine()) == 1


def test_free_sandbox_tokens_never_count_against_the_quota(dynamodb, limited):
    # A month of sandbox calls only: the proxy never wrote quota_tokens, and never refuses.
    put_counter(dynamodb, limited.pk, "MONTH#2026-11", requests=50, input_tokens=5000)
    assert alerts_check(now=NOW, client=dynamodb, engine=DuckDBEngine()) == 0


def test_customers_without_limits_get_no_quota_alerts(dynamodb, customer):
    put_counter(dynamodb, customer.pk, "MONTH#2026-11", requests=10**6, input_tokens=10**9)
    assert alerts_check(now=NOW, client=dynamodb, engine=DuckDBEngine()) == 0


def test_hourly_rule_per_user_application_and_model(
    dynamodb, customer, events_dir, django_capture_on_commit_callbacks
):
    CustomerUsageSettings.objects.create(customer=customer, hourly_token_threshold=10_000)
    this_hour = NOW.replace(minute=5)
    events = [
        make_event(
            customer.pk, when=this_hour, user_id="alice", input_tokens=4000, output_tokens=1000
        )
        for _ in range(2)
    ]
    events += [make_event(customer.pk, when=this_hour, user_id="bob", input_tokens=4000)]
    events += [
        make_event(
            customer.pk, when=this_hour - dt.timedelta(hours=2), user_id="bob", input_tokens=9000
        )
    ]  # an older hour: not counted
    write_events(events_dir, events)

    with django_capture_on_commit_callbacks(execute=True):
        assert alerts_check(now=NOW, client=dynamodb) == 1
        assert alerts_check(now=NOW, client=dynamodb) == 0

    alert = Alert.objects.get()
    assert (alert.rule, alert.threshold, alert.period, alert.value) == (
        "hourly_tokens",
        10_000,
        "2026-11-23T14",
        10_000,
    )
    assert alert.subject == (
        "user=alice application=chatbot model=anthropic.claude-3-haiku-20240307-v1:0"
    )
    assert len(mail.outbox) == 1
    assert "10,000 tokens in one hour" in mail.outbox[0].subject


def test_failed_email_is_recorded_and_retried(dynamodb, limited, monkeypatch):
    _usage(dynamodb, limited, month_tokens=500)
    alerts_check(now=NOW, client=dynamodb, engine=DuckDBEngine())
    alert = Alert.objects.get()

    def broken(**kwargs):
        raise OSError("SMTP down")

    monkeypatch.setattr("usage.notifications.send_templated", broken)
    assert alert_deliver(alert_id=alert.pk) is False
    alert.refresh_from_db()
    assert (alert.emailed_at, alert.email_error) == (None, "SMTP down")
    monkeypatch.undo()
    assert alert_deliver(alert_id=alert.pk) is True
    assert alert_deliver(alert_id=alert.pk) is False  # never twice
    assert len(mail.outbox) == 1


def test_webhook_payload_is_signed(dynamodb, limited):
    CustomerUsageSettings.objects.create(
        customer=limited, webhook_url="https://127.0.0.1:9/u", webhook_secret="s3cret"
    )
    _usage(dynamodb, limited, month_tokens=500)
    alerts_check(now=NOW, client=dynamodb, engine=DuckDBEngine())
    sent = []

    class Response:
        status = 204

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def opener(request, timeout):
        sent.append(request)
        return Response()

    assert alert_deliver(alert_id=Alert.objects.get().pk, opener=opener)

    request = sent[0]
    body = request.data
    timestamp = request.get_header("X-portal-timestamp")
    expected = hmac.new(b"s3cret", timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    assert request.get_header("X-portal-signature") == f"sha256={expected}"
    payload = json.loads(body)
    assert payload["rule"] == "monthly_tokens" and payload["threshold"] == 50
    assert payload["customer_id"] == str(limited.pk)
    assert Alert.objects.get().webhook_status == "HTTP 204"


def test_a_failed_webhook_never_logs_or_records_its_secret_url(dynamodb, limited, caplog):
    """Webhook URLs carry their credential (Slack: /services/T../B../<secret>)."""
    url = "https://127.0.0.1:9/services/T0001/B0002/hush-hush-0123456789?sig=also-hush"
    CustomerUsageSettings.objects.create(customer=limited, webhook_url=url, webhook_secret="s")
    _usage(dynamodb, limited, month_tokens=500)
    alerts_check(now=NOW, client=dynamodb, engine=DuckDBEngine())

    def opener(request, timeout):
        raise ValueError(f"refused {request.full_url}")  # exception texts may hold the URL

    assert alert_deliver(alert_id=Alert.objects.get().pk, opener=opener)
    status = Alert.objects.get().webhook_status
    assert status.startswith("failed: refused https://127.0.0.1:9/")
    assert "webhook https://127.0.0.1:9/" in caplog.text
    for secret in ("hush-hush", "also-hush", "B0002"):
        assert secret not in caplog.text and secret not in status


@pytest.mark.skipif("connection.vendor != 'postgresql'", reason="needs PostgreSQL (threads)")
@pytest.mark.django_db(transaction=True)
def test_concurrent_checks_alert_exactly_once(dynamodb, limited):
    _usage(dynamodb, limited, month_tokens=1000, day_requests=10)
    barrier = threading.Barrier(6)
    errors = []

    def check():
        try:
            barrier.wait()
            alerts_check(now=NOW, client=dynamodb, engine=DuckDBEngine())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=check) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert not errors
    assert Alert.objects.count() == 6  # 3 monthly + 3 daily thresholds, once each
    # However the six checks shared the crossings out, each is in exactly one email.
    listed = []
    for message in mail.outbox:
        listed += [line for line in message.body.splitlines() if line.startswith("- ")]
        if "reached" in message.subject:  # an email of a single alert
            listed.append(message.subject)
    assert len(listed) == 6 and len(set(listed)) == 6
    assert all(a.emailed_at for a in Alert.objects.all())
