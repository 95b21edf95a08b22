"""Invoice documents: PDF (fpdf2, pure Python) and CSV.

fpdf2 rather than WeasyPrint: WeasyPrint needs the system Pango/HarfBuzz libraries, which a
bare machine lacks, and `make test` must work there. fpdf2's core fonts are Latin-1, so text is
transliterated to it (names in other scripts show with '?'), a trade-off noted in docs/billing.md.
"""

import csv
import io

from django.conf import settings
from fpdf import FPDF

from portal.text import printable

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
    pdf.set_font("Helvetica", "", 10)
    customer = invoice.customer
    bill_to = getattr(customer, "billing_name", "") or customer.name
    header = [
        f"From: {settings.BILLING_SELLER_NAME}",
        f"To: {bill_to} <{customer.contact_email}>",
        *[f"    {line}" for line in (getattr(customer, "billing_address", "") or "").splitlines()],
        *([f"Tax id: {customer.tax_id}"] if getattr(customer, "tax_id", "") else []),
        f"Period: {invoice.period_start:%Y-%m-%d} to {invoice.period_end:%Y-%m-%d}",
        f"Plan: {invoice.plan_name}",
        f"Issued: {invoice.issued_at:%Y-%m-%d}" if invoice.issued_at else "Not issued",
        f"Status: {invoice.get_status_display()}",
        *(
            [f"Credits invoice {invoice.credited_invoice.number}; added to your prepaid credit"]
            if invoice.credited_invoice_id
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
    return bytes(pdf.output())
