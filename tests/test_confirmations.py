"""Destructive actions ask first, on a page of their own, and only a POST acts.

For each one: a GET changes nothing (405, or the confirmation page itself); the first POST
answers a confirmation page that re-posts the same fields with `confirm=1`, and nothing has
changed; that second POST does the work. A JavaScript confirm() alone fails these tests.
"""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse

from billing.models import Invoice, InvoiceLine
from core.models import ApiKey
from customers import services as customer_services
from customers.models import Customer, Token
from portal.api.keys import api_key_create
from usage.models import IngestRun

pytestmark = pytest.mark.django_db

MARCH = dt.date(2026, 3, 1)


@pytest.fixture
def objects(aws, customer, customer_user, staff_user):
    token = customer_services.token_create(customer=customer, label="backend").token
    draft = Invoice.objects.create(customer=customer, period_start=MARCH, period_end=MARCH)
    line = InvoiceLine.objects.create(
        invoice=draft, kind=InvoiceLine.Kind.MANUAL, description="Setup", amount=Decimal("5.00")
    )
    issued = Invoice.objects.create(
        customer=customer,
        period_start=dt.date(2026, 2, 1),
        period_end=dt.date(2026, 2, 28),
        status=Invoice.Status.ISSUED,
        number="INV-TEST-1",
        subtotal=Decimal("50.00"),
        total=Decimal("50.00"),
    )
    key = api_key_create(name="crm", scope="read", expires_at=None, created_by=staff_user)
    return {
        "customer": customer,
        "user": customer_user,
        "token": token,
        "draft": draft,
        "line": line,
        "issued": issued,
        "key": key.api_key,
    }


def _state(o):
    """Everything a destructive action here could change."""
    return (
        Customer.objects.get(pk=o["customer"].pk).status,
        type(o["user"]).objects.get(pk=o["user"].pk).is_active,
        list(Token.objects.order_by("pk").values_list("status", "grace_until")),
        list(Invoice.objects.order_by("pk").values_list("status", "total")),
        InvoiceLine.objects.count(),
        ApiKey.objects.get(pk=o["key"].pk).revoked_at,
        IngestRun.objects.count(),
    )


