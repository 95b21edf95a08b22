"""Customer site: home, usage charts, account; bounded queries; only their own data."""

import datetime as dt
import json
import re
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse

from billing.models import Invoice
from billing.services import credit_grant, invoice_issue, invoice_line_add
from core.models import User
from customers import services
from proxy import contract
from usage import counters
from usage.models import Alert, CustomerUsageSettings, UsageDaily
from usage.services import utc_today

pytestmark = pytest.mark.django_db


def _figure(response, chart_id):
    html = response.content.decode()
    marker = f'<script id="{chart_id}-data" type="application/json">'
    start = html.index(marker) + len(marker)
    return json.loads(html[start : html.index("</script>", start)])


def _range(days=3):
    today = utc_today()
    return f"?start={today - dt.timedelta(days=days)}&end={today - dt.timedelta(days=1)}"


def test_usage_page_has_charts_of_own_usage_with_tables(
    aws, customer_client, customer, other_customer, make_usage
):
    make_usage([customer], days=3)
    make_usage([other_customer], days=3, extra_apps=5)
    response = customer_client.get(reverse("customer:usage_overview") + _range())
    assert response.status_code == 200
    stacked = _figure(response, "daily-tokens-by-model")
    assert stacked["layout"]["barmode"] == "stack"
    assert len(stacked["data"][0]["x"]) == 3
    # per day: model-a = 3 apps x 1000 in + (500 + 1000 + 1500) out = 6000 tokens
    assert {t["name"]: t["y"][0] for t in stacked["data"]}["test.model-a"] == 6000
    requests = _figure(response, "requests-per-day")
    assert requests["data"][0]["y"] == [90, 90, 90]  # 3 models x 3 apps x 10 requests
    apps = _figure(response, "tokens-by-application")
    assert set(apps["data"][0]["y"]) == {"chatbot", "search", "(none)"}  # not the other's apps
    centers = _figure(response, "tokens-by-cost-center")
    assert set(centers["data"][0]["y"]) == {"sales", "support", "(none)"}
    html = response.content.decode()
    assert html.count("Data table") == 4
    assert "vendor/plotly/plotly.min.js" in html


def test_usage_page_without_usage_says_so(aws, customer_client):
    response = customer_client.get(reverse("customer:usage_overview"))
    assert "No data for this period." in response.content.decode()


def test_home_shows_quota_progress_cost_credit_and_recent_alerts(
    aws, customer_client, customer, other_customer
):
    customer.monthly_token_quota = 1000
    customer.save()
    Alert.objects.create(customer=customer, rule="monthly_tokens", threshold=80,
                         period="2026-11", value=800, limit=1000)  # fmt: skip
    Alert.objects.create(customer=other_customer, rule="daily_requests", threshold=50,
                         period="2026-11-02", value=5, limit=10)  # fmt: skip
    html = customer_client.get(reverse("customer:home")).content.decode()
    assert "Recent alerts" in html and "Monthly token quota" in html
    assert "Daily request limit" not in html
    assert 'role="progressbar"' in html
    assert "Prepaid credit" in html and "Cost so far" in html


def _progress(html: str, label: str) -> int:
    match = re.search(rf'aria-valuenow="(\d+)" aria-label="{label}"', html)
    assert match, f"no progress bar {label!r}"
    return int(match.group(1))


def test_home_figures_are_this_customers_counters_cost_and_credit(
    aws, customer_client, customer, other_customer, prices
):
    """The bars show today's requests and this month's tokens against the limits, from the
    proxy's counters; cost so far and the prepaid balance are this customer's."""
    customer.daily_request_limit, customer.monthly_token_quota = 200, 10_000
    customer.save()
    dynamodb, today = aws.client("dynamodb"), utc_today()
    for who, requests, tokens in ((customer, 50, 2_500), (other_customer, 190, 9_900)):
        for sk, values in (
            (counters.day_sk(today), {"requests": requests, "input_tokens": 10}),
            (
                counters.month_sk(today),
                # priced calls: the proxy holds them against the quota in `quota_tokens`
                {"requests": requests, "input_tokens": tokens, contract.QUOTA_TOKENS: tokens},
            ),
        ):
            item = {"pk": {"S": counters.customer_pk(who.pk)}, "sk": {"S": sk}}
            item.update({k: {"N": str(v)} for k, v in values.items()})
            dynamodb.put_item(TableName=counters.counters_table_name(), Item=item)
    credit_grant(customer=customer, amount=Decimal("25.00"))
    credit_grant(customer=other_customer, amount=Decimal("999.00"))
    yesterday = today - dt.timedelta(days=1)
    if yesterday.month == today.month:  # billed usage of this month: 1M input tokens of model A
        UsageDaily.objects.create(customer=customer, day=yesterday, model_id="test.model-a",
                                  requests=1, input_tokens=1_000_000)  # fmt: skip
    html = customer_client.get(reverse("customer:home")).content.decode()
    assert _progress(html, "Daily request limit used") == 25
    assert _progress(html, "Monthly token quota used") == 25
    assert "25% of 200 per day" in html and "25% of 10,000 per month" in html
    assert "25.00 USD" in html and "999.00" not in html
    if yesterday.month == today.month:  # 1M input tokens x 0.003 per 1k (list price)
        assert re.search(r'Cost so far \(\w+\)</div><div class="card-value">3.00 USD', html)


