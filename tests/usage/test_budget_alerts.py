"""This month's spend (the MONTH item's spend_micros) on the pages, and the monthly budget
alerts: once per threshold and month, money amounts in the email, webhook and API."""

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse

from proxy import contract
from usage import counters
from usage.alerts import alerts_check
from usage.duckdb_engine import DuckDBEngine
from usage.models import Alert, CustomerUsageSettings
from usage.notifications import alert_deliver, alert_payload
from usage.selectors import realtime_usage
from usage.services import utc_today

from .conftest import put_counter

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 11, 23, 14, 30, tzinfo=dt.UTC)


@pytest.fixture
def budgeted(customer):
    customer.monthly_budget = Decimal("50.00")
    customer.save()
    return customer


def _spend(client, customer, micros, month="2026-11"):
    """The customer's MONTH item as the proxy writes it: requests and the money held."""
    customer_id = getattr(customer, "pk", customer)
    put_counter(client, customer_id, f"MONTH#{month}", requests=7, spend_micros=micros)


def _check(client, now=NOW):
    return alerts_check(now=now, client=client, engine=DuckDBEngine())


# --- reading the spend ------------------------------------------------------------------------


def test_counters_read_spend_micros(dynamodb):
    _spend(dynamodb, "c1", 12_340_000)
    put_counter(dynamodb, "c2", "MONTH#2026-11", requests=1)  # no money held yet
    keys = [("CUST#c1", "MONTH#2026-11"), ("CUST#c2", "MONTH#2026-11")]
    totals = counters.read_counters(keys, client=dynamodb)
    assert totals[keys[0]].spend_micros == 12_340_000 and totals[keys[0]].requests == 7
    assert totals[keys[1]].spend_micros == 0


def test_usage_snapshot_carries_the_months_spend(dynamodb):
    _spend(dynamodb, "c1", 987_654_321)
    put_counter(dynamodb, "c1", "DAY#2026-11-23", requests=2)
    snapshot = contract.get_usage_snapshot(dynamodb, "c1", dt.date(2026, 11, 23))
    assert snapshot["month"][contract.SPEND_MICROS] == 987_654_321
    assert contract.SPEND_MICROS not in snapshot["day"]
    live = counters.customer_snapshot("c1", today=dt.date(2026, 11, 23), client=dynamodb)
    assert live["month"].spend_micros == 987_654_321


def test_realtime_usage_gives_spend_as_decimal_and_percent(dynamodb, budgeted):
    _spend(dynamodb, budgeted, 39_999_999)
    live = realtime_usage(customer=budgeted, today=dt.date(2026, 11, 23), client=dynamodb)
    assert live["month_spend"] == Decimal("39.999999")
    assert isinstance(live["month_spend"], Decimal)
    assert live["budget_percent"] == 79  # rounded down: 80 % is not reached yet
    assert live["monthly_budget"] == Decimal("50.00")


def test_the_customers_usage_page_shows_spend_and_budget(customer_client, dynamodb, budgeted):
    _spend(dynamodb, budgeted, 40_000_000, month=f"{utc_today():%Y-%m}")
    body = customer_client.get(reverse("customer:usage_overview")).content.decode()
    assert "Spend this month" in body
    assert "40.00 USD" in body and "80% of the 50.00 USD monthly budget" in body


def test_the_staff_usage_page_shows_spend_without_a_budget(staff_client, dynamodb, customer):
    _spend(dynamodb, customer, 1_234_565_000, month=f"{utc_today():%Y-%m}")
    body = staff_client.get(reverse("staff:usage_customer", args=[customer.pk])).content.decode()
    assert "1,234.57 USD" in body and "no monthly budget" in body
    assert "Monthly budget: none" in body


# --- alerts -------------------------------------------------------------------------------------


