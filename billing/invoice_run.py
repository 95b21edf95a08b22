"""The monthly invoice run: a draft for one calendar month for every active customer that
existed during it (one created after the month ended gets none), and for any other customer
with usage in it.

Set-based, so 10,000 customers take seconds, not an hour: one grouped usage query for the whole
period (per customer, model and price period), one query for the plans in force, rating in
memory, then bulk inserts of invoices and lines in chunks, all in one transaction: every
customer is rated before anything is written, so a plan that cannot be applied, usage that
cannot be billed (a negative count, an amount too large for its column) or a failed insert
half-way leaves no draft behind, only the error, which names the customer and the plan.

Idempotent: customers that already have the period's invoice are skipped, and the partial unique
constraint (customer, period_start) makes a concurrent second run fail its chunk instead of
duplicating; running again then fills in whatever is missing. For the same reason a month is
only run once it has ended: a draft made mid-month would hold part of the usage, and the real
run on the 1st would then skip that customer.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from customers.models import Customer

from .models import Invoice, InvoiceLine, InvoiceRun
from .pricing import PricingError, column_overflow, tax_amount, to_decimal
from .rating import PlanTerms, rate_usage
from .selectors import (
    default_terms,
    month_bounds,
    plan_assignments_in_force,
    price_book,
    usage_rows,
)

logger = logging.getLogger(__name__)
CHUNK = 1000
# A queued or running InvoiceRun with no progress for this long lost its worker (killed,
# redeployed) or its queued task: the next request for its month marks it failed. Rating
# reports progress every CHUNK customers, so a live run is never this quiet.
STALE_MINUTES = 30


class InvoiceRunRefused(ValueError):
    """A run that must not happen (the month has not ended yet)."""


@dataclass
class RunResult:
    period_start: date
    created: int = 0
    skipped: int = 0
    chunks_retried: int = 0


class InvoiceRunCustomerError(PricingError):
    """One customer could not be rated; the message names the customer and the plan."""


def customer_label(customer_id) -> str:
    """ "customer 'Acme' (<id>)" for an error message (one query, only when there is an error)."""
    name = Customer.objects.filter(pk=customer_id).values_list("name", flat=True).first()
    return f"customer {name!r} ({customer_id})" if name is not None else f"customer {customer_id}"


def _limits(model, names):
    """(attribute, max_digits, decimal_places, bound) of DECIMAL columns: any value strictly
    between -bound and bound fits once rounded (the quick test; column_overflow decides)."""
    limits = []
    for name in names:
        field = model._meta.get_field(name)
        digits, places = field.max_digits, field.decimal_places
        bound = Decimal(10) ** (digits - places) - Decimal(10) ** -places
        limits.append((field.attname, digits, places, bound))
    return limits


_LINE_LIMITS = _limits(InvoiceLine, ("amount", "quantity", "unit_price"))
_INVOICE_LIMITS = _limits(Invoice, ("subtotal", "tax", "total"))


def column_problems(invoice: Invoice | None, lines) -> str | None:
    """What would not fit its DECIMAL column (max_digits), or None. Checked before writing:
    PostgreSQL refuses the insert with a bare "numeric field overflow", and SQLite stores a
    value that Django then cannot read back."""
    for name, digits, places, bound in _LINE_LIMITS:
        for line in lines:
            value = getattr(line, name)
            if value is None or -bound < value < bound:
                continue
            if column_overflow(value, max_digits=digits, decimal_places=places):
                return (
                    f"the line {line.description[:80]!r} has {name} {value}, more than the"
                    f" {digits - places} digits before the decimal point its column holds"
                )
    if invoice is not None:
        for name, digits, places, bound in _INVOICE_LIMITS:
            value = getattr(invoice, name)
            if -bound < value < bound:
                continue
            if column_overflow(value, max_digits=digits, decimal_places=places):
                return (
                    f"the invoice {name} {value} has more than the {digits - places} digits"
                    " before the decimal point its column holds"
                )
    return None


def _build(customer_id, rows, terms, period_start, period_end, tax_rate, prices, names):
    lines = rate_usage(rows, terms=terms, prices=prices, names=names)
    subtotal = sum((line.amount for line in lines), Decimal("0.00"))
    tax = tax_amount(subtotal, tax_rate)
    invoice = Invoice(
        customer_id=customer_id,
        period_start=period_start,
        period_end=period_end,
        currency=settings.BILLING_CURRENCY,
        plan_name=terms.name,
        subtotal=subtotal,
        tax_rate=tax_rate,
        tax=tax,
        total=subtotal + tax,
    )
    if problem := column_problems(invoice, lines):
        raise PricingError(problem)
    return invoice, lines


def _rate_error(exc: Exception, customer_id, plan_name: str) -> InvoiceRunCustomerError:
    """The run stops on the first customer it cannot rate, saying which customer and plan."""
    detail = str(exc) or type(exc).__name__
    if not isinstance(exc, PricingError):
        detail = f"{type(exc).__name__}: {detail}"
    customer = customer_label(customer_id)
    prefix = f"Plan {plan_name!r} cannot be applied: "
    if detail.startswith(prefix):  # the plan's terms (rating.PlanTerms.from_plan)
        message = f"Plan {plan_name!r} cannot be applied to {customer}: {detail[len(prefix) :]}"
    else:
        message = f"Cannot bill {customer} on plan {plan_name!r}: {detail}"
    return InvoiceRunCustomerError(f"{message.rstrip('.')}. No draft was written for this month.")


def invoice_line(invoice_id, position: int, line) -> InvoiceLine:
    """The stored line of a rated line (rating.rate_usage) at `position` on the invoice."""
    return InvoiceLine(
        invoice_id=invoice_id,
        position=position,
        kind=line.kind,
        model_id=line.model_id,
        description=line.description[:300],
        quantity=line.quantity,
        unit=line.unit,
        unit_price=line.unit_price,
        amount=line.amount,
    )


def _insert_chunk(drafts) -> int:
    with transaction.atomic():
        invoices = Invoice.objects.bulk_create([invoice for invoice, _ in drafts])
        line_objects = [
            invoice_line(invoice.pk, position, line)
            for invoice, (_, lines) in zip(invoices, drafts, strict=True)
            for position, line in enumerate(lines, start=1)
        ]
        InvoiceLine.objects.bulk_create(line_objects, batch_size=5000)
    return len(invoices)


def _month_ended(period_start: date, today: date | None) -> tuple[date, date]:
    period_start, period_end = month_bounds(period_start)
    today = today or timezone.now().date()  # UTC, like the usage days
    if period_end >= today:
        raise InvoiceRunRefused(
            f"{period_start:%B %Y} has not ended yet (UTC): invoices are made for finished "
            "months only, so that the run on the 1st bills the whole month."
        )
    return period_start, period_end


def invoice_run(
    *,
    period_start: date,
    today: date | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> RunResult:
    """Create the drafts for the month starting `period_start` (any day of it is accepted).

    `progress(rated, total)` is called while rating (every CHUNK customers), never inside the
    insert transaction: a caller that records it (invoice_run_execute) commits it at once.
    """
    period_start, period_end = _month_ended(period_start, today)
    progress = progress or (lambda rated, total: None)
    result = RunResult(period_start=period_start)
    tax_rate = to_decimal(settings.BILLING_TAX_RATE)
    prices, dates, names = price_book()

    already = Invoice.objects.filter(
        period_start=period_start, replaces__isnull=True, kind=Invoice.Kind.INVOICE
    )
    result.skipped = already.count()
    # Customers without the month's invoice yet, with what decides whether they get one: active
    # customers that existed during the month (one created after it ended owes nothing for
    # it), and any customer with usage in it (a suspended or closed one still owes for that).
    existed = datetime.combine(period_end + timedelta(days=1), time.min, tzinfo=UTC)
    candidates = {
        pk: status == Customer.Status.ACTIVE and created_at < existed
        for pk, status, created_at in Customer.objects.exclude(
            pk__in=already.values("customer_id")
        ).values_list("pk", "status", "created_at")
    }
    usage = {}
    if candidates:  # a re-run of a finished month stops here
        # One grouped query for the month's usage of everyone still to bill.
        usage = usage_rows(
            period_start,
            period_end,
            customer_filter=~Q(customer_id__in=already.values("customer_id")),
            dates=dates,
        )
    todo = sorted(pk for pk, active in candidates.items() if active or pk in usage)
    progress(0, len(todo))
    if not todo:
        return result
    assignments = plan_assignments_in_force(period_start)
    terms_cache: dict[int, PlanTerms] = {}
    fallback = default_terms()

    # Rate every customer before writing anything: a plan that cannot be applied (say the
    # 2,500th customer's) stops the run with no draft written, instead of leaving the first
    # chunks in place and a half-done month on the drafts page.
    rated = []
    for done, customer_id in enumerate(todo):
        if done and done % CHUNK == 0:
            progress(done, len(todo))
        assignment = assignments.get(customer_id)
        terms = fallback
        try:
            if assignment is not None:
                cached = terms_cache.get(assignment.plan_id)
                if cached is None:
                    cached = terms_cache[assignment.plan_id] = PlanTerms.from_plan(assignment.plan)
                terms = cached
            rated.append(
                _build(
                    customer_id,
                    usage.get(customer_id, []),
                    terms,
                    period_start,
                    period_end,
                    tax_rate,
                    prices,
                    names,
                )
            )
        except (PricingError, ArithmeticError, TypeError, ValueError) as exc:
            plan_name = assignment.plan.name if assignment is not None else terms.name
            raise _rate_error(exc, customer_id, plan_name) from exc
    progress(len(rated), len(todo))

    with transaction.atomic():  # all the drafts, or none: a failed insert leaves no part-run
        for i in range(0, len(rated), CHUNK):
            _insert_drafts(rated[i : i + CHUNK], period_start, result)
    logger.info(
        "invoice run %s: %s drafts created, %s already there",
        period_start,
        result.created,
        result.skipped,
    )
    return result


def _insert_drafts(drafts, period_start, result: RunResult) -> None:
    """Insert a chunk (a savepoint); a concurrent run's drafts are skipped, not duplicated."""
    try:
        result.created += _insert_chunk(drafts)
    except IntegrityError:
        # Another run got some of these first: insert only the ones still missing.
        result.chunks_retried += 1
        taken = set(
            Invoice.objects.filter(
                period_start=period_start,
                replaces__isnull=True,
                kind=Invoice.Kind.INVOICE,
                customer_id__in=[inv.customer_id for inv, _ in drafts],
            ).values_list("customer_id", flat=True)
        )
        remaining = [d for d in drafts if d[0].customer_id not in taken]
        result.skipped += len(drafts) - len(remaining)
        if remaining:
            result.created += _insert_chunk(remaining)


