"""Invoice documents: PDF (fpdf2, pure Python) and CSV, and what both the PDF and the invoice
pages say about payment: the seller, the due date, the payment terms and the payment link.

fpdf2 rather than WeasyPrint: WeasyPrint needs the system Pango/HarfBuzz libraries, which a
bare machine lacks, and `make test` must work there. fpdf2's core fonts are Latin-1, so text is
transliterated to it (names in other scripts show with '?'), a trade-off noted in docs/billing.md.
"""

import csv
import io
from dataclasses import dataclass
from datetime import UTC, date, timedelta

from django.conf import settings
from django.urls import reverse
from fpdf import FPDF

from core.text import printable

from .models import Invoice

COLUMNS = [
    "position",
    "kind",
    "model_id",
    "description",
    "quantity",
    "unit",
    "unit_price",
    "amount",
]


def _latin1(text) -> str:
    return str(text).encode("latin-1", "replace").decode("latin-1")


# A cell starting with one of these runs as a formula in a spreadsheet (tab and carriage
# return too: some programs drop them and read what follows), OWASP's CSV injection list.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _spreadsheet_safe(text: str) -> str:
    """No formula, and no control character or lone surrogate (U+FFFD instead)."""
    return printable("'" + text if text.startswith(FORMULA_STARTS) else text)


def invoice_csv_text(invoice: Invoice) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        ["invoice", invoice.number or "DRAFT", "period", invoice.period_start, invoice.period_end]
    )
    writer.writerow(COLUMNS)
    for line in invoice.lines.all():
        writer.writerow(
            [
                line.position,
                line.kind,
                _spreadsheet_safe(line.model_id),
                _spreadsheet_safe(line.description),
                line.quantity,
                line.unit,
                "" if line.unit_price is None else line.unit_price,
                line.amount,
            ]
        )
    for label, value in (
        ("subtotal", invoice.subtotal),
        ("credits_applied", invoice.credits_applied),
        ("tax", invoice.tax),
        ("total", invoice.total),
    ):
        writer.writerow(["", "", "", label, "", "", "", value])
    return out.getvalue()


# --- Seller, due date, terms and payment link ----------------------------------------------


def seller_lines() -> list[str]:
    """The seller block: name, each line of the address, tax id (settings BILLING_SELLER_*)."""
    address = str(settings.BILLING_SELLER_ADDRESS or "").replace("\r\n", "\n")
    lines = [str(settings.BILLING_SELLER_NAME)]
    lines += [line.strip() for line in address.split("\n") if line.strip()]
    if settings.BILLING_SELLER_TAX_ID:
        lines.append(f"Tax id: {settings.BILLING_SELLER_TAX_ID}")
    return [printable(line) for line in lines]


def payment_terms_text() -> str:
    days = settings.BILLING_PAYMENT_TERMS_DAYS
    return printable(
        str(settings.BILLING_PAYMENT_TERMS or "").strip()
        or f"Payment due within {days} day{'s' if days != 1 else ''} of the issue date."
    )


def invoice_due_on(invoice: Invoice) -> date | None:
    """The issue date (UTC) plus the payment terms the invoice was issued with, for an issued
    or paid invoice with something to pay. A draft has no issue date, a credit note and a void
    invoice owe nothing. The terms are stored at issue (Invoice.payment_terms_days), so a later
    change of BILLING_PAYMENT_TERMS_DAYS does not move the due date of invoices already issued;
    invoices issued before the terms were stored use the setting."""
    if invoice.kind != Invoice.Kind.INVOICE or invoice.issued_at is None:
        return None
    if invoice.status not in (Invoice.Status.ISSUED, Invoice.Status.PAID) or invoice.total <= 0:
        return None
    issued_on = invoice.issued_at.astimezone(UTC).date()
    days = invoice.payment_terms_days
    if days is None:
        days = settings.BILLING_PAYMENT_TERMS_DAYS
    return issued_on + timedelta(days=days)


def invoice_payment_link(invoice: Invoice) -> str | None:
    """Where the customer pays this invoice online, or None: while card payments are set up
    (billing.payments, Stripe) and the invoice can be paid, the invoice's page on the portal,
    whose Pay button opens Stripe Checkout. (A Checkout page itself expires within a day; a
    PDF is kept for years.)"""
    try:
        from . import payments
    except ImportError:  # card payments not part of this portal
        return None
    payable = getattr(payments, "invoice_payable", None)
    if payable is None or invoice.kind != Invoice.Kind.INVOICE or not payable(invoice):
        return None
    path = reverse("customer:invoice_detail", args=[invoice.pk])
    return f"{settings.PORTAL_BASE_URL.rstrip('/')}{path}"


@dataclass(frozen=True)
class PaymentDetails:
    due_on: date | None
    terms: str
    link: str | None


