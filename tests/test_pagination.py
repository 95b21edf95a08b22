"""Every list page that grows is paginated with a bounded page size.

Each case creates one row more than a page, then checks the first page shows a full page and a
Next link, and that the second page holds the rest. A list that renders every row fails.
"""

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.core.paginator import Page
from django.urls import reverse

from billing.models import CreditGrant, Invoice, InvoiceRun
from core.models import ApiKey, User
from customers.models import AuditEvent, Customer, Token
from usage.models import Alert, IngestRun, QuarantinedRow, UsageDifference

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 1, 1)


def _customers(n, **kw):
    return Customer.objects.bulk_create(
        Customer(name=f"Customer {i:04}", contact_email=f"c{i}@example.com", **kw) for i in range(n)
    )


def _tokens(customer, n):
    Token.objects.bulk_create(
        Token(
            customer=customer,
            label=f"t{i}",
            token_hash=uuid.uuid4().hex * 2,
            display_prefix="bup_",
            last4=f"{i:04}",
        )
        for i in range(n)
    )


def _users(customer, n):
    User.objects.bulk_create(
        User(email=f"u{i:03}@acme.example", customer=customer, password="!") for i in range(n)
    )


def _audit(customer, n):
    AuditEvent.objects.bulk_create(
        AuditEvent(customer=customer, actor_label="test", action=f"a{i}", object_type="customer")
        for i in range(n)
    )


def _alerts(customer, n):
    Alert.objects.bulk_create(
        Alert(
            customer=customer,
            rule=Alert.Rule.DAILY_REQUESTS,
            threshold=i + 1,
            period="2026-01-01",
            value=1,
            limit=1,
        )
        for i in range(n)
    )


