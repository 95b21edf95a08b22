"""Every staff and customer page, walked from the URL conf, answers junk without a 500.

Each URL pattern is resolved with real objects (a customer, its user and token, an invoice and
its line, an ingest run, a plan, an API key), then, as the role allowed to use it, sent GETs
with junk query strings and POSTs with empty and junk form data. A new view is covered the day
its URL is added; a converter the walker cannot fill fails the test instead of being skipped.
"""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import URLPattern, URLResolver, get_resolver

from billing.models import Invoice, InvoiceLine, PricingPlan
from customers import services as customer_services
from portal.api.keys import api_key_create
from usage.models import Alert, IngestRun, QuarantinedRow, UsageDifference

pytestmark = pytest.mark.django_db

LONG = "x" * 5000

JUNK_QUERIES = [
    {"start": "2026-02-30", "end": "2026-13-01", "day": "2026-02-30", "month": "2026-02-30"},
    {"start": "2026-03-31", "end": "2026-01-01", "page": "abc"},  # reversed range
    {"start": "1900-01-01", "end": "9999-12-31", "page": str(10**12)},
    {"page": "-1", "customer": "not-a-uuid", "sort": "password", "by": "secret", "status": "x"},
    {"q": LONG, "sort": LONG, "customer": LONG, "status": LONG, "by": LONG, "page": LONG},
    {"q": "a\x00b", "start": "\x00", "end": "2026-01-01\x00", "customer": "\x00", "day": "\x00"},
    {"start": "2026-01-01", "end": "", "period": "junk", "engine": "oracle", "format": "exe"},
    # Valid dates at the calendar's edges: a day before or after them does not exist.
    {"start": "0001-01-01", "end": "0001-01-31", "day": "0001-01-01", "month": "0001-01"},
    {"start": "9999-12-01", "end": "9999-12-31", "day": "9999-12-31", "month": "9999-12"},
]

JUNK_POST = {
    "name": LONG,
    "label": "\x00",
    "email": "@",
    "contact_email": "not an email",
    "start": "2026-02-30",
    "end": "2026-01-01",
    "month": "2026-02-30",
    "engine": "oracle",
    "amount": "NaN",
    "quantity": "1e999",
    "unit_price": "-Infinity",
    "description": LONG,
    "reason": "\x00" * 10,
    "reissue": "maybe",
    "customer": "not-a-uuid",
    "plan": "not-a-plan",
    "invoice": ["not-a-uuid", "0"],
    "ids": ["not-a-uuid"],
    "action": "explode",
    "grace_hours": "nan",
    "expires_on": "9999-99-99",
    "expires_at": "2026-02-30 25:61",
    "scope": "root",
    "rate_limit_per_minute": "-5",
    "daily_request_limit": "9" * 40,
    "monthly_token_quota": "-1",
    "percents": "a,b",
    "webhook_url": "javascript:alert(1)",
    "confirm": "1",
}

EDGE_POST = {
    "start": "9999-12-30",
    "end": "9999-12-31",
    "month": "9999-12",
    "amount": "9" * 30,
    "quantity": "0.0000001",
    "unit_price": "1e-30",
    "description": "edge",
    "reason": "edge",
    "name": "Edge",
    "code": "edge",
    "kind": "per_token",
    "grace_hours": "2160",
    "label": "edge",
    "email": "edge@example.com",
    "contact_email": "edge@example.com",
    "user_email": "edge-user@example.com",
    "expires_on": "9999-12-31",
    "expires_at": "9999-12-31 23:59",
    "effective_from": "0001-01-01",
    "starts_on": "9999-12-31",
    "scope": "read",
    "confirm": "1",
}

# Views that must refuse an empty POST with a message naming what to fix. (Limits and alert
# settings are all optional: an empty POST there is an unchanged form, not an error.)
FORM_VIEWS = {
    "staff:customer_onboard",
    "staff:customer_edit",
    "staff:customer_invite",
    "staff:token_create",
    "staff:api_keys",
    "staff:usage_ingest",
    "staff:billing_run",
    "staff:billing_plan_new",
    "staff:billing_price_new",
    "staff:billing_invoice_add_line",
    "staff:billing_invoice_void",
    "staff:billing_invoice_credit_note",
    "staff:billing_credit_grant",
    "staff:billing_plan_assign",
}


def _walk(patterns, prefix="", namespace=""):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = f"{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), f"{namespace}{entry.name}"