def test_budget_crossings_alert_once_each_with_money_in_the_email(
    dynamodb, budgeted, settings, django_capture_on_commit_callbacks
):
    settings.STAFF_ALERT_EMAILS = ["ops@example.com"]
    _spend(dynamodb, budgeted, 24_999_999)  # just below 50 %
    with django_capture_on_commit_callbacks(execute=True):
        assert _check(dynamodb) == 0

    _spend(dynamodb, budgeted, 40_000_000)  # exactly 80 %: 50 and 80 cross together
    with django_capture_on_commit_callbacks(execute=True):
        assert _check(dynamodb) == 2
        assert _check(dynamodb, NOW + dt.timedelta(minutes=5)) == 0  # nothing twice
    assert sorted(Alert.objects.values_list("threshold", flat=True)) == [50, 80]
    alert = Alert.objects.get(threshold=80)
    assert (alert.rule, alert.period, alert.value, alert.limit) == (
        "monthly_budget",
        "2026-11",
        40_000_000,
        50_000_000,
    )
    (message,) = mail.outbox  # 50 and 80 % crossed in one check: one email lists both
    assert message.subject == "[Usage alert] Acme Analytics: 2 alert thresholds crossed"
    for percent in (50, 80):
        line = f"- {percent}% of the monthly budget: 40.00 USD of 50.00 USD for Nov 2026 (80%)"
        assert line in message.body
    assert "refused" not in message.body
    assert message.bcc == ["ops@example.com"]
    html = message.alternatives[0][0]
    assert "<li>80% of the monthly budget: 40.00 USD of 50.00 USD for Nov 2026 (80%)</li>" in html

    _spend(dynamodb, budgeted, 50_000_001)
    with django_capture_on_commit_callbacks(execute=True):
        assert _check(dynamodb) == 1
    full = next(m for m in mail.outbox if "(100%)" in m.subject)  # alone: its own email
    assert full.subject == (
        "[Usage alert] Acme Analytics reached or holds in flight 50.00 USD of its 50.00 USD "
        "monthly budget (100%)"
    )
    assert "spent 50.00 USD of the 50.00 USD monthly budget for Nov 2026 (100 %)" in full.body
    assert "The budget is reached, or held by calls in flight" in full.body
    assert "further calls are refused, until the budget resets on the 1st" in full.body
    assert "<strong>50.00 USD</strong> of the 50.00 USD monthly budget" in full.alternatives[0][0]
    assert len(mail.outbox) == 2

    # a new month: the same thresholds again, once
    put_counter(dynamodb, budgeted.pk, "MONTH#2026-12", requests=1, spend_micros=30_000_000)
    with django_capture_on_commit_callbacks(execute=True):
        assert _check(dynamodb, dt.datetime(2026, 12, 1, 0, 5, tzinfo=dt.UTC)) == 1
    assert Alert.objects.filter(period="2026-12").get().threshold == 50


def test_budget_thresholds_are_configurable(dynamodb, budgeted):
    CustomerUsageSettings.objects.create(customer=budgeted, monthly_budget_percents=[90])
    _spend(dynamodb, budgeted, 44_000_000)  # 88 %
    assert _check(dynamodb) == 0
    _spend(dynamodb, budgeted, 45_000_000)  # 90 %
    assert _check(dynamodb) == 1
    CustomerUsageSettings.objects.filter(customer=budgeted).update(monthly_budget_percents=[])
    _spend(dynamodb, budgeted, 60_000_000)
    assert _check(dynamodb) == 0  # an empty list turns the rule off


def test_customers_without_a_budget_get_no_budget_alerts(dynamodb, customer):
    _spend(dynamodb, customer, 10**15)
    assert _check(dynamodb) == 0


def test_a_budget_alone_is_enough_to_read_the_counters(dynamodb, budgeted):
    # no quota, no daily limit: the customer's MONTH item is still read in the batch
    assert budgeted.monthly_token_quota is None and budgeted.daily_request_limit is None
    calls = []
    dynamodb.meta.events.register(
        "before-parameter-build.dynamodb.BatchGetItem", lambda **kw: calls.append(kw)
    )
    _spend(dynamodb, budgeted, 25_000_000)
    assert _check(dynamodb) == 1 and len(calls) == 1


def test_webhook_and_api_carry_the_amounts(dynamodb, budgeted, rw_api):
    CustomerUsageSettings.objects.create(
        customer=budgeted, webhook_url="https://127.0.0.1:9/u", webhook_secret="s"
    )
    _spend(dynamodb, budgeted, 40_123_456)
    _check(dynamodb)
    alert = Alert.objects.get(threshold=80)
    payload = alert_payload(alert)
    assert payload["rule"] == "monthly_budget" and payload["currency"] == "USD"
    assert (payload["value"], payload["limit"]) == (40_123_456, 50_000_000)
    assert (payload["value_amount"], payload["limit_amount"]) == ("40.123456", "50.000000")
    sent = []

    class Response:
        status = 204

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    def opener(request, timeout):
        sent.append(json.loads(request.data))
        return Response()

    assert alert_deliver(alert_id=alert.pk, opener=opener)
    assert sent[0]["value_amount"] == "40.123456"
    rows = rw_api.get("/api/v1/alerts/", {"rule": "monthly_budget"}).json()["results"]
    row = next(r for r in rows if r["threshold"] == 80)
    assert row["currency"] == "USD" and row["value_amount"] == "40.123456"
    assert row["limit_amount"] == "50.000000"


def test_alert_pages_show_money(staff_client, budgeted):
    Alert.objects.create(
        customer=budgeted,
        rule="monthly_budget",
        threshold=80,
        period="2026-11",
        value=40_000_000,
        limit=50_000_000,
    )
    body = staff_client.get(reverse("staff:usage_alerts")).content.decode()
    assert "Monthly budget" in body and "40.00 USD" in body and "50.00 USD" in body
    assert "40,000,000" not in body


