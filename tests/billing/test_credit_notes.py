"""Credit notes: correct an issued invoice without changing it; the value goes to the wallet."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.core import mail
from django.urls import reverse

from billing.models import CreditGrant, Invoice
from billing.pricing import PricingError
from billing.selectors import credit_balance, credit_ledger
from billing.services import (
    InvoiceStateError,
    credit_grant,
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


# --- A credit note never gives back more than was charged --------------------------------


def _issue(customer, amount, today=ISSUE_DAY):
    invoice = Invoice.objects.create(
        customer=customer, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31)
    )
    invoice_line_add(invoice=invoice, description="Usage", amount=D(amount))
    return invoice_issue(invoice=invoice, today=today)


def test_an_invoice_paid_from_credit_is_credited_without_tax(customer, settings):
    settings.BILLING_TAX_RATE = "0.2"
    grant = credit_grant(customer=customer, amount=D("10.00"))
    invoice = _issue(customer, "10.00")
    # Credits are taken before tax: 10.00 - 10.00 of credit = 0.00 taxable, tax 0.00, total 0.00.
    assert (invoice.credits_applied, invoice.tax, invoice.total) == (D("10"), D("0"), D("0"))
    note = credit_note_issue(invoice=invoice, amount=D("10.00"), reason="Outage")
    # 10.00 of credit and no tax were charged, so 10.00 goes back (not 10.00 + 20 % = 12.00),
    # to the grant it came from.
    assert (note.subtotal, note.tax, note.total) == (D("-10.00"), D("0.00"), D("-10.00"))
    assert credit_balance(customer.pk) == D("10.00")
    grant.refresh_from_db()
    assert grant.remaining == D("10.00")
    assert not CreditGrant.objects.filter(kind="credit_note").exists()
    ledger = [(e["kind"], e["amount"], e["detail"]) for e in credit_ledger(customer.pk)]
    assert ("Returned (credit note)", D("10.00"), note.number) in ledger
    with pytest.raises(PricingError, match=r"At most 0\.00"):
        credit_note_issue(invoice=invoice, amount=D("0.01"), reason="again")


def test_ten_small_credit_notes_give_back_the_tax_charged_and_no_more(customer, settings):
    settings.BILLING_TAX_RATE = "0.075"
    invoice = _issue(customer, "10.00")
    assert (invoice.tax, invoice.total) == (D("0.75"), D("10.75"))
    notes = [
        credit_note_issue(invoice=invoice, amount=D("1.00"), reason=f"day {day}")
        for day in range(1, 11)
    ]
    # Each 1.00 is a tenth of the invoice: its tax share is 0.075. Rounding each note on its
    # own (half-up: 0.08) gave back 10 x 0.08 = 0.80 of a 0.75 tax. The share is computed on
    # the amount credited so far: 0.075 k rounded after k notes is 0.08, 0.15, 0.23, 0.30,
    # 0.38, 0.45, 0.53, 0.60, 0.68, 0.75, so the notes take the differences.
    assert [-n.tax for n in notes] == [D(x) for x in ["0.08", "0.07"] * 5]
    assert sum(-n.tax for n in notes) == D("0.75")
    assert sum(-n.total for n in notes) == D("10.75")  # was 10.80
    assert credit_balance(customer.pk) == D("10.75")
    with pytest.raises(PricingError, match=r"At most 0\.00"):
        credit_note_issue(invoice=invoice, amount=D("0.01"), reason="one more")


def test_credit_part_returns_to_the_wallet_and_tax_follows_the_tax_charged(customer, settings):
    settings.BILLING_TAX_RATE = "0.2"
    grant = credit_grant(customer=customer, amount=D("40.00"))
    invoice = _issue(customer, "100.00")
    # 100.00 - 40.00 of credit = 60.00 taxable; tax 12.00; total due 72.00.
    assert (invoice.credits_applied, invoice.tax, invoice.total) == (
        D("40.00"),
        D("12.00"),
        D("72.00"),
    )
    first = credit_note_issue(invoice=invoice, amount=D("50.00"), reason="half")
    # Half the invoice: half its credits (20.00) back to the grant, half its tax (6.00), and
    # the rest, 50.00 - 20.00 + 6.00 = 36.00, as a credit-note grant. Value 56.00.
    assert (first.subtotal, first.tax, first.total) == (D("-50.00"), D("-6.00"), D("-56.00"))
    grant.refresh_from_db()
    assert grant.remaining == D("20.00")
    assert CreditGrant.objects.get(kind="credit_note").amount == D("36.00")
    second = credit_note_issue(invoice=invoice, amount=D("50.00"), reason="the rest")
    assert (second.tax, second.total) == (D("-6.00"), D("-56.00"))
    grant.refresh_from_db()
    assert grant.remaining == D("40.00")  # all the credit it paid is back
    # Given back in all: 40.00 of credit + 72.00 = 112.00, exactly what the invoice took.
    assert credit_balance(customer.pk) == D("112.00")
    assert -(first.tax + second.tax) == invoice.tax


def test_credit_notes_after_an_uneven_split_never_exceed_the_tax(customer, settings):
    settings.BILLING_TAX_RATE = "0.2"
    invoice = _issue(customer, "0.10")  # tax 0.02
    notes = [credit_note_issue(invoice=invoice, amount=D("0.03"), reason="x") for _ in range(3)]
    notes.append(credit_note_issue(invoice=invoice, amount=D("0.01"), reason="x"))
    # Tax share after 0.03, 0.06, 0.09, 0.10 credited: 0.006 -> 0.01, 0.012 -> 0.01,
    # 0.018 -> 0.02, 0.02: the notes take 0.01, 0.00, 0.01, 0.00.
    assert [-n.tax for n in notes] == [D("0.01"), D("0.00"), D("0.01"), D("0.00")]
    assert sum(-n.total for n in notes) == invoice.total == D("0.12")
