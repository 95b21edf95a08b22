"""Pages and emails show dates in the one format of core/formats ("25 Nov 2026"), never as
ISO text (2026-11-25) a person has to decode. Values in attributes (href, value, datetime,
title) and in scripts (chart data) may stay ISO: only visible text is read."""

import datetime as dt
import re
from html.parser import HTMLParser

import pytest
from django.core import mail
from django.urls import reverse

from billing.models import Invoice
from usage.models import Alert, CustomerUsageSettings, UsageDaily
from usage.notifications import alerts_deliver
from usage.services import utc_today
from usage.summaries import summaries_send

pytestmark = pytest.mark.django_db

ISO_DAY = re.compile(r"\b\d{4}-\d{2}(?:-\d{2})?\b")


class _VisibleText(HTMLParser):
    def __init__(self):
        super().__init__()
        self.hidden = 0
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in ("script", "style", "textarea"):
            self.hidden += 1

    def handle_endtag(self, tag):
        if tag in ("script", "style", "textarea"):
            self.hidden -= 1

    def handle_data(self, data):
        if not self.hidden:
            self.parts.append(data)


def _iso_dates_shown(html: str) -> list[str]:
    parser = _VisibleText()
    parser.feed(html)
    text = " ".join(parser.parts)
    return [
        text[max(0, m.start() - 40) : m.end() + 20]
        for m in ISO_DAY.finditer(text)
        if not text[m.start() - 1 : m.start()].isalnum()
    ]


@pytest.fixture
def dated_data(customer, staff_user):
    today = utc_today()
    yesterday = today - dt.timedelta(days=1)
    for day in (yesterday, today):
        UsageDaily.objects.create(customer=customer, day=day, model_id="test.model-a",
                                  requests=1200, input_tokens=150_000)  # fmt: skip
    hour = dt.datetime.combine(yesterday, dt.time(14), tzinfo=dt.UTC)
    alerts = [
        Alert.objects.create(customer=customer, rule="monthly_tokens", threshold=80,
                             period=f"{today:%Y-%m}", value=8000, limit=10000),
        Alert.objects.create(customer=customer, rule="daily_requests", threshold=50,
                             period=today.isoformat(), value=100, limit=200),
        Alert.objects.create(customer=customer, rule="hourly_tokens", threshold=100,
                             period=str(hour)[:13], subject="alice/chatbot/test.model-a",
                             value=50_000, limit=10_000),
        Alert.objects.create(customer=customer, rule="usage_anomaly", threshold=100,
                             period=yesterday.isoformat(), subject="spike", value=900, limit=30),
    ]  # fmt: skip
    Invoice.objects.create(customer=customer, period_start=today.replace(day=1),
                           period_end=today, currency="USD")  # fmt: skip
    return alerts


def test_pages_show_no_iso_dates(aws, client, customer, customer_user, staff_user, dated_data):
    today = utc_today()
    month = today.replace(day=1)
    client.force_login(customer_user)
    pages = {
        "customer:usage_overview": reverse("customer:usage_overview")
        + f"?start={today - dt.timedelta(days=1)}&end={today}",
        "customer:usage_alerts": reverse("customer:usage_alerts"),
    }
    found = {}
    for name, url in pages.items():
        response = client.get(url)
        assert response.status_code == 200, name
        found[name] = _iso_dates_shown(response.content.decode())
    client.force_login(staff_user)
    staff_pages = {
        "staff:usage_customer": reverse("staff:usage_customer", args=[customer.pk]),
        "staff:usage_alerts": reverse("staff:usage_alerts"),
        "staff:usage_dashboard": reverse("staff:usage_dashboard"),
        "staff:billing_customer": reverse("staff:billing_customer", args=[customer.pk]),
        "staff:billing_invoices": reverse("staff:billing_invoices"),
        "staff:billing_runs": reverse("staff:billing_runs"),
    }
    for name, url in staff_pages.items():
        response = client.get(url)
        assert response.status_code == 200, name
        found[name] = _iso_dates_shown(response.content.decode())
    assert {name: shown for name, shown in found.items() if shown} == {}
    assert (
        month.strftime("%b %Y")
        in client.get(staff_pages["staff:billing_invoices"]).content.decode()
    )


def test_alert_and_summary_emails_show_no_iso_dates(aws, customer, dated_data, settings):
    settings.STAFF_ALERT_EMAILS = []
    for alert in dated_data:  # one email per alert: the single-alert email of each rule
        alerts_deliver(alert_ids=[alert.pk])
    CustomerUsageSettings.objects.update_or_create(
        customer=customer, defaults={"summary_frequency": "monthly"}
    )
    summaries_send(frequency="monthly", today=utc_today().replace(day=1) + dt.timedelta(days=40))
    assert len(mail.outbox) == len(dated_data) + 1
    for message in mail.outbox:
        ((html, _),) = message.alternatives
        shown = {
            "subject": ISO_DAY.findall(message.subject),
            "text": ISO_DAY.findall(message.body),
            "html": _iso_dates_shown(html),
        }
        assert shown == {"subject": [], "text": [], "html": []}, message.subject
    hourly = next(m for m in mail.outbox if "one hour" in m.subject)
    assert "14:00 UTC" in hourly.body