def test_staff_and_customers_edit_budget_thresholds(staff_client, customer, customer_user):
    url = reverse("staff:usage_customer_settings", args=[customer.pk])
    bad = staff_client.post(url, {"monthly_budget_percents": "50, lots"})
    assert "whole percents" in bad.content.decode()
    staff_client.post(url, {"monthly_budget_percents": "95, 75", "monthly_token_percents": "50"})
    saved = CustomerUsageSettings.objects.get(customer=customer)
    assert saved.monthly_budget_percents == [75, 95]
    staff_client.force_login(customer_user)
    response = staff_client.post(
        reverse("customer:customer_account"),
        {"action": "alerts", "monthly_budget_percents": "60", "monthly_token_percents": "80"},
    )
    assert response.status_code == 302
    saved.refresh_from_db()
    assert saved.monthly_budget_percents == [60]


@pytest.fixture
def rw_api(staff_user):
    from rest_framework.test import APIClient

    from core.models import ApiKey
    from portal.api.keys import api_key_create

    issued = api_key_create(name="t", scope=ApiKey.Scope.READ_WRITE, created_by=staff_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return client


def test_alert_settings_api_reads_and_writes_budget_percents(rw_api, customer):
    url = f"/api/v1/customers/{customer.pk}/alert-settings/"
    assert rw_api.get(url).json()["monthly_budget_percents"] == [50, 80, 100]
    response = rw_api.patch(url, {"monthly_budget_percents": [90, 70]}, format="json")
    assert response.status_code == 200, response.json()
    assert response.json()["monthly_budget_percents"] == [70, 90]
    assert response.json()["monthly_token_percents"] == [50, 80, 100]  # not sent: kept
    refused = rw_api.patch(url, {"monthly_budget_percents": [0]}, format="json")
    assert refused.status_code == 400


# --- a token's own monthly budget ---------------------------------------------------------------


def _token_spend(client, token, micros, month="2026-11"):
    """The token's MONTH item as the proxy keeps it (contract.token_counter_pk)."""
    item = {"pk": {"S": contract.token_counter_pk(str(token.pk))}, "sk": {"S": f"MONTH#{month}"}}
    item.update({"requests": {"N": "3"}, contract.SPEND_MICROS: {"N": str(micros)}})
    client.put_item(TableName=counters.counters_table_name(), Item=item)


def _named(token) -> str:
    return f"token {token.display_prefix}…wxyz (id {token.pk})"


def _token(customer, budget, **fields):
    from customers.models import Token

    return Token.objects.create(
        customer=customer,
        label=fields.pop("label", "reports"),
        token_hash=fields.pop("token_hash", f"{id(fields):064x}"[-64:]),
        display_prefix=fields.pop("display_prefix", "bup_ab12"),
        last4=fields.pop("last4", "wxyz"),
        monthly_budget=Decimal(budget) if budget is not None else None,
        **fields,
    )


def test_a_tokens_own_budget_alerts_once_per_threshold_token_and_month(
    dynamodb, customer, django_capture_on_commit_callbacks
):
    assert customer.monthly_budget is None  # the token's budget alone is enough
    token = _token(customer, "10.00")
    other = _token(customer, "10.00", token_hash="b" * 64, display_prefix="bup_cd34")
    _token_spend(dynamodb, token, 7_500_000)  # 75 %
    _token_spend(dynamodb, other, 1_000_000)  # 10 %: nothing
    with django_capture_on_commit_callbacks(execute=True):
        assert _check(dynamodb) == 1
        assert _check(dynamodb, NOW + dt.timedelta(minutes=5)) == 0  # nothing twice
    alert = Alert.objects.get()
    assert (alert.rule, alert.threshold, alert.period, alert.subject) == (
        "monthly_budget",
        50,
        "2026-11",
        _named(token),
    )
    assert (alert.value, alert.limit) == (7_500_000, 10_000_000)
    (message,) = mail.outbox
    assert message.subject == (
        f"[Usage alert] Acme Analytics, {_named(token)}, spent 7.50 USD of its 10.00 USD "
        "monthly budget (50%)"
    )
    assert f"The {_named(token)} of Acme Analytics has spent" in message.body
    assert (
        "has spent 7.50 USD of its own 10.00 USD monthly budget for Nov 2026 (75 %)" in message.body
    )
    assert "refused" not in message.body

    _token_spend(dynamodb, token, 10_000_000)  # exactly the budget: 80 and 100 % at once
    _token_spend(dynamodb, other, 8_000_000)  # the other token's 50 and 80 %: its own alerts
    with django_capture_on_commit_callbacks(execute=True):
        assert _check(dynamodb, NOW + dt.timedelta(minutes=10)) == 4
    subjects = set(Alert.objects.values_list("subject", "threshold"))
    assert subjects == {
        (_named(token), 50),
        (_named(token), 80),
        (_named(token), 100),
        (_named(other), 50),
        (_named(other), 80),
    }
    grouped = mail.outbox[1]  # one email for what one check recorded
    assert (
        f"- 100% of the monthly budget of {_named(token)}: 10.00 USD of 10.00 USD for Nov 2026 "
        "(100%), reached or held by calls in flight" in grouped.body
    )
    assert f"- 80% of the monthly budget of {_named(other)}: 8.00 USD" in grouped.body
    assert len(mail.outbox) == 2

    # a new month: the same thresholds again, once per token
    _token_spend(dynamodb, token, 5_000_000, month="2026-12")
    with django_capture_on_commit_callbacks(execute=True):
        assert _check(dynamodb, dt.datetime(2026, 12, 1, 0, 5, tzinfo=dt.UTC)) == 1
    assert Alert.objects.get(period="2026-12").subject == _named(token)


def test_token_and_customer_budgets_alert_apart_and_follow_the_thresholds(dynamodb, budgeted):
    CustomerUsageSettings.objects.create(customer=budgeted, monthly_budget_percents=[90])
    token = _token(budgeted, "1.00")
    _spend(dynamodb, budgeted, 45_000_000)  # the customer's 90 %
    _token_spend(dynamodb, token, 950_000)  # the token's 95 %
    assert _check(dynamodb) == 2
    assert sorted(Alert.objects.values_list("subject", "threshold")) == [
        ("", 90),
        (_named(token), 90),
    ]
    CustomerUsageSettings.objects.filter(customer=budgeted).update(monthly_budget_percents=[])
    _token_spend(dynamodb, token, 5_000_000)
    assert _check(dynamodb) == 0  # an empty list turns the rule off for its tokens too


def test_revoked_tokens_and_tokens_without_a_budget_get_no_budget_alerts(dynamodb, customer):
    from customers.models import Token

    revoked = _token(customer, "1.00", status=Token.Status.REVOKED)
    unbudgeted = _token(customer, None, token_hash="c" * 64)
    _token_spend(dynamodb, revoked, 10**12)
    _token_spend(dynamodb, unbudgeted, 10**12)
    assert _check(dynamodb) == 0


def test_token_budgets_are_read_in_the_same_batch(dynamodb, budgeted):
    calls = []
    dynamodb.meta.events.register(
        "before-parameter-build.dynamodb.BatchGetItem", lambda **kw: calls.append(kw)
    )
    tokens = [_token(budgeted, "1.00", token_hash=f"{n:064x}") for n in range(5)]
    for token in tokens:
        _token_spend(dynamodb, token, 600_000)
    # five tokens' 50 %, one read; the same masked form, five alerts: the id keeps them apart
    assert _check(dynamodb) == 5 and len(calls) == 1


def test_the_100_percent_email_is_true_when_holds_of_calls_in_flight_reach_the_budget(
    dynamodb, customer, django_capture_on_commit_callbacks
):
    """The spend counter includes the holds of calls in flight (the most each can cost): a
    counter at the budget may settle below it once the calls report. The 100 % email says
    so rather than claiming the money was spent; it is sent once, and not again when the
    holds settle below and later reach the budget in the same month."""
    CustomerUsageSettings.objects.create(customer=customer, monthly_budget_percents=[100])
    token = _token(customer, "1.00")
    _token_spend(dynamodb, token, 1_020_000)  # five calls in flight, 0.204 held each
    with django_capture_on_commit_callbacks(execute=True):
        assert _check(dynamodb) == 1
    (message,) = mail.outbox
    assert message.subject == (
        f"[Usage alert] Acme Analytics, {_named(token)}, reached or holds in flight "
        "1.02 USD of its 1.00 USD monthly budget (100%)"
    )
    assert "has spent" in message.body and "calls in progress included" in message.body
    assert "The budget is reached, or held by calls in flight" in message.body
    assert "may then settle below" in message.body
    assert "further calls with this token are refused" in message.body
    assert "held by calls in flight" in message.alternatives[0][0]

    _token_spend(dynamodb, token, 700_000)  # the five settled at 0.14 each: under the budget
    with django_capture_on_commit_callbacks(execute=True):
        assert _check(dynamodb, NOW + dt.timedelta(minutes=5)) == 0
    _token_spend(dynamodb, token, 1_000_000)  # reached again, for real, in the same month
    with django_capture_on_commit_callbacks(execute=True):
        assert _check(dynamodb, NOW + dt.timedelta(minutes=10)) == 0
    assert len(mail.outbox) == 1  # one email per crossing, token and month
