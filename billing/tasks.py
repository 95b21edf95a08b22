"""Thin Celery wrappers around billing services; queue them with transaction.on_commit.

`reject_on_worker_lost=True` (a task whose worker process died mid-run is delivered again) is
set only where running again is safe; docs/architecture.md lists which tasks and why.
"""

from celery import shared_task
from django.utils import timezone


@shared_task(reject_on_worker_lost=True)
def invoice_run_monthly(period_start: str = "") -> dict:
    """Beat runs this on the 1st: drafts for the previous calendar month, recorded as an
    InvoiceRun (run here, in this task) so that staff see it on the invoice runs page."""
    import logging
    from datetime import date

    from .models import InvoiceRun
    from .selectors import previous_month
    from .services import InvoiceRunBusy, invoice_run_execute, invoice_run_request

    start = (
        date.fromisoformat(period_start)
        if period_start
        else previous_month(timezone.now().date())[0]
    )
    try:
        run = invoice_run_request(
            period_start=start, trigger=InvoiceRun.Trigger.MONTHLY, queue=False
        )
    except InvoiceRunBusy as exc:  # a staff run of the month is under way: it does the work
        logging.getLogger(__name__).warning("monthly invoice run not started: %s", exc)
        return {"period_start": str(start), "created": 0, "skipped": 0, "refused": str(exc)}
    run = invoice_run_execute(run_id=run.pk)
    return {
        "run": run.pk,
        "status": run.status,
        "period_start": str(run.period_start),
        "created": run.drafts_created,
        "skipped": run.drafts_skipped,
        "error": run.error,
    }


@shared_task(reject_on_worker_lost=True)
def invoice_run_task(run_id: int) -> str:
    """A queued InvoiceRun (the staff page); a duplicate delivery finds it claimed."""
    from .services import invoice_run_execute

    return invoice_run_execute(run_id=run_id).status


@shared_task(autoretry_for=(OSError,), retry_backoff=60, max_retries=6)
def invoice_email_send(invoice_id: str) -> None:
    from .emails import invoice_issued_email_send

    invoice_issued_email_send(invoice_id=invoice_id)


@shared_task(autoretry_for=(OSError,), retry_backoff=60, max_retries=6)
def low_balance_email_send(customer_id: str, available: str = "") -> None:
    """`available`: a prepaid customer's credit available now, when that is what ran low."""
    from .emails import low_balance_email_send as send

    send(customer_id=customer_id, available=available)


@shared_task
def credit_reconcile() -> dict:
    """Beat, every minute: prepaid customers' credit at the proxy checked and repaired. Not
    delivered again when its worker dies: the next run, a minute later, does the same."""
    from .credit_reconcile import credit_reconcile as reconcile
    from .credit_reconcile import credit_reconcile_summary

    return credit_reconcile_summary(reconcile())


@shared_task(autoretry_for=(OSError,), retry_backoff=60, max_retries=6)
def payment_link_email_send(payment_id: str) -> None:
    """The Checkout address of an invoice, mailed to the customer (staff's payment link)."""
    from .emails import payment_link_email_send as send

    send(payment_id=payment_id)


@shared_task
def checkout_sessions_expire(invoice_id: str) -> int:
    """Close at Stripe the open Checkout Sessions of an invoice paid by hand or voided. Not
    delivered again when its worker dies: such a session ends by itself within a day."""
    from .payments import checkout_sessions_expire as expire

    return expire(invoice_id=invoice_id)