def invoice_payment_details(invoice: Invoice) -> PaymentDetails | None:
    """Due date, terms and link of an invoice that has something to pay (None otherwise)."""
    due_on = invoice_due_on(invoice)
    if due_on is None:
        return None
    link = invoice_payment_link(invoice) if invoice.status == Invoice.Status.ISSUED else None
    return PaymentDetails(due_on=due_on, terms=payment_terms_text(), link=link)


def invoice_pdf_bytes(invoice: Invoice) -> bytes:
    pdf = FPDF(format="A4")
    pdf.set_title(_latin1(f"Invoice {invoice.number or 'draft'}"))
    pdf.set_creator(_latin1(settings.BILLING_SELLER_NAME))
    pdf.add_page()
    pdf.set_font("Helvetica", "B", 16)
    title = (
        f"{invoice.get_kind_display()} {invoice.number}"
        if invoice.number
        else "DRAFT invoice (not issued)"
    )
    if invoice.status == Invoice.Status.VOID:
        title += " - VOID"
    pdf.cell(0, 10, _latin1(title), new_x="LMARGIN", new_y="NEXT")
    customer = invoice.customer
    payment = invoice_payment_details(invoice)
    seller = seller_lines()
    pdf.set_font("Helvetica", "B", 10)
    pdf.cell(0, 6, _latin1(seller[0]), new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    for text in seller[1:]:
        pdf.cell(0, 5, _latin1(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)
    bill_to = getattr(customer, "billing_name", "") or customer.name
    header = [
        f"Bill to: {bill_to} <{customer.contact_email}>",
        *[f"    {line}" for line in (getattr(customer, "billing_address", "") or "").splitlines()],
        *([f"Tax id: {customer.tax_id}"] if getattr(customer, "tax_id", "") else []),
        f"Period: {invoice.period_start:%Y-%m-%d} to {invoice.period_end:%Y-%m-%d}",
        f"Plan: {invoice.plan_name}",
        f"Issued: {invoice.issued_at:%Y-%m-%d}" if invoice.issued_at else "Not issued",
        *([f"Due: {payment.due_on:%Y-%m-%d}"] if payment else []),
        f"Status: {invoice.get_status_display()}",
        *(
            [f"Credits invoice {invoice.credited_invoice.number}; added to your prepaid credit"]
            if invoice.credited_invoice is not None
            else []
        ),
    ]
    for text in header:
        pdf.cell(0, 6, _latin1(text), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    widths = (110, 30, 40)
    pdf.set_font("Helvetica", "B", 10)
    for width, text, align in zip(
        widths, ("Description", "Quantity", "Amount"), "LRR", strict=True
    ):
        pdf.cell(width, 7, text, border="B", align=align)
    pdf.ln()
    pdf.set_font("Helvetica", "", 9)
    for line in invoice.lines.all():
        if pdf.get_y() > pdf.page_break_trigger - 25:  # keep a row (up to ~4 lines) on one page
            pdf.add_page()
        y = pdf.get_y()
        pdf.multi_cell(widths[0], 5, _latin1(line.description), new_x="RIGHT", new_y="TOP")
        row_end = pdf.get_y()
        pdf.set_xy(pdf.l_margin + widths[0], y)
        quantity = f"{line.quantity.normalize():,f} {line.unit}".strip()
        pdf.cell(widths[1], 5, _latin1(quantity), align="R")
        pdf.cell(widths[2], 5, f"{line.amount:,} {invoice.currency}", align="R")
        pdf.set_xy(pdf.l_margin, max(row_end, y + 5) + 1)
    pdf.ln(3)
    pdf.set_font("Helvetica", "", 10)
    for label, value, bold in (
        ("Subtotal", invoice.subtotal, False),
        ("Credits applied", -invoice.credits_applied, False),
        (f"Tax ({invoice.tax_rate * 100:.2f} %)", invoice.tax, False),
        ("Total due", invoice.total, True),
    ):
        pdf.set_font("Helvetica", "B" if bold else "", 10)
        pdf.cell(widths[0] + widths[1], 6, label, align="R")
        pdf.cell(
            widths[2], 6, f"{value:,} {invoice.currency}", align="R", new_x="LMARGIN", new_y="NEXT"
        )
    if payment:
        _payment_block(pdf, payment)
    return bytes(pdf.output())


def _payment_block(pdf: FPDF, payment: PaymentDetails) -> None:
    pdf.ln(4)
    pdf.set_font("Helvetica", "", 10)
    pdf.multi_cell(0, 5, _latin1(f"Payment terms: {payment.terms}"), new_x="LMARGIN", new_y="NEXT")
    if payment.link:
        pdf.multi_cell(0, 5, "Pay online:", new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(0, 0, 200)
        pdf.multi_cell(
            0, 5, _latin1(payment.link), link=payment.link, new_x="LMARGIN", new_y="NEXT"
        )
        pdf.set_text_color(0, 0, 0)