# (role, URL name, URL args from objects, form data, what must have happened once confirmed)
STAFF = "staff"
CUSTOMER = "customer"
ACTIONS = [
    (
        STAFF,
        "staff:customer_status",
        lambda o: [o["customer"].pk],
        {"action": "suspend"},
        lambda o: Customer.objects.get(pk=o["customer"].pk).status == "suspended",
    ),
    (
        STAFF,
        "staff:customer_status",
        lambda o: [o["customer"].pk],
        {"action": "close"},
        lambda o: Customer.objects.get(pk=o["customer"].pk).status == "closed",
    ),
    (
        STAFF,
        "staff:customer_user_action",
        lambda o: [o["customer"].pk, o["user"].pk],
        {"action": "disable"},
        lambda o: not type(o["user"]).objects.get(pk=o["user"].pk).is_active,
    ),
    (
        STAFF,
        "staff:customer_bulk",
        lambda o: [],
        lambda o: {"action": "suspend", "ids": [str(o["customer"].pk)]},
        lambda o: Customer.objects.get(pk=o["customer"].pk).status == "suspended",
    ),
    (
        STAFF,
        "staff:api_key_revoke",
        lambda o: [o["key"].pk],
        {},
        lambda o: ApiKey.objects.get(pk=o["key"].pk).revoked_at is not None,
    ),
    (
        STAFF,
        "staff:billing_invoice_void",
        lambda o: [o["issued"].pk],
        {"reason": "Wrong period"},
        lambda o: Invoice.objects.get(pk=o["issued"].pk).status == "void",
    ),
    (
        STAFF,
        "staff:billing_invoice_delete_line",
        lambda o: [o["draft"].pk, o["line"].pk],
        {},
        lambda o: not InvoiceLine.objects.filter(pk=o["line"].pk).exists(),
    ),
    (
        STAFF,
        "staff:billing_invoice_refresh",
        lambda o: [o["draft"].pk],
        {},
        # Re-rating recomputes the totals from the (kept) manual line.
        lambda o: Invoice.objects.get(pk=o["draft"].pk).total == Decimal("5.00"),
    ),
    (
        STAFF,
        "staff:billing_invoice_issue",
        lambda o: [o["draft"].pk],
        {},
        lambda o: Invoice.objects.get(pk=o["draft"].pk).status == "issued",
    ),
    (
        STAFF,
        "staff:billing_invoices_issue",
        lambda o: [],
        lambda o: {"invoice": [str(o["draft"].pk)]},
        lambda o: Invoice.objects.get(pk=o["draft"].pk).status == "issued",
    ),
    (
        STAFF,
        "staff:billing_invoice_credit_note",
        lambda o: [o["issued"].pk],
        {"amount": "10.00", "reason": "Goodwill"},
        lambda o: Invoice.objects.filter(kind="credit_note").exists(),
    ),
    (
        STAFF,
        "staff:usage_ingest",
        lambda o: [],
        {"start": "2026-03-01", "end": "2026-03-02", "engine": "duckdb"},
        lambda o: IngestRun.objects.filter(start_day=MARCH).exists(),
    ),
    (
        CUSTOMER,
        "customer:customer_token_revoke",
        lambda o: [o["token"].pk],
        {},
        lambda o: Token.objects.get(pk=o["token"].pk).status == "revoked",
    ),
    (
        CUSTOMER,
        "customer:customer_token_rotate",
        lambda o: [o["token"].pk],
        {"grace_hours": "2"},
        lambda o: Token.objects.get(pk=o["token"].pk).grace_until is not None,
    ),
]


@pytest.mark.parametrize(
    "role,name,args,data,done",
    ACTIONS,
    ids=[f"{a[1]}-{a[3].get('action', '') if isinstance(a[3], dict) else ''}" for a in ACTIONS],
)
def test_destructive_action_asks_first(client, staff_user, objects, role, name, args, data, done):
    client.force_login(staff_user if role == STAFF else objects["user"])
    url = reverse(name, args=args(objects))
    data = data(objects) if callable(data) else data
    before = _state(objects)

    assert client.get(url, data).status_code in (200, 405)
    assert _state(objects) == before, "a GET changed something"

    asking = client.post(url, data)
    assert asking.status_code == 200, asking.get("Location")
    html = asking.content.decode()
    assert re.search(r'<button type="submit" name="confirm" value="1"', html), "no confirm step"
    assert _state(objects) == before, "the first POST acted without confirmation"
    for field, value in data.items():
        for v in value if isinstance(value, list) else [value]:
            assert f'name="{field}" value="{v}"' in html, f"{field} not carried to the step"

    confirmed = client.post(url, {**data, "confirm": "1"})
    assert confirmed.status_code in (200, 302)  # a rotation shows the new token at once
    assert done(objects)


def test_the_staff_token_revoke_page_asks_and_only_a_post_revokes(staff_client, objects):
    token = objects["token"]
    url = reverse("staff:token_revoke", args=[objects["customer"].pk, token.pk])
    page = staff_client.get(url)
    assert page.status_code == 200 and "cannot be undone" in page.content.decode()
    assert Token.objects.get(pk=token.pk).status == "active"
    staff_client.post(url)
    assert Token.objects.get(pk=token.pk).status == "revoked"


def test_confirmation_page_escapes_what_it_carries(staff_client, objects):
    url = reverse("staff:billing_invoice_void", args=[objects["issued"].pk])
    html = staff_client.post(url, {"reason": '"><script>alert(1)</script>'}).content.decode()
    assert "<script>alert(1)" not in html
    assert "&quot;&gt;&lt;script&gt;" in html
