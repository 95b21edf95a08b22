"""draft -> issued -> paid | void; numbers at issue; issued invoices never change."""

from datetime import date
from decimal import Decimal as D

import pytest
from django.core import mail

from billing.models import Invoice, InvoiceCounter, InvoiceImmutable, InvoiceLine
from billing.pricing import PricingError
from billing.selectors import credit_balance
from billing.services import (
    InvoiceStateError,
    credit_grant,
    invoice_issue,
    invoice_line_add,
    invoice_mark_paid,
    invoice_void,
)

ISSUE_DAY = date(2026, 11, 2)


@pytest.fixture
def draft(customer):
    invoice = Invoice.objects.create(
        customer=customer, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31)
    )
    invoice_line_add(invoice=invoice, description="Model A usage", amount=D("80.00"))
    invoice_line_add(invoice=invoice, description="Support", amount=D("20.004"))
    invoice.refresh_from_db()
    return invoice


def test_manual_lines_are_rounded_and_totalled(draft):
    assert draft.subtotal == D("100.00")
    assert list(draft.lines.values_list("amount", flat=True)) == [D("80.00"), D("20.00")]


def test_manual_line_needs_description(draft):
    with pytest.raises(PricingError):
        invoice_line_add(invoice=draft, description="  ", amount=D("1"))


def test_issue_assigns_sequential_numbers_and_emails_pdf(
    draft, customer, other_customer, django_capture_on_commit_callbacks
):
    second = Invoice.objects.create(
        customer=other_customer, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31)
    )
    with django_capture_on_commit_callbacks(execute=True):
        first = invoice_issue(invoice=draft, today=ISSUE_DAY)
        second = invoice_issue(invoice=second, today=ISSUE_DAY)
    assert (first.number, second.number) == ("INV-000001", "INV-000002")
    assert first.status == Invoice.Status.ISSUED and first.issued_at
    assert len(mail.outbox) == 2
    message = mail.outbox[0]
    assert message.to == [customer.contact_email]
    assert "INV-000001" in message.subject
    name, content, mimetype = message.attachments[0]
    assert (name, mimetype) == ("INV-000001.pdf", "application/pdf")
    assert content.startswith(b"%PDF")
    assert message.alternatives[0][1] == "text/html"


def test_failed_issue_does_not_use_a_number(draft, monkeypatch):
    import billing.services as services

    def boom(**kwargs):
        raise RuntimeError("crash after numbering")

    monkeypatch.setattr(services, "wallet_after_change", boom)
    monkeypatch.setattr(services, "credits_consume", lambda **kw: D("1.00"))
    with pytest.raises(RuntimeError):
        invoice_issue(invoice=draft, today=ISSUE_DAY)
    draft.refresh_from_db()
    assert draft.status == Invoice.Status.DRAFT and draft.number is None
    assert not InvoiceCounter.objects.filter(last_number__gt=0).exists()


def test_issued_invoice_is_immutable(draft):
    invoice = invoice_issue(invoice=draft, today=ISSUE_DAY)
    invoice.total = D("1.00")
    with pytest.raises(InvoiceImmutable):
        invoice.save()
    fresh = Invoice.objects.get(pk=invoice.pk)
    fresh.subtotal = D("0")
    with pytest.raises(InvoiceImmutable):
        fresh.save()
    line = fresh.lines.first()
    line.amount = D("0")
    with pytest.raises(InvoiceImmutable):
        line.save()
    with pytest.raises(InvoiceImmutable):
        line.delete()
    with pytest.raises(InvoiceImmutable):
        InvoiceLine.objects.create(invoice=fresh, kind="manual", description="x", amount=D(1))
    with pytest.raises(InvoiceImmutable):
        fresh.delete()
    with pytest.raises(InvoiceStateError):
        invoice_line_add(invoice=fresh, description="late fee", amount=D("5"))
    with pytest.raises(InvoiceStateError):
        invoice_issue(invoice=fresh)
    assert Invoice.objects.get(pk=invoice.pk).total == D("100.00")