class InvoiceRunBusy(InvoiceRunRefused):
    """A run for that month is already queued or running."""


def _busy_message(period_start: date, run: InvoiceRun | None) -> str:
    if run is None:
        return f"An invoice run for {period_start:%B %Y} is already queued or running."
    return (
        f"An invoice run for {period_start:%B %Y} is already {run.get_status_display().lower()} "
        f"(run #{run.pk}, requested {run.created_at:%Y-%m-%d %H:%M} UTC): wait for it to "
        "finish; running the month again then only adds the drafts still missing."
    )


def _fail_stale_runs(period_start: date) -> None:
    """A run queued or running with no progress for STALE_MINUTES lost its worker or its task:
    mark it failed so that it no longer blocks its month. A run that stopped before its insert
    transaction committed wrote no draft; the next run skips any draft that exists."""
    now = timezone.now()
    cutoff = now - timedelta(minutes=STALE_MINUTES)
    InvoiceRun.objects.filter(period_start=period_start, status__in=InvoiceRun.ACTIVE).filter(
        Q(progress_at__lt=cutoff) | Q(progress_at__isnull=True, created_at__lt=cutoff)
    ).update(
        status=InvoiceRun.Status.FAILED,
        finished_at=now,
        error=f"No progress for {STALE_MINUTES} minutes: its worker or its queued task was "
        "lost. Run the month again: drafts already made are skipped.",
    )


