"""Writes: plans, invoice lifecycle (draft -> issued -> paid | void) and manual lines.

The monthly run lives in billing/invoice_run.py and the wallet in billing/wallet.py; both are
re-exported here so callers have one place to import services from.
"""

from datetime import date
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from customers.models import Customer

from .invoice_run import (
    InvoiceRunBusy,
    InvoiceRunRefused,
    invoice_line,
    invoice_run,
    invoice_run_execute,
    invoice_run_request,
)
from .models import (
    CustomerPlan,
    Invoice,
    InvoiceCounter,
    InvoiceImmutable,
    InvoiceLine,
    PricingPlan,
)
from .pricing import PricingError, round_money, tax_amount, to_decimal
from .rating import rate_usage
from .selectors import price_book, terms_for, usage_rows
from .wallet import (  # noqa: F401 (re-export)
    billing_profile_get,
    credit_grant,
    credits_consume,
    credits_restore,
    wallet_after_change,
)


class InvoiceStateError(ValueError):
    """An action that the invoice's current status does not allow."""


# --- Plans --------------------------------------------------------------------------------


@transaction.atomic
def plan_assign(
    *, customer: Customer, plan: PricingPlan, effective_from: date, by=None
) -> CustomerPlan:
    """Put a customer on a plan from a date; the assignment in force then ends that day.
    History is kept: assignments are never edited in place except to close them."""
    if not plan.is_active:
        raise PricingError("This plan is retired.")
    current = (
        CustomerPlan.objects.select_for_update()
        .filter(customer=customer, effective_from__lte=effective_from)
        .order_by("-effective_from")
        .first()
    )
    if current and current.effective_from == effective_from:
        raise PricingError("The customer already has a plan starting that day.")
    if CustomerPlan.objects.filter(customer=customer, effective_from__gt=effective_from).exists():
        raise PricingError("A later plan change is already scheduled.")
    if current and (current.effective_to is None or current.effective_to > effective_from):
        current.effective_to = effective_from
        current.save(update_fields=["effective_to"])
    return CustomerPlan.objects.create(
        customer=customer,
        plan=plan,
        effective_from=effective_from,
        created_by=by if getattr(by, "is_authenticated", False) else None,
    )


# --- Invoices -----------------------------------------------------------------------------


def _tax_rate() -> Decimal:
    return to_decimal(settings.BILLING_TAX_RATE)


def invoice_recalculate(*, invoice: Invoice, credits_applied: Decimal = Decimal(0)) -> Invoice:
    """Totals from the lines. Credits reduce the taxable amount (they are prepaid usage),
    then tax is rounded once on the remainder."""
    subtotal = invoice.lines.aggregate(s=Sum("amount"))["s"] or Decimal("0.00")
    invoice.subtotal = subtotal
    invoice.credits_applied = credits_applied
    invoice.tax_rate = _tax_rate()
    invoice.tax = tax_amount(subtotal - credits_applied, invoice.tax_rate)
    invoice.total = subtotal - credits_applied + invoice.tax
    return invoice


def _locked_draft(invoice_id) -> Invoice:
    invoice = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice_id)
    if invoice.status != Invoice.Status.DRAFT:
        raise InvoiceStateError(f"Invoice {invoice} is {invoice.status}, not a draft.")
    return invoice


@transaction.atomic
def invoice_line_add(
    *, invoice: Invoice, description: str, amount: Decimal, quantity: Decimal = Decimal(1)
) -> InvoiceLine:
    """A manual line (a fee, a discount as a negative amount) on a draft."""
    invoice = _locked_draft(invoice.pk)
    description = (description or "").strip()
    if not description:
        raise PricingError("A line needs a description.")
    amount = round_money(to_decimal(amount))
    position = (
        invoice.lines.order_by("-position").values_list("position", flat=True).first() or 0
    ) + 1
    line = InvoiceLine.objects.create(
        invoice=invoice,
        position=position,
        kind=InvoiceLine.Kind.MANUAL,
        description=description[:300],
        quantity=to_decimal(quantity),
        amount=amount,
    )
    invoice_recalculate(invoice=invoice).save()
    return line