def _invoices(customer, n, status=Invoice.Status.DRAFT):
    Invoice.objects.bulk_create(
        Invoice(
            customer=customer,
            period_start=dt.date(2000 + i // 12, i % 12 + 1, 1),
            period_end=dt.date(2000 + i // 12, i % 12 + 1, 28),
            status=status,
            number=f"INV-{i:05}" if status != Invoice.Status.DRAFT else None,
        )
        for i in range(n)
    )


def _runs(n):
    IngestRun.objects.bulk_create(
        IngestRun(trigger=IngestRun.Trigger.NIGHTLY, engine="duckdb", start_day=DAY, end_day=DAY)
        for _ in range(n)
    )


def _invoice_runs(n):
    InvoiceRun.objects.bulk_create(
        InvoiceRun(period_start=dt.date(2000 + i, 1, 1), status=InvoiceRun.Status.SUCCEEDED)
        for i in range(n)
    )


def _differences(n):
    UsageDifference.objects.bulk_create(
        UsageDifference(customer=c, day=DAY, billed_requests=1) for c in _customers(n)
    )


def _api_keys(owner, n):
    ApiKey.objects.bulk_create(
        ApiKey(
            name=f"k{i}",
            owner=owner,
            key_hash=uuid.uuid4().hex * 2,
            display_prefix="bpk_",
            last4="x",
        )
        for i in range(n)
    )


def _grants(customer, n):
    CreditGrant.objects.bulk_create(
        CreditGrant(
            customer=customer,
            kind=CreditGrant.Kind.PROMOTIONAL,
            amount=Decimal("1.00"),
            remaining=Decimal("1.00"),
        )
        for _ in range(n)
    )


def _check(client, url, key, per_page, extra=None):
    """Page 1 is full and links to page 2, which holds the one row left."""
    first = client.get(url, extra or {})
    assert first.status_code == 200, url
    page = first.context[key]
    assert isinstance(page, Page), f"{url}: {key} is not paginated"
    assert len(page.object_list) == per_page, url
    param = getattr(page, "param", "page")
    assert f"{param}=2" in first.content.decode(), f"{url}: no link to page 2"
    second = client.get(url, {**(extra or {}), param: "2"})
    assert len(second.context[key].object_list) == 1, url


# (URL name, context key, page size, rows to create: fn(customer, staff_user, n))
STAFF_LISTS = [
    ("staff:customer_list", None, "page", 50, lambda c, s, n: _customers(n - 1)),
    ("staff:customer_detail", "pk", "tokens", 50, lambda c, s, n: _tokens(c, n)),
    ("staff:customer_detail", "pk", "users", 50, lambda c, s, n: _users(c, n)),
    ("staff:customer_detail", "pk", "audit_page", 50, lambda c, s, n: _audit(c, n)),
    ("staff:audit_log", None, "page", 50, lambda c, s, n: _audit(c, n)),
    ("staff:usage_alerts", None, "page", 50, lambda c, s, n: _alerts(c, n)),
    ("staff:billing_invoices", None, "page", 50, lambda c, s, n: _invoices(c, n)),
    ("staff:billing_customer", "customer_id", "invoices", 24, lambda c, s, n: _invoices(c, n)),
    ("staff:billing_customer", "customer_id", "ledger", 50, lambda c, s, n: _grants(c, n)),
    ("staff:billing_customers", None, "page", 50, lambda c, s, n: _customers(n - 1)),
    ("staff:usage_ingest", None, "page", 25, lambda c, s, n: _runs(n)),
    ("staff:billing_runs", None, "page", 25, lambda c, s, n: _invoice_runs(n)),
    ("staff:usage_reconciliation", None, "page", 50, lambda c, s, n: _differences(n)),
    ("staff:api_keys", None, "page", 50, lambda c, s, n: _api_keys(s, n)),
]

CUSTOMER_LISTS = [
    ("customer:customer_tokens", "tokens", 50, lambda c, n: _tokens(c, n)),
    ("customer:customer_account", "users", 50, lambda c, n: _users(c, n - 1)),
    ("customer:usage_alerts", "page", 50, lambda c, n: _alerts(c, n)),
    ("customer:invoice_list", "page", 25, lambda c, n: _invoices(c, n, Invoice.Status.ISSUED)),
    ("customer:billing_overview", "ledger", 50, lambda c, n: _grants(c, n)),
]


@pytest.mark.parametrize(
    "name,arg,key,per_page,make", STAFF_LISTS, ids=[f"{c[0]}-{c[2]}" for c in STAFF_LISTS]
)
def test_staff_list_is_paginated(
    staff_client, staff_user, customer, name, arg, key, per_page, make
):
    make(customer, staff_user, per_page + 1)
    url = reverse(name, kwargs={arg: customer.pk} if arg else None)
    _check(staff_client, url, key, per_page)


@pytest.mark.parametrize(
    "name,key,per_page,make", CUSTOMER_LISTS, ids=[f"{c[0]}-{c[1]}" for c in CUSTOMER_LISTS]
)
def test_customer_list_is_paginated(customer_client, aws, customer, name, key, per_page, make):
    make(customer, per_page + 1)
    _check(customer_client, reverse(name), key, per_page)


def test_quarantined_rows_of_an_ingest_run_are_paginated(staff_client):
    """The run page lists the rows its days set aside (a flood of bad events can make many)."""
    run = IngestRun.objects.create(
        trigger=IngestRun.Trigger.NIGHTLY, engine="duckdb", start_day=DAY, end_day=DAY
    )
    QuarantinedRow.objects.bulk_create(
        QuarantinedRow(day=DAY, run=run, stage="daily", reason=f"r{i}", raw_row="[]")
        for i in range(51)
    )
    _check(staff_client, reverse("staff:usage_ingest_run", args=[run.pk]), "quarantine", 50)


def test_several_lists_on_one_page_keep_each_others_page(staff_client, customer):
    """Paging the audit trail keeps the token page chosen, and the other way round."""
    _tokens(customer, 51)
    _audit(customer, 51)
    url = reverse("staff:customer_detail", args=[customer.pk])
    response = staff_client.get(url, {"tokens_page": "2", "audit_page": "2"})
    assert response.context["tokens"].number == 2
    assert response.context["audit_page"].number == 2
    html = response.content.decode()
    assert "tokens_page=2&amp;audit_page=1" in html
    assert "audit_page=2&amp;tokens_page=1" in html


def test_page_links_keep_the_lists_filters(staff_client, customer):
    """One pager template for every list: its links carry the other query parameters."""
    _invoices(customer, 51, status=Invoice.Status.VOID)
    html = staff_client.get(reverse("staff:billing_invoices"), {"status": "void"}).content.decode()
    assert "?status=void&amp;page=2" in html
    _differences(51)
    url = reverse("staff:usage_reconciliation")
    html = staff_client.get(url, {"day": DAY.isoformat()}).content.decode()
    assert f"?day={DAY.isoformat()}&amp;page=2" in html
    second = staff_client.get(url, {"day": DAY.isoformat(), "page": "2"})
    assert len(second.context["page"].object_list) == 1