def test_mark_paid_then_only_reissue(draft):
    invoice = invoice_issue(invoice=draft, today=ISSUE_DAY)
    paid = invoice_mark_paid(invoice=invoice)
    assert paid.status == Invoice.Status.PAID and paid.paid_at
    with pytest.raises(InvoiceStateError):
        invoice_mark_paid(invoice=paid)
    with pytest.raises(InvoiceStateError):
        invoice_void(invoice=paid, reason="wrong")


def test_void_keeps_number_and_reissue_makes_new_draft(draft):
    invoice = invoice_issue(invoice=draft, today=ISSUE_DAY)
    with pytest.raises(PricingError):
        invoice_void(invoice=invoice, reason="")
    replacement = invoice_void(invoice=invoice, reason="Wrong support fee", reissue=True)
    invoice.refresh_from_db()
    assert invoice.status == Invoice.Status.VOID and invoice.number == "INV-000001"
    assert replacement.status == Invoice.Status.DRAFT and replacement.replaces_id == invoice.pk
    assert replacement.subtotal == D("100.00")
    support = replacement.lines.get(description="Support")
    support.delete()
    invoice_line_add(invoice=replacement, description="Support (corrected)", amount=D("10"))
    reissued = invoice_issue(invoice=replacement, today=ISSUE_DAY)
    assert reissued.number == "INV-000002" and reissued.total == D("90.00")
    with pytest.raises(InvoiceStateError):
        invoice_void(invoice=invoice, reason="again")


def test_draft_cannot_be_voided_or_paid(draft):
    with pytest.raises(InvoiceStateError):
        invoice_void(invoice=draft, reason="x")
    with pytest.raises(InvoiceStateError):
        invoice_mark_paid(invoice=draft)


@pytest.mark.skipif(
    __import__("django.db").db.connection.vendor != "postgresql", reason="PostgreSQL triggers"
)
def test_database_refuses_changes_that_bypass_the_model(draft):
    from django.db import DatabaseError, transaction

    invoice = invoice_issue(invoice=draft, today=ISSUE_DAY)
    for attempt in (
        lambda: Invoice.objects.filter(pk=invoice.pk).update(total=D("1")),
        lambda: InvoiceLine.objects.filter(invoice=invoice).update(amount=D("0")),
        lambda: InvoiceLine.objects.filter(invoice=invoice).delete(),
        lambda: Invoice.objects.filter(pk=invoice.pk).delete(),
    ):
        with pytest.raises(DatabaseError, match="cannot"), transaction.atomic():
            attempt()
    # The lifecycle itself still works at the database level.
    assert Invoice.objects.filter(pk=invoice.pk).update(status="paid") == 1


# --- The status only moves forward ---------------------------------------------------------


def test_an_issued_or_paid_invoice_never_goes_back(draft):
    issued = invoice_issue(invoice=draft, today=ISSUE_DAY)
    issued.status = Invoice.Status.DRAFT
    with pytest.raises(InvoiceImmutable, match="issued: it cannot move to draft"):
        issued.save()
    with pytest.raises(InvoiceImmutable, match="cannot move to draft"):
        issued.save(update_fields=["status"])
    paid = invoice_mark_paid(invoice=issued)
    for earlier in (Invoice.Status.ISSUED, Invoice.Status.DRAFT):
        paid.status = earlier
        with pytest.raises(InvoiceImmutable, match=f"paid: it cannot move to {earlier}"):
            paid.save()
    stored = Invoice.objects.get(pk=draft.pk)
    assert (stored.status, stored.number) == (Invoice.Status.PAID, "INV-000001")