@transaction.atomic
def invoice_draft_refresh(*, invoice: Invoice) -> Invoice:
    """Re-rate a draft from the billed usage as it is now, e.g. after staff re-ingested a day
    of its month or the nightly catch-up loaded a missed one (the run skips customers that
    already have a draft, so it never updates one). Manual lines are kept, after the rated ones.
    Same plan and price rules as the monthly run."""
    invoice = _locked_draft(invoice.pk)
    if invoice.kind != Invoice.Kind.INVOICE:
        raise InvoiceStateError("Only an invoice draft is rated from usage.")
    prices, dates, names = price_book()
    rows = usage_rows(
        invoice.period_start, invoice.period_end, customer_ids=[invoice.customer_id], dates=dates
    ).get(invoice.customer_id, [])
    terms = terms_for(invoice.customer_id, invoice.period_start)
    rated = rate_usage(rows, terms=terms, prices=prices, names=names)
    manual = list(invoice.lines.filter(kind=InvoiceLine.Kind.MANUAL).order_by("position", "id"))
    invoice.lines.exclude(kind=InvoiceLine.Kind.MANUAL).delete()
    InvoiceLine.objects.bulk_create(
        invoice_line(invoice.pk, position, line) for position, line in enumerate(rated, start=1)
    )
    for position, line in enumerate(manual, start=len(rated) + 1):
        if line.position != position:
            line.position = position
            line.save(update_fields=["position"])
    invoice.plan_name = terms.name
    invoice_recalculate(invoice=invoice).save()
    return invoice


@transaction.atomic
def invoice_line_delete(*, line: InvoiceLine) -> None:
    invoice = _locked_draft(line.invoice_id)
    line.delete()
    invoice_recalculate(invoice=invoice).save()


def _next_number(series: str = "invoice") -> str:
    """Invoices and credit notes are two gapless series: INV-000001 and INV-CN-000001."""
    counter, _ = InvoiceCounter.objects.get_or_create(name=series)
    counter = InvoiceCounter.objects.select_for_update().get(pk=counter.pk)
    counter.last_number += 1
    counter.save(update_fields=["last_number"])
    infix = "-CN" if series == "credit_note" else ""
    return f"{settings.BILLING_INVOICE_PREFIX}{infix}-{counter.last_number:06d}"


@transaction.atomic
def invoice_issue(*, invoice: Invoice, today: date | None = None) -> Invoice:
    """Freeze a draft: apply wallet credits, compute tax and total, take the next number.

    The counter row is locked until this transaction commits, so two concurrent issues get
    consecutive numbers, and an issue that fails rolls its number back (no gaps).
    The PDF email is queued on commit."""
    from .tasks import invoice_email_send

    today = today or timezone.now().date()
    invoice = _locked_draft(invoice.pk)
    subtotal = invoice.lines.aggregate(s=Sum("amount"))["s"] or Decimal("0.00")
    credits = credits_consume(invoice=invoice, amount_due=max(Decimal(0), subtotal), on_day=today)
    invoice_recalculate(invoice=invoice, credits_applied=credits)
    invoice.number = _next_number()
    invoice.status = Invoice.Status.ISSUED
    invoice.issued_at = timezone.now()
    invoice.currency = invoice.currency or settings.BILLING_CURRENCY
    invoice.save()
    invoice._stored_status = Invoice.Status.ISSUED
    invoice._stored = {
        f.attname: getattr(invoice, f.attname) for f in invoice._meta.concrete_fields
    }
    if credits:
        wallet_after_change(customer=invoice.customer, on_day=today)
    invoice_id = str(invoice.pk)
    transaction.on_commit(lambda: invoice_email_send.delay(invoice_id))
    return invoice


@transaction.atomic
def invoice_mark_paid(*, invoice: Invoice) -> Invoice:
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != Invoice.Status.ISSUED or invoice.kind != Invoice.Kind.INVOICE:
        raise InvoiceStateError("Only an issued invoice can be marked paid.")
    invoice.status = Invoice.Status.PAID
    invoice.paid_at = timezone.now()
    invoice.save(update_fields=["status", "paid_at"])
    return invoice