def test_account_lists_users_and_invites_one(
    customer_client, customer, customer_user, other_customer, django_capture_on_commit_callbacks
):
    User.objects.create_user("someone@globex.example", "x", customer=other_customer)
    response = customer_client.get(reverse("customer:customer_account"))
    html = response.content.decode()
    assert customer_user.email in html and "someone@globex.example" not in html
    with django_capture_on_commit_callbacks(execute=True):
        response = customer_client.post(
            reverse("customer:customer_account"),
            {"action": "invite", "invite-email": "New@Acme.example", "invite-full_name": "New"},
        )
    assert response.status_code == 302
    invited = User.objects.get(email="new@acme.example")
    assert invited.customer == customer and not invited.has_usable_password()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new@acme.example"]
    again = customer_client.post(
        reverse("customer:customer_account"),
        {"action": "invite", "invite-email": "new@acme.example"},
    )
    assert again.status_code == 400


def test_account_saves_alert_thresholds_and_summary_but_not_staff_settings(
    customer_client, customer
):
    response = customer_client.post(
        reverse("customer:customer_account"),
        {
            "action": "alerts",
            "monthly_token_percents": "75, 90",
            "daily_request_percents": "",
            "summary_frequency": "weekly",
            "webhook_url": "https://evil.example/hook",
            "notify_staff": "",
            "hourly_token_threshold": "1",
        },
    )
    assert response.status_code == 302
    options = CustomerUsageSettings.objects.get(customer=customer)
    assert options.monthly_token_percents == [75, 90]
    assert options.daily_request_percents == []
    assert options.summary_frequency == "weekly"
    assert options.webhook_url == "" and options.notify_staff is True
    assert options.hourly_token_threshold is None
    bad = customer_client.post(
        reverse("customer:customer_account"),
        {"action": "alerts", "monthly_token_percents": "lots", "summary_frequency": ""},
    )
    assert bad.status_code == 400


def _issued_invoice(customer, month=10):
    invoice = Invoice.objects.create(
        customer=customer,
        period_start=dt.date(2025, month, 1),
        period_end=dt.date(2025, month, 28),
    )
    invoice_line_add(invoice=invoice, description="Usage", amount=Decimal("1.00"))
    return invoice_issue(invoice=invoice)


def test_every_customer_url_with_an_id_is_404_for_another_customers_objects(
    customer_client, other_customer
):
    """Walk the /app/ URL conf: each route with an id is tried with the other customer's."""
    from django.urls import get_resolver

    from tests.test_access import _walk

    token = services.token_create(customer=other_customer, label="theirs").token
    invoice = _issued_invoice(other_customer)
    ids = {"token_id": token.pk, "invoice_id": invoice.pk}
    routes = [r for r in _walk(get_resolver().url_patterns) if r.startswith("app/") and "<" in r]
    assert routes
    for route in routes:
        url = "/" + route
        for name, value in ids.items():
            url = url.replace(f"<uuid:{name}>", str(value))
        assert "<" not in url, f"{route}: add its id kind to this test"
        method = (
            customer_client.post
            if any(action in url for action in ("/rotate/", "/revoke/", "/reveal/"))
            else customer_client.get
        )
        assert method(url).status_code == 404, url
    token.refresh_from_db()
    assert token.status == "active"


PAGES = [
    "customer:home",
    "customer:usage_overview",
    "customer:customer_tokens",
    "customer:customer_account",
    "customer:invoice_list",
    "customer:billing_overview",
    "customer:usage_alerts",
    "customer:usage_summaries",
]


@pytest.mark.parametrize("name", PAGES)
def test_customer_pages_query_count_does_not_grow(
    name, aws, customer_client, customer, make_usage, prices, django_assert_max_num_queries
):
    url = reverse(name) + (_range(30) if name == "customer:usage_overview" else "")
    make_usage([customer], days=2)
    services.token_create(customer=customer, label="one")
    _issued_invoice(customer, month=12)
    Alert.objects.create(customer=customer, rule="daily_requests", threshold=50,
                         period="2026-11-01", value=1, limit=2)  # fmt: skip
    from core import model_names

    model_names.refresh()  # the catalog of display names is cached: one query per 5 minutes
    with django_assert_max_num_queries(40) as small:
        assert customer_client.get(url).status_code == 200
    from usage.models import UsageDaily

    UsageDaily.objects.all().delete()
    make_usage([customer], days=25, extra_apps=20)
    for n in range(15):
        services.token_create(customer=customer, label=f"t{n}")
        Alert.objects.create(customer=customer, rule="monthly_tokens", threshold=n + 1,
                             period="2026-11", value=1, limit=1)  # fmt: skip
        User.objects.create_user(f"u{n}@acme.example", "x", customer=customer)
        if n < 11:
            _issued_invoice(customer, month=n + 1)
    with django_assert_max_num_queries(len(small.captured_queries)) as large:
        assert customer_client.get(url).status_code == 200
    print(f"{name}: {len(small.captured_queries)} queries small, {len(large)} large")
    assert len(large) == len(small.captured_queries)


def test_invoice_detail_query_count_does_not_grow_with_lines(
    customer_client, customer, django_assert_max_num_queries
):
    credit_grant(customer=customer, amount=Decimal("500.00"))
    counts = []
    for month, lines in ((10, 1), (11, 30)):
        invoice = Invoice.objects.create(
            customer=customer,
            period_start=dt.date(2025, month, 1),
            period_end=dt.date(2025, month, 28),
        )
        for n in range(lines):
            invoice_line_add(invoice=invoice, description=f"Line {n}", amount=Decimal("1.00"))
        invoice_issue(invoice=invoice)
        url = reverse("customer:invoice_detail", args=[invoice.pk])
        with django_assert_max_num_queries(20) as ctx:
            response = customer_client.get(url)
        assert response.status_code == 200 and f"Line {lines - 1}" in response.content.decode()
        counts.append(len(ctx.captured_queries))
    print(f"customer:invoice_detail: {counts[0]} queries (1 line), {counts[1]} (30 lines)")
    assert counts[1] == counts[0], counts
