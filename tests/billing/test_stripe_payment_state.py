"""An invoice's payment state, on the pages and in the API (read-only `payment` on invoices)."""

from decimal import Decimal

import pytest
from django.urls import reverse

from billing.payments import invoice_checkout_open
from billing.services import invoice_mark_paid
from customers.models import AuditEvent

from ..api.conftest import _client_with_key
from .stripe_fakes import (
    charge,
    completed_session,
    deliver,
    event,
    issued_invoice,
    stripe_configured,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def stripe_on(settings):
    yield from stripe_configured(settings)


def _paid_through_stripe(client, stub, invoice, refunded=0):
    payment = invoice_checkout_open(invoice=invoice)
    body = event("checkout.session.completed", completed_session(stub, payment))
    deliver(client, body)
    if refunded:
        intent = body["data"]["object"]["payment_intent"]
        deliver(client, event("charge.refunded", charge(intent, amount=12050, refunded=refunded)))
    return payment


def test_api_invoices_say_how_they_were_paid(client, staff_user, customer, stripe_on):
    by_card = issued_invoice(customer, month=8)
    _paid_through_stripe(client, stripe_on, by_card, refunded=1000)
    by_hand = issued_invoice(customer, month=9)
    invoice_mark_paid(invoice=by_hand, by=staff_user)
    unpaid = issued_invoice(customer, month=10)
    api = _client_with_key(staff_user, "read")
    rows = {r["id"]: r["payment"] for r in api.get("/api/v1/invoices/").json()["results"]}
    assert rows[str(by_card.pk)] == {
        "paid_via": "stripe",
        "amount_paid": "120.50",
        "stripe_paid_at": rows[str(by_card.pk)]["stripe_paid_at"],
        "refunded_amount": "10.00",
        "refund_state": "partial",
        "dispute_status": None,
        "needs_attention": False,
    }
    assert rows[str(by_card.pk)]["stripe_paid_at"]
    assert rows[str(by_hand.pk)]["paid_via"] == "manual"
    assert rows[str(by_hand.pk)]["amount_paid"] is None
    assert rows[str(unpaid.pk)]["paid_via"] is None
    detail = api.get(f"/api/v1/invoices/{by_card.pk}/").json()
    assert detail["payment"]["refund_state"] == "partial" and detail["lines"]


def test_api_payment_state_is_read_only_and_mark_paid_is_audited(staff_user, customer):
    invoice = issued_invoice(customer)
    api = _client_with_key(staff_user, "read_write")
    answer = api.post(f"/api/v1/invoices/{invoice.pk}/mark-paid/", {"payment": {"paid_via": "x"}})
    assert answer.status_code == 200
    assert answer.json()["payment"]["paid_via"] == "manual"
    audit = AuditEvent.objects.get(action="invoice.paid")
    assert audit.after["paid_via"] == "manual" and "api" in audit.actor_label


def test_customer_api_sees_the_payment_of_its_own_invoices(client, customer_user, customer):
    from rest_framework.test import APIClient

    invoice = issued_invoice(customer)
    api = APIClient()
    api.force_login(customer_user)
    [row] = api.get("/api/v1/invoices/").json()["results"]
    assert row["id"] == str(invoice.pk) and row["payment"]["paid_via"] is None


def test_staff_pages_show_stripe_and_manual_payments(client, staff_user, customer, stripe_on):
    by_card = issued_invoice(customer, month=8)
    _paid_through_stripe(client, stripe_on, by_card, refunded=12050)
    by_hand = issued_invoice(customer, month=9)
    invoice_mark_paid(invoice=by_hand, by=staff_user)
    client.force_login(staff_user)
    listing = client.get(reverse("staff:billing_invoices") + "?status=paid").content.decode()
    assert "Paid via Stripe · refunded 120.50 (full)" in listing
    assert "Paid by hand" in listing
    page = client.get(reverse("staff:billing_invoice_detail", args=[by_card.pk])).content.decode()
    assert "Paid via Stripe on" in page and "Refunded 120.50 USD (full)" in page
    assert "checkout.session.completed" in page and "charge.refunded" in page
    page = client.get(reverse("staff:billing_invoice_detail", args=[by_hand.pk])).content.decode()
    assert "Marked paid by hand" in page


def test_customer_page_after_paying(client, customer_user, customer, stripe_on):
    invoice = issued_invoice(customer)
    client.force_login(customer_user)
    url = reverse("customer:invoice_detail", args=[invoice.pk])
    assert "being confirmed" not in client.get(url).content.decode()
    waiting = client.get(url + "?payment=success").content.decode()
    assert "shows here as soon as it is confirmed" in waiting
    _paid_through_stripe(client, stripe_on, invoice)
    client.force_login(customer_user)
    done = client.get(url + "?payment=success").content.decode()
    assert "Paid by card on" in done and "by card</button>" not in done
    assert invoice.payment_state.amount_paid == Decimal("120.50")


def test_the_staff_invoice_list_reads_payments_in_one_query(
    client, staff_user, customer, stripe_on, django_assert_max_num_queries
):
    for month in (5, 6, 7, 8, 9):
        _paid_through_stripe(client, stripe_on, issued_invoice(customer, month=month))
    client.force_login(staff_user)
    url = reverse("staff:billing_invoices") + "?status=paid"
    client.get(url)
    with django_assert_max_num_queries(12):
        assert client.get(url).status_code == 200
