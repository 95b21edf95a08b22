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

from core.errors import StateConflict
from customers.audit import audit_record
from customers.models import Customer

from .credit_sync import credit_push, credit_push_on_commit, period_spend_record  # noqa: F401
from .invoice_run import (
    InvoiceRunBusy,
    InvoiceRunRefused,
    column_problems,
    customer_label,
    invoice_line,
    invoice_run,
    invoice_run_execute,
    invoice_run_request,
)
from .models import (
    CreditApplication,
    CustomerPlan,
    Invoice,
    InvoiceCounter,
    InvoiceImmutable,
    InvoiceLine,
    PricingPlan,
)
from .price_book import (
    model_price_add,
    model_price_build,
    model_price_schedule,
)
from .pricing import (
    PricingError,
    plan_problems,
    plan_problems_text,
    round_money,
    share,
    tax_amount,
    to_decimal,
)
from .rating import rate_usage
from .selectors import price_book, terms_for, usage_rows
from .wallet import (  # noqa: F401 (re-export)
    billing_profile_get,
    credit_grant,
    credit_grant_create,
    credits_consume,
    credits_restore,
    credits_return,
    wallet_after_change,
    wallet_rearm,
)


class InvoiceStateError(StateConflict, ValueError):
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
    if problems := plan_problems(plan):  # stored before the plan rule, or written around it
        raise PricingError(
            f"Plan {plan.name!r} cannot be applied: {plan_problems_text(problems)}; correct it"
            " on the catalog page first."
        )
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
    if problem := column_problems(invoice, []):
        raise PricingError(f"{customer_label(invoice.customer_id)}: {problem}")
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
    try:
        terms = terms_for(invoice.customer_id, invoice.period_start)
        rated = rate_usage(rows, terms=terms, prices=prices, names=names)
        if problem := column_problems(None, rated):
            raise PricingError(problem)
    except (PricingError, ArithmeticError) as exc:
        raise PricingError(f"{customer_label(invoice.customer_id)}: {exc}") from exc
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
    An invoice with nothing due (total 0.00) is paid at issue.

    The counter row is locked until this transaction commits, so two concurrent issues get
    consecutive numbers, and an issue that fails rolls its number back (no gaps).
    The PDF email is queued on commit."""
    from .tasks import invoice_email_send

    today = today or timezone.now().date()
    invoice = _locked_draft(invoice.pk)
    subtotal = invoice.lines.aggregate(s=Sum("amount"))["s"] or Decimal("0.00")
    credits = credits_consume(invoice=invoice, amount_due=max(Decimal(0), subtotal), on_day=today)
    # A prepaid customer's month leaves the proxy's count as the wallet pays for it: its spend
    # there is recorded now and added to the credit granted (billing/credit_sync.py).
    period_spend_record(invoice=invoice)
    invoice_recalculate(invoice=invoice, credits_applied=credits)
    invoice.number = _next_number()
    invoice.status = Invoice.Status.ISSUED
    invoice.issued_at = timezone.now()
    invoice.payment_terms_days = settings.BILLING_PAYMENT_TERMS_DAYS
    invoice.currency = invoice.currency or settings.BILLING_CURRENCY
    invoice.save()
    if invoice.total == 0:
        # Nothing is due (no charge, or prepaid credit paid it all): settled at issue, as
        # Stripe marks an invoice with nothing due paid when it is finalized.
        invoice.status = Invoice.Status.PAID
        invoice.paid_at = invoice.issued_at
        invoice.save(update_fields=["status", "paid_at"])
    if credits:
        wallet_after_change(customer=invoice.customer, on_day=today)
    credit_push_on_commit(customer_id=invoice.customer_id)
    invoice_id = str(invoice.pk)
    transaction.on_commit(lambda: invoice_email_send.delay(invoice_id))
    return invoice


@transaction.atomic
def invoice_mark_paid(
    *, invoice: Invoice, by=None, source: str = "", via: str = "manual"
) -> Invoice:
    """issued -> paid, audited. `via`: "manual" (staff, the API) or "stripe" (a Checkout
    payment, billing/stripe_events.py); open Checkout Sessions of the invoice are closed."""

    from .payments import checkout_sessions_expire_on_commit

    invoice = Invoice.objects.select_for_update().get(pk=invoice.pk)
    if invoice.status != Invoice.Status.ISSUED or invoice.kind != Invoice.Kind.INVOICE:
        raise InvoiceStateError("Only an issued invoice can be marked paid.")
    invoice.status = Invoice.Status.PAID
    invoice.paid_at = timezone.now()
    invoice.save(update_fields=["status", "paid_at"])
    audit_record(
        customer=invoice.customer,
        actor=by,
        action="invoice.paid",
        object_type="invoice",
        object_id=str(invoice.pk),
        before={"status": Invoice.Status.ISSUED},
        after={"status": invoice.status, "number": invoice.number, "paid_via": via},
        source=source,
    )
    checkout_sessions_expire_on_commit(invoice_id=invoice.pk)
    return invoice


def _after_credit_returned(invoice: Invoice, *, settled: bool = False) -> None:
    """Credit back in a grant whose card purchase was refunded is taken back again
    (billing/stripe_refunds.py); a settled (voided) invoice's open Checkout Sessions are
    closed (billing/payments.py)."""
    from .payments import checkout_sessions_expire_on_commit
    from .stripe_refunds import refund_shortfalls_settle

    refund_shortfalls_settle(customer_id=invoice.customer_id)
    if settled:
        checkout_sessions_expire_on_commit(invoice_id=invoice.pk)


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
    if invoice.status == Invoice.Status.PAID and invoice.total > 0 and not reissue:
        # Money was received; an invoice settled at issue (nothing due) gives back only credits.
        raise InvoiceStateError("A paid invoice is voided only to reissue it.")
    credits_restore(invoice=invoice)
    credit_push_on_commit(customer_id=invoice.customer_id)  # the month stays recorded
    _after_credit_returned(invoice, settled=True)
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
    gapless number and a negative line of `amount` (before tax), whose value goes back to the
    customer's prepaid credit.

    A credit note never gives back more than the invoice charged, in total or in tax. Credits
    were taken before tax, so the invoice's tax was charged only on the part not paid from
    prepaid credit: each note takes its share of the invoice's tax and of its credits in
    proportion to the amount credited, computed on the amount credited so far (cents rounded
    once), so the last note settles the rounding remainder and the notes together give back
    exactly the invoice's tax and credits. The credit share returns to the grants it came
    from; the rest (the share paid or owed in money, with its tax) becomes a `credit_note`
    grant that pays the next invoices (Stripe's "credit the customer balance")."""
    reason = (reason or "").strip()
    if not reason:
        raise PricingError("Say why the invoice is credited.")
    amount = to_decimal(amount)
    if not amount.is_finite() or amount <= 0 or amount != round_money(amount):
        raise PricingError("A credit note is a positive amount in whole cents.")
    invoice = Invoice.objects.select_for_update().select_related("customer").get(pk=invoice.pk)
    if invoice.kind != Invoice.Kind.INVOICE or invoice.status not in (
        Invoice.Status.ISSUED,
        Invoice.Status.PAID,
    ):
        raise InvoiceStateError("Only an issued or paid invoice can be credited.")
    earlier = invoice.credit_notes.aggregate(subtotal=Sum("subtotal"), tax=Sum("tax"))
    credited = -(earlier["subtotal"] or Decimal(0))
    tax_credited = -(earlier["tax"] or Decimal(0))
    credits_returned = -(
        CreditApplication.objects.filter(invoice__credited_invoice=invoice, amount__lt=0).aggregate(
            s=Sum("amount")
        )["s"]
        or Decimal(0)
    )
    if amount > invoice.subtotal - credited:
        raise PricingError(
            f"At most {max(Decimal('0.00'), invoice.subtotal - credited)} of {invoice.number} is"
            " left to credit."
        )
    credited_after = credited + amount
    tax = _bounded(
        share(invoice.tax, credited_after, invoice.subtotal) - tax_credited,
        invoice.tax - tax_credited,
    )
    credit_part = min(
        amount,
        _bounded(
            share(invoice.credits_applied, credited_after, invoice.subtotal) - credits_returned,
            invoice.credits_applied - credits_returned,
        ),
    )
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
    returned = credits_return(invoice=invoice, note=note, amount=credit_part)
    rest = amount + tax - returned
    credit_push_on_commit(customer_id=invoice.customer_id)
    _after_credit_returned(invoice)
    if rest > 0:
        credit_grant_create(
            customer=invoice.customer,
            amount=rest,
            kind="credit_note",
            note=f"Credit note {note.number} for {invoice.number}",
        )
    else:
        wallet_rearm(customer_id=invoice.customer_id)
    from .tasks import invoice_email_send

    note_id = str(note.pk)
    transaction.on_commit(lambda: invoice_email_send.delay(note_id))
    return note


def _bounded(value: Decimal, most: Decimal) -> Decimal:
    """`value` kept between 0 and `most` (what is left of the invoice's tax or credits)."""
    return max(Decimal("0.00"), min(value, most))


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
    "model_price_add",
    "model_price_build",
    "model_price_schedule",
    "plan_assign",
]
