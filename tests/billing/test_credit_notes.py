"""Credit notes: correct an issued invoice without changing it; the value goes to the wallet."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.core import mail
from django.urls import reverse

from billing.models import CreditGrant, Invoice
from billing.pricing import PricingError
from billing.selectors import credit_balance
from billing.services import (
    InvoiceStateError,
    credit_note_issue,
    invoice_issue,
    invoice_line_add,
    invoice_mark_paid,
    invoice_run,
    invoice_void,
)

ISSUE_DAY = date(2026, 11, 2)


@pytest.fixture
def issued(customer, settings):
    settings.BILLING_TAX_RATE = "0.2"
    invoice = Invoice.objects.create(
        customer=customer, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31)
    )
    invoice_line_add(invoice=invoice, description="Usage", amount=D("100.00"))
    return invoice_issue(invoice=invoice, today=ISSUE_DAY)


def test_credit_note_numbers_tax_and_wallet(issued, customer, django_capture_on_commit_callbacks):
    assert issued.total == D("120.00")
    with django_capture_on_commit_callbacks(execute=True):
        note = credit_note_issue(invoice=issued, amount=D("25.00"), reason="Outage on Oct 12")
    # 25.00 credited + 20 % tax = 30.00, as a negative document with its own series.
    assert note.number == "INV-CN-000001"
    assert (note.kind, note.status) == ("credit_note", "issued")
    assert (note.subtotal, note.tax, note.total) == (D("-25.00"), D("-5.00"), D("-30.00"))
    assert note.credited_invoice_id == issued.pk
    assert credit_balance(customer.pk) == D("30.00")
    assert CreditGrant.objects.get(customer=customer).kind == "credit_note"
    issued.refresh_from_db()
    assert issued.total == D("120.00")  # the invoice itself never changes
    assert "Credit note INV-CN-000001" in mail.outbox[-1].subject
    assert mail.outbox[-1].attachments[0][0] == "INV-CN-000001.pdf"
    # The next ordinary invoice still takes the next invoice number.
    nxt = Invoice.objects.create(
        customer=customer, period_start=date(2026, 11, 1), period_end=date(2026, 11, 30)
    )
    assert invoice_issue(invoice=nxt, today=ISSUE_DAY).number == "INV-000002"


def test_cannot_credit_more_than_was_billed(issued):
    credit_note_issue(invoice=issued, amount=D("60"), reason="a")
    with pytest.raises(PricingError, match=r"40\.00"):
        credit_note_issue(invoice=issued, amount=D("40.01"), reason="b")
    credit_note_issue(invoice=issued, amount=D("40"), reason="c")


@pytest.mark.parametrize(
    ("amount", "reason"), [(D("0"), "x"), (D("-1"), "x"), (D("1.001"), "x"), (D("1"), " ")]
)
def test_bad_credit_notes_are_refused(issued, amount, reason):
    with pytest.raises(PricingError):
        credit_note_issue(invoice=issued, amount=amount, reason=reason)


def test_only_issued_or_paid_invoices_and_notes_are_final(issued, customer):
    draft = Invoice.objects.create(
        customer=customer, period_start=date(2026, 9, 1), period_end=date(2026, 9, 30)
    )
    with pytest.raises(InvoiceStateError):
        credit_note_issue(invoice=draft, amount=D("1"), reason="x")
    note = credit_note_issue(invoice=issued, amount=D("1"), reason="x")
    with pytest.raises(InvoiceStateError):
        credit_note_issue(invoice=note, amount=D("1"), reason="x")
    with pytest.raises(InvoiceStateError):
        invoice_void(invoice=note, reason="x")
    with pytest.raises(InvoiceStateError):
        invoice_mark_paid(invoice=note)
    with pytest.raises(InvoiceStateError):
        invoice_void(invoice=issued, reason="has a note")
    paid = invoice_mark_paid(invoice=issued)
    assert credit_note_issue(invoice=paid, amount=D("2"), reason="y").number == "INV-CN-000002"


def test_run_is_not_confused_by_credit_notes(issued, customer):
    credit_note_issue(invoice=issued, amount=D("1"), reason="x")
    assert invoice_run(period_start=date(2026, 10, 1)).created == 0


def test_staff_page_and_customer_view(staff_client, client, customer_user, issued):
    detail = staff_client.get(reverse("staff:billing_invoice_detail", args=[issued.pk]))
    assert "Issue credit note" in detail.content.decode()
    staff_client.post(
        reverse("staff:billing_invoice_credit_note", args=[issued.pk]),
        {"amount": "abc", "reason": "x"},
    )
    assert not Invoice.objects.filter(kind="credit_note").exists()
    staff_client.post(
        reverse("staff:billing_invoice_credit_note", args=[issued.pk]),
        {"amount": "10.00", "reason": "Goodwill", "confirm": "1"},
    )
    note = Invoice.objects.get(kind="credit_note")
    client.force_login(customer_user)
    listing = client.get(reverse("customer:invoice_list")).content.decode()
    assert note.number in listing and "credit note" in listing
    page = client.get(reverse("customer:invoice_detail", args=[note.pk])).content.decode()
    assert issued.number in page and "Goodwill" in page
    pdf = client.get(reverse("customer:invoice_pdf", args=[note.pk]))
    assert pdf.content.startswith(b"%PDF")
