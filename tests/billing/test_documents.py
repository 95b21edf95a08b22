import csv
import io
import re
from datetime import date
from decimal import Decimal as D

from billing.documents import invoice_csv_text, invoice_pdf_bytes
from billing.models import Invoice, InvoiceLine
from customers.models import Customer


def test_long_pdf_and_non_latin_text_do_not_break(db):
    customer = Customer.objects.create(name="Сбербанк 株式会社", contact_email="x@example.com")
    invoice = Invoice.objects.create(
        customer=customer, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31)
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=invoice,
            position=i,
            kind="usage",
            description=f"Model {i} — " + "very long description " * 12,
            quantity=D(i * 1000),
            unit="tokens",
            amount=D("1.23"),
        )
        for i in range(80)
    )
    pdf = invoice_pdf_bytes(invoice)
    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type /Page\b(?!s)", pdf)) >= 3


def test_csv_escapes_formulas(db):
    customer = Customer.objects.create(name="Acme", contact_email="x@example.com")
    invoice = Invoice.objects.create(
        customer=customer, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31)
    )
    InvoiceLine.objects.create(
        invoice=invoice,
        kind="manual",
        description='=HYPERLINK("http://127.0.0.1:9/")',
        amount=D("1"),
    )
    for description in ('\t=HYPERLINK("http://127.0.0.1:9/")', "\r=1+1", ""):
        InvoiceLine.objects.create(
            invoice=invoice, kind="manual", description=description, amount=D("1")
        )
    text = invoice_csv_text(invoice)
    assert "'=HYPERLINK" in text
    assert "total" in text
    rows = list(csv.reader(io.StringIO(text)))
    descriptions = sorted(row[3] for row in rows[2:6])
    assert descriptions == sorted(
        [
            '\'=HYPERLINK("http://127.0.0.1:9/")',
            '\'\ufffd=HYPERLINK("http://127.0.0.1:9/")',  # tab and CR: control characters
            "'\ufffd=1+1",
            "",  # nothing to neutralise in an empty cell
        ]
    )


def test_csv_has_no_control_characters(db):
    """Text the portal did not type (a model id from the usage events, a staff note pasted with
    an escape sequence) never reaches the CSV with a control character."""
    customer = Customer.objects.create(name="Acme", contact_email="x@example.com")
    invoice = Invoice.objects.create(
        customer=customer, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31)
    )
    InvoiceLine.objects.create(
        invoice=invoice,
        kind="usage",
        model_id="model\x07id",
        description="\x1b[31mred\x1b[0m, line\nbreak, del\x7f, c1\x85",
        amount=D("1"),
    )
    text = invoice_csv_text(invoice)
    rows = list(csv.reader(io.StringIO(text)))
    assert not any(re.search("[\x00-\x1f\x7f-\x9f]", cell) for r in rows for cell in r)
    row = rows[2]
    assert row[2] == "model\ufffdid"
    assert row[3] == "\ufffd[31mred\ufffd[0m, line\ufffdbreak, del\ufffd, c1\ufffd"


def test_pdf_uses_billing_details_when_the_customer_has_them(db):
    customer = Customer.objects.create(name="Acme", contact_email="x@example.com")
    if not hasattr(customer, "billing_address"):
        return
    customer.billing_name = "Acme Analytics GmbH"
    customer.billing_address = "Hauptstrasse 1\n10115 Berlin"
    customer.tax_id = "DE123456789"
    customer.save()
    invoice = Invoice.objects.create(
        customer=customer, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31)
    )
    pdf = invoice_pdf_bytes(invoice)
    assert pdf.startswith(b"%PDF")