def _fill(route: str, values: dict) -> str:
    def replace(match):
        name = match.group(2)
        if name not in values:
            raise AssertionError(f"the crawler has no object for <{name}> in {route}")
        return str(values[name])

    return "/" + re.sub(r"<(?:(\w+):)?(\w+)>", replace, route)


@pytest.fixture
def world(aws, customer, customer_user, staff_user):
    """One real object for every converter of the staff and customer URL patterns."""
    issued = customer_services.token_create(customer=customer, label="crawler")
    today = dt.date(2026, 3, 1)
    invoice = Invoice.objects.create(
        customer=customer, period_start=today, period_end=dt.date(2026, 3, 31)
    )
    line = InvoiceLine.objects.create(
        invoice=invoice, kind=InvoiceLine.Kind.MANUAL, description="Setup", amount=Decimal("5")
    )
    run = IngestRun.objects.create(
        trigger=IngestRun.Trigger.STAFF, engine="duckdb", start_day=today, end_day=today
    )
    QuarantinedRow.objects.create(
        day=today, run=run, stage="daily", reason="application_id contains a control character",
        raw_row='["<b>x</b>\\u0000"]',
    )  # fmt: skip
    plan = PricingPlan.objects.create(code="crawl", name="Crawl plan", kind="pay_as_you_go")
    key = api_key_create(name="crawler", scope="read", expires_at=None, created_by=staff_user)
    UsageDifference.objects.create(customer=customer, day=today, billed_requests=2)
    Alert.objects.create(
        customer=customer,
        rule=Alert.Rule.DAILY_REQUESTS,
        threshold=80,
        period="2026-03-01",
        value=800,
        limit=1000,
    )
    return {
        "pk": customer.pk,
        "customer_id": customer.pk,
        "user_id": customer_user.pk,
        "token_id": issued.token.pk,
        "invoice_id": invoice.pk,
        "line_id": line.pk,
        "run_id": run.pk,
        "plan_id": plan.pk,
    } | {"pk_api_key": key.api_key.pk}


def _routes(prefix, world):
    routes = [(r, n) for r, n in _walk(get_resolver().url_patterns) if r.startswith(prefix)]
    assert routes
    out = []
    for route, name in routes:
        values = dict(world)
        if name == "staff:api_key_revoke":
            values["pk"] = world["pk_api_key"]
        out.append((_fill(route, values), name))
    return out


def _has_error(response) -> bool:
    if response.status_code in (200, 400):
        text = response.content.decode()
        return "error" in text and ('role="alert"' in text or "message-error" in text)
    if response.status_code == 302:
        return any(m.level_tag in ("error", "warning") for m in get_messages(response.wsgi_request))
    return False


def _send(client, method, url, data):
    try:
        return getattr(client, method)(url, data)
    except Exception as exc:  # the test client re-raises a view's exception: that is a 500
        return f"{type(exc).__name__}: {str(exc)[:200]}"


def _crawl(client, routes):
    problems = []
    for url, name in routes:
        for query in JUNK_QUERIES:
            response = _send(client, "get", url, query)
            if isinstance(response, str) or response.status_code >= 500:
                status = response if isinstance(response, str) else response.status_code
                problems.append(f"GET {name} {url} {str(query)[:120]}: {status}")
        for data in ({}, JUNK_POST, EDGE_POST):
            response = _send(client, "post", url, data)
            if isinstance(response, str):
                problems.append(f"POST {name} {url}: {response}")
            elif response.status_code >= 500:
                problems.append(f"POST {name} {url}: {response.status_code}")
            elif data is not EDGE_POST and name in FORM_VIEWS and not _has_error(response):
                problems.append(f"POST {name} {url} {sorted(data)[:3]}: no error shown")
    return problems


def test_staff_pages_never_500(client, staff_user, world):
    client.force_login(staff_user)
    problems = _crawl(client, _routes("staff/", world))
    assert not problems, "\n".join(problems)


def test_customer_pages_never_500(client, customer_user, world):
    client.force_login(customer_user)
    problems = _crawl(client, _routes("app/", world))
    assert not problems, "\n".join(problems)


def test_crawler_fails_on_a_500(client, staff_user, world, monkeypatch):
    """The crawler itself can fail: a view that raises is reported, not swallowed."""
    from usage import views_staff

    def boom(*args, **kwargs):
        raise ValueError("boom")

    monkeypatch.setattr(views_staff.selectors, "alert_list", boom)
    client.force_login(staff_user)
    routes = [r for r in _routes("staff/", world) if r[1] == "staff:usage_alerts"]
    assert _crawl(client, routes)