def invoice_run_request(
    *,
    period_start: date,
    trigger: str,
    requested_by=None,
    today: date | None = None,
    queue: bool = True,
) -> InvoiceRun:
    """Record a run for a finished month and (with `queue`) queue its task after commit.

    Refused (InvoiceRunRefused) for a month not ended yet, and (InvoiceRunBusy) while another
    run of that month is queued or running; the partial unique constraint settles a race.
    """
    period_start, _ = _month_ended(period_start, today)
    _fail_stale_runs(period_start)
    active = InvoiceRun.objects.filter(period_start=period_start, status__in=InvoiceRun.ACTIVE)
    if current := active.first():
        raise InvoiceRunBusy(_busy_message(period_start, current))
    try:
        with transaction.atomic():
            run = InvoiceRun.objects.create(
                period_start=period_start, trigger=trigger, requested_by=requested_by
            )
    except IntegrityError:  # another request got there between the check and the insert
        raise InvoiceRunBusy(_busy_message(period_start, active.first())) from None
    if queue:
        from .tasks import invoice_run_task

        transaction.on_commit(lambda: invoice_run_task.delay(run.pk))
    return run


def invoice_run_execute(*, run_id: int, today: date | None = None) -> InvoiceRun:
    """Claim a queued run (queued -> running: a duplicated task finds it taken and does
    nothing), run it, and record the outcome. Progress and outcome are plain UPDATEs of the
    run row, outside the run's insert transaction, so staff see them at once; the drafts stay
    all or nothing. A failure is recorded on the run (and logged), not raised."""
    now = timezone.now()
    runs = InvoiceRun.objects.filter(pk=run_id)
    claimed = runs.filter(status=InvoiceRun.Status.QUEUED).update(
        status=InvoiceRun.Status.RUNNING, started_at=now, progress_at=now
    )
    if not claimed:
        run = runs.get()
        logger.info("invoice run %s is already %s", run_id, run.status)
        return run

    def progress(rated: int, total: int) -> None:
        runs.update(customers_rated=rated, customers_total=total, progress_at=timezone.now())

    period_start = runs.values_list("period_start", flat=True).get()
    outcome: dict[str, str | int]
    try:
        result = invoice_run(period_start=period_start, today=today, progress=progress)
    except Exception as exc:
        if isinstance(exc, InvoiceRunRefused | PricingError):
            logger.warning("invoice run %s for %s refused: %s", run_id, period_start, exc)
            error = str(exc)
        else:
            logger.exception("invoice run %s for %s failed", run_id, period_start)
            error = f"{type(exc).__name__}: {exc}"
        outcome = {"status": InvoiceRun.Status.FAILED, "error": error[:4000]}
    else:
        outcome = {
            "status": InvoiceRun.Status.SUCCEEDED,
            "drafts_created": result.created,
            "drafts_skipped": result.skipped,
        }
    now = timezone.now()
    runs.update(**outcome, finished_at=now, progress_at=now)
    return runs.get()