@transaction.atomic
def invoice_void(*, invoice: Invoice, reason: str, reissue: bool = False) -> Invoice | None:
    """Void an issued invoice (its number stays used; credits go back to the wallet).
    With `reissue`, a new draft copying its lines is returned for correction and issue."""
    reason = (reason or "").strip()
    if not reason:
        raise PricingError("Say why the invoice is voided.")
    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status == Invoice.Status.DRAFT:
        raise InvoiceStateError("A draft is not voided: edit it, or delete its lines.")
    if invoice.status == Invoice.Status.VOID:
        raise InvoiceStateError("This invoice is already void.")
    if invoice.kind == Invoice.Kind.CREDIT_NOTE:
        raise InvoiceStateError("A credit note is final; issue an invoice line to undo it.")
    if invoice.credit_notes.exists():
        raise InvoiceStateError("This invoice has credit notes: correct it with another one.")
    if invoice.status == Invoice.Status.PAID and not reissue:
        raise InvoiceStateError("A paid invoice is voided only to reissue it.")
    credits_restore(invoice=invoice)
    invoice.status = Invoice.Status.VOID
    invoice.voided_at = timezone.now()
    invoice.void_reason = reason[:300]
    invoice.save(update_fields=["status", "voided_at", "void_reason"])
    if not reissue:
        return None
    draft = Invoice.objects.create(
        customer=invoice.customer,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        currency=invoice.currency,
        plan_name=invoice.plan_name,
        replaces=invoice,
    )
    InvoiceLine.objects.bulk_create(
        InvoiceLine(
            invoice=draft,
            position=line.position,
            kind=line.kind,
            model_id=line.model_id,
            description=line.description,
            quantity=line.quantity,
            unit=line.unit,
            unit_price=line.unit_price,
            amount=line.amount,
        )
        for line in invoice.lines.all()
    )
    invoice_recalculate(invoice=draft).save()
    return draft


@transaction.atomic
def credit_note_issue(*, invoice: Invoice, amount: Decimal, reason: str) -> Invoice:
    """Credit part of an issued or paid invoice without touching it: a credit note with its own
    gapless number, a negative line of `amount` (before tax) plus the matching tax, whose value
    goes to the customer's prepaid wallet (Stripe's "credit the customer balance")."""
    reason = (reason or "").strip()
    if not reason:
        raise PricingError("Say why the invoice is credited.")
    amount = to_decimal(amount)
    if amount <= 0 or amount != round_money(amount):
        raise PricingError("A credit note is a positive amount in whole cents.")
    invoice = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)
    if invoice.kind != Invoice.Kind.INVOICE or invoice.status not in (
        Invoice.Status.ISSUED,
        Invoice.Status.PAID,
    ):
        raise InvoiceStateError("Only an issued or paid invoice can be credited.")
    credited = -(invoice.credit_notes.aggregate(s=Sum("subtotal"))["s"] or Decimal(0))
    if amount > invoice.subtotal - credited:
        raise PricingError(
            f"At most {invoice.subtotal - credited} of {invoice.number} is left to credit."
        )
    tax = tax_amount(amount, invoice.tax_rate)
    note = Invoice.objects.create(
        kind=Invoice.Kind.CREDIT_NOTE,
        customer=invoice.customer,
        period_start=invoice.period_start,
        period_end=invoice.period_end,
        currency=invoice.currency,
        plan_name=invoice.plan_name,
        credited_invoice=invoice,
        subtotal=-amount,
        tax_rate=invoice.tax_rate,
        tax=-tax,
        total=-(amount + tax),
    )
    InvoiceLine.objects.create(
        invoice=note,
        position=1,
        kind=InvoiceLine.Kind.MANUAL,
        description=f"Credit for {invoice.number}: {reason}"[:300],
        quantity=Decimal(1),
        amount=-amount,
    )
    note.number = _next_number("credit_note")
    note.status = Invoice.Status.ISSUED
    note.issued_at = timezone.now()
    note.save()
    credit_grant(
        customer=invoice.customer,
        amount=amount + tax,
        kind="credit_note",
        note=f"Credit note {note.number} for {invoice.number}",
    )
    from .tasks import invoice_email_send

    note_id = str(note.pk)
    transaction.on_commit(lambda: invoice_email_send.delay(note_id))
    return note


__all__ = [
    "InvoiceImmutable",
    "InvoiceRunBusy",
    "InvoiceRunRefused",
    "InvoiceStateError",
    "credit_note_issue",
    "invoice_draft_refresh",
    "invoice_issue",
    "invoice_line_add",
    "invoice_line_delete",
    "invoice_mark_paid",
    "invoice_recalculate",
    "invoice_run",
    "invoice_run_execute",
    "invoice_run_request",
    "invoice_void",
    "plan_assign",
]