def test_a_stale_draft_saved_after_the_issue_does_not_undo_it(draft):
    stale = Invoice.objects.get(pk=draft.pk)  # say, a second staff tab opened on the draft
    invoice_issue(invoice=draft, today=ISSUE_DAY)
    assert stale.status == Invoice.Status.DRAFT and stale.number is None
    stale.plan_name = "Edited in the other tab"
    with pytest.raises(InvoiceImmutable, match="INV-000001 is issued: it cannot move to draft"):
        stale.save()
    with pytest.raises(InvoiceImmutable, match="cannot change plan_name"):
        stale.save(update_fields=["plan_name"])
    with pytest.raises(InvoiceImmutable):
        stale.delete()
    stored = Invoice.objects.get(pk=draft.pk)
    assert (stored.status, stored.number, stored.plan_name) == ("issued", "INV-000001", "")
    assert stored.total == D("100.00")


@pytest.mark.skipif(
    __import__("django.db").db.connection.vendor != "postgresql", reason="PostgreSQL triggers"
)
def test_database_refuses_backward_moves(draft, other_customer):
    from django.db import DatabaseError, connection, transaction

    def set_status(invoice, status):
        with connection.cursor() as cursor:
            cursor.execute(
                "UPDATE billing_invoice SET status = %s WHERE id = %s", [status, invoice.pk]
            )

    invoice = invoice_issue(invoice=draft, today=ISSUE_DAY)
    for attempt in (
        lambda: set_status(invoice, "draft"),
        lambda: Invoice.objects.filter(pk=invoice.pk).update(status="draft"),
    ):
        with (
            pytest.raises(DatabaseError, match="issued: it cannot move to draft"),
            transaction.atomic(),
        ):
            attempt()
    set_status(invoice, "paid")  # forward moves still work at the database level
    for status in ("issued", "draft"):
        with (
            pytest.raises(DatabaseError, match=f"paid: it cannot move to {status}"),
            transaction.atomic(),
        ):
            set_status(invoice, status)
    set_status(invoice, "void")
    with pytest.raises(DatabaseError, match="void for good"), transaction.atomic():
        set_status(invoice, "paid")
    # A draft cannot skip the issue (no number, no credits, no tax) straight to paid or void.
    other = Invoice.objects.create(
        customer=other_customer, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31)
    )
    for status in ("paid", "void"):
        with (
            pytest.raises(
                DatabaseError, match=rf"\(no number\) is draft: it cannot move to {status}"
            ),
            transaction.atomic(),
        ):
            set_status(other, status)
    assert Invoice.objects.get(pk=other.pk).status == "draft"


# --- Nothing due: settled at issue -----------------------------------------------------------


def test_an_invoice_with_nothing_due_is_paid_at_issue(customer, other_customer):
    empty = Invoice.objects.create(
        customer=customer, period_start=date(2026, 9, 1), period_end=date(2026, 9, 30)
    )
    empty = invoice_issue(invoice=empty, today=ISSUE_DAY)
    assert (empty.total, empty.status) == (D("0.00"), Invoice.Status.PAID)
    assert empty.paid_at == empty.issued_at and empty.number == "INV-000001"
    # Paid entirely from prepaid credit: nothing is due either.
    credit_grant(customer=other_customer, amount=D("50.00"))
    covered = Invoice.objects.create(
        customer=other_customer, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31)
    )
    invoice_line_add(invoice=covered, description="Usage", amount=D("30.00"))
    covered = invoice_issue(invoice=covered, today=ISSUE_DAY)
    assert (covered.credits_applied, covered.total) == (D("30.00"), D("0.00"))
    assert covered.status == Invoice.Status.PAID
    with pytest.raises(InvoiceStateError):
        invoice_mark_paid(invoice=covered)
    # Nothing was paid in money, so it can still be voided without a reissue: credits return.
    invoice_void(invoice=covered, reason="Wrong customer")
    assert credit_balance(other_customer.pk, ISSUE_DAY) == D("50.00")


def test_an_invoice_with_something_due_stays_issued(draft):
    invoice = invoice_issue(invoice=draft, today=ISSUE_DAY)
    assert (invoice.total, invoice.status, invoice.paid_at) == (D("100.00"), "issued", None)
