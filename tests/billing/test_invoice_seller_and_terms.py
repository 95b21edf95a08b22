"""The invoice PDF carries the seller's name, address and tax id, the due date (issue date plus
BILLING_PAYMENT_TERMS_DAYS), the payment terms and, when the invoice can be paid online, the
link; the invoice pages show the due date and terms. The PDF is read back as text."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest
from django.urls import reverse

from billing import documents
from billing.documents import (
    invoice_due_on,
    invoice_payment_link,
    invoice_pdf_bytes,
    seller_lines,
)
from billing.models import Invoice, InvoiceLine

from .pdf_text import pdf_text

pytestmark = pytest.mark.django_db

ISSUED_AT = datetime(2026, 11, 3, 23, 30, tzinfo=UTC)


@pytest.fixture
def seller(settings):
    settings.BILLING_SELLER_NAME = "Northwind Cloud Ltd"
    settings.BILLING_SELLER_ADDRESS = "1 Harbour Road\r\nDublin D02 X285\n\nIreland"
    settings.BILLING_SELLER_TAX_ID = "IE1234567T"
    settings.BILLING_PAYMENT_TERMS_DAYS = 14
    settings.BILLING_PAYMENT_TERMS = ""
    settings.STRIPE_SECRET_KEY = ""
    settings.STRIPE_WEBHOOK_SECRET = ""
    return settings


def _invoice(customer, *, status=Invoice.Status.ISSUED, total=D("12.50"), **fields):
    """An invoice with one line, moved forward through its lifecycle to `status`."""
    number = fields.pop("number", f"INV-T-{Invoice.objects.count() + 1}")
    issued_at = fields.pop("issued_at", ISSUED_AT)
    later = {name: fields.pop(name) for name in ("paid_at", "voided_at") if name in fields}
    month = 10 - Invoice.objects.filter(customer=customer).count()  # one invoice a month
    invoice = Invoice.objects.create(
        customer=customer,
        period_start=date(2026, month, 1),
        period_end=date(2026, month, 28),
        subtotal=total,
        total=total,
        plan_name="Pay as you go",
        **fields,
    )
    InvoiceLine.objects.create(
        invoice=invoice, kind="manual", description="Usage of October", amount=total
    )
    if status != Invoice.Status.DRAFT:
        Invoice.objects.filter(pk=invoice.pk).update(
            status=Invoice.Status.ISSUED, number=number, issued_at=issued_at
        )
    if status in (Invoice.Status.PAID, Invoice.Status.VOID):
        Invoice.objects.filter(pk=invoice.pk).update(status=status, **later)
    invoice.refresh_from_db()
    return invoice


def test_the_pdf_has_the_seller_block_due_date_and_terms(seller, customer):
    invoice = _invoice(customer)
    text = pdf_text(invoice_pdf_bytes(invoice))
    lines = text.splitlines()
    # The seller block, each line of the address its own line (the blank line dropped).
    start = lines.index("Northwind Cloud Ltd")
    assert lines[start : start + 4] == [
        "Northwind Cloud Ltd",
        "1 Harbour Road",
        "Dublin D02 X285",
        "Ireland",
    ]
    assert "Tax id: IE1234567T" in lines
    # Issued on 2026-11-03 (UTC) + 14 days.
    assert "Due: 2026-11-17" in lines
    assert "Payment terms: Payment due within 14 days of the issue date." in lines
    assert "Pay online:" not in text  # card payments are not set up
    assert f"Bill to: {customer.name} <{customer.contact_email}>" in lines


def test_the_terms_text_and_days_come_from_the_settings(seller, customer):
    seller.BILLING_PAYMENT_TERMS = (
        "Bank transfer to IBAN IE64 IRCE 9205 0112 3456 78 within 30 days."
    )
    seller.BILLING_PAYMENT_TERMS_DAYS = 30
    text = pdf_text(invoice_pdf_bytes(_invoice(customer)))
    assert "Due: 2026-12-03" in text.splitlines()
    assert (
        "Payment terms: Bank transfer to IBAN IE64 IRCE 9205 0112 3456 78 within 30 days."
        in text.splitlines()
    )
    seller.BILLING_PAYMENT_TERMS_DAYS = 0
    assert invoice_due_on(_invoice(customer)) == date(2026, 11, 3)


def test_the_payment_link_is_printed_when_there_is_one(seller, customer, monkeypatch):
    invoice = _invoice(customer)
    url = f"https://portal.example.com/app/billing/invoices/{invoice.pk}/"
    monkeypatch.setattr(documents, "invoice_payment_link", lambda inv: url)
    lines = pdf_text(invoice_pdf_bytes(invoice)).splitlines()
    assert lines[lines.index("Pay online:") + 1] == url


def test_no_payment_link_while_card_payments_are_off(seller, customer):
    assert invoice_payment_link(_invoice(customer)) is None


def test_the_payment_link_is_the_invoice_page_when_stripe_is_on(seller, customer):
    try:
        from billing import payments  # noqa: F401
    except ImportError:
        pytest.skip("card payments (billing.payments) are not part of this portal")
    seller.STRIPE_SECRET_KEY = "sk_test_portal"
    seller.STRIPE_WEBHOOK_SECRET = "whsec_portal"
    seller.PORTAL_BASE_URL = "https://portal.example.com/"
    invoice = _invoice(customer, currency=seller.BILLING_CURRENCY)
    assert invoice_payment_link(invoice) == (
        f"https://portal.example.com/app/billing/invoices/{invoice.pk}/"
    )
    paid = _invoice(customer, status=Invoice.Status.PAID, paid_at=ISSUED_AT)
    assert invoice_payment_link(paid) is None


@pytest.mark.parametrize(
    "fields",
    [
        {"status": Invoice.Status.DRAFT, "number": None, "issued_at": None},
        {"status": Invoice.Status.VOID, "voided_at": ISSUED_AT},
        {"status": Invoice.Status.PAID, "total": D("0.00"), "paid_at": ISSUED_AT},
        {"kind": Invoice.Kind.CREDIT_NOTE, "total": D("-5.00")},
    ],
    ids=["draft", "void", "nothing-due", "credit-note"],
)
def test_nothing_is_due_on_drafts_void_zero_and_credit_notes(seller, customer, fields):
    invoice = _invoice(customer, **fields)
    assert invoice_due_on(invoice) is None
    text = pdf_text(invoice_pdf_bytes(invoice))
    assert "Due:" not in text and "Payment terms" not in text
    assert "Northwind Cloud Ltd" in text  # the seller is on every document


def test_a_paid_invoice_keeps_its_due_date(seller, customer):
    invoice = _invoice(customer, status=Invoice.Status.PAID, paid_at=ISSUED_AT)
    assert invoice_due_on(invoice) == date(2026, 11, 17)


def test_the_terms_are_kept_from_the_issue_so_a_later_change_moves_no_due_date(seller, customer):
    from billing.services import invoice_issue, invoice_line_add

    draft = Invoice.objects.create(
        customer=customer, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31)
    )
    invoice_line_add(invoice=draft, description="Usage", amount=D("12.50"))
    issued = invoice_issue(invoice=draft)
    issued_on = issued.issued_at.astimezone(UTC).date()
    assert issued.payment_terms_days == 14
    assert invoice_due_on(issued) == issued_on + timedelta(days=14)
    seller.BILLING_PAYMENT_TERMS_DAYS = 60  # the terms change after the issue
    issued.refresh_from_db()
    assert invoice_due_on(issued) == issued_on + timedelta(days=14)


def test_seller_lines_never_carry_control_characters(seller):
    seller.BILLING_SELLER_NAME = "Northwind\x1b[31m Cloud"
    seller.BILLING_SELLER_ADDRESS = "Line\x00 one\n  \n\tLine two  "
    seller.BILLING_SELLER_TAX_ID = ""
    assert seller_lines() == ["Northwind\ufffd[31m Cloud", "Line\ufffd one", "Line two"]


def test_the_invoice_pages_show_the_due_date_and_terms(
    seller, customer, customer_client, staff_user, client
):
    invoice = _invoice(customer)
    page = customer_client.get(reverse("customer:invoice_detail", args=[invoice.pk]))
    body = page.content.decode()
    assert "Due 17 Nov 2026" in body
    assert "Payment due within 14 days of the issue date." in body
    client.force_login(staff_user)
    staff = client.get(reverse("staff:billing_invoice_detail", args=[invoice.pk])).content.decode()
    assert "Due 17 Nov 2026" in staff


def test_the_settings_read_a_multi_line_address_and_refuse_bad_terms():
    from tests.test_settings import PRODUCTION_ENV, _manage

    code = (
        "from django.conf import settings as s; "
        "print(repr(s.BILLING_SELLER_ADDRESS), s.BILLING_PAYMENT_TERMS_DAYS)"
    )
    env = {**PRODUCTION_ENV, "BILLING_SELLER_ADDRESS": r"1 Harbour Road\nDublin"}
    result = _manage("shell", "-c", code, env=env)
    assert result.returncode == 0, result.stderr[-800:]
    assert "'1 Harbour Road\\nDublin' 30" in result.stdout
    for bad in ("abc", "-1", "366"):
        refused = _manage("check", env={**PRODUCTION_ENV, "BILLING_PAYMENT_TERMS_DAYS": bad})
        assert refused.returncode != 0
        assert "BILLING_PAYMENT_TERMS_DAYS must be a whole number from 0 to 365" in refused.stderr
