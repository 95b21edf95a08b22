"""Thin Celery wrappers around billing services; queue them with transaction.on_commit."""

from celery import shared_task
from django.utils import timezone


@shared_task
def invoice_run_monthly(period_start: str = "") -> dict:
    """Beat runs this on the 1st: drafts for the previous calendar month."""
    from datetime import date

    from .selectors import previous_month
    from .services import invoice_run

    start = (
        date.fromisoformat(period_start)
        if period_start
        else previous_month(timezone.now().date())[0]
    )
    result = invoice_run(period_start=start)
    return {
        "period_start": str(result.period_start),
        "created": result.created,
        "skipped": result.skipped,
    }


@shared_task(autoretry_for=(OSError,), retry_backoff=60, max_retries=6)
def invoice_email_send(invoice_id: str) -> None:
    from .emails import invoice_issued_email_send

    invoice_issued_email_send(invoice_id=invoice_id)


@shared_task(autoretry_for=(OSError,), retry_backoff=60, max_retries=6)
def low_balance_email_send(customer_id: str) -> None:
    from .emails import low_balance_email_send as send

    send(customer_id=customer_id)
