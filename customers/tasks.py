"""Celery tasks: thin wrappers around the sync, reconciliation and email functions.

`reject_on_worker_lost=True` (a task whose worker process died mid-run is delivered again) is
set only where running again is safe; docs/architecture.md lists which tasks and why.
"""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task(bind=True, max_retries=8, ignore_result=True, reject_on_worker_lost=True)
def deliver_customer_outbox(self, customer_id: str):
    """Deliver one customer's pending changes; retried with the rows' backoff on failure."""
    from .sync import outbox_deliver

    report = outbox_deliver(customer_id=customer_id)
    if report.failed and not self.request.is_eager:
        # The rows keep their own schedule too, so the sweeper catches what retries miss.
        raise self.retry(countdown=report.retry_in)
    return report.delivered


@shared_task(ignore_result=True, reject_on_worker_lost=True)
def sweep_outbox():
    """Every minute: deliver anything due (failed earlier, or never queued)."""
    from .sync import outbox_deliver, outbox_purge_delivered

    report = outbox_deliver(limit=2000)
    outbox_purge_delivered()
    return report.delivered


@shared_task(ignore_result=True, reject_on_worker_lost=True)
def reconcile_dynamodb():
    """Nightly: compare PostgreSQL with DynamoDB and repair drift."""
    from .reconcile import dynamodb_reconcile

    report = dynamodb_reconcile()
    logger.info("reconciliation: %s", report.summary())
    return report.summary()


@shared_task(ignore_result=True)
def send_customer_invite(user_id: int):
    from .emails import send_invite_email

    send_invite_email(user_id=user_id)


@shared_task(ignore_result=True, reject_on_worker_lost=True)
def send_token_expiry_warnings():
    from .emails import token_expiry_warnings_send

    return token_expiry_warnings_send()


@shared_task(ignore_result=True)
def rotate_tokens_on_schedule():
    """Daily: the customers' rotation policies (notices, rotations, reminders); each step is
    claimed on its row, so two runs at once do nothing twice. Not delivered again when its
    worker dies: whatever that run left undone is still due, and the next day's run does it."""
    from .rotation import rotation_run

    report = rotation_run()
    logger.info("rotation policy: %s", report.summary())
    return report.summary()


@shared_task(bind=True, max_retries=8, ignore_result=True, reject_on_worker_lost=True)
def deliver_price_outbox(self):
    """Deliver the price book's pending changes (price items); retried like a customer's."""
    from .models import SyncOutbox
    from .sync import outbox_deliver

    report = outbox_deliver(kind=SyncOutbox.Kind.PRICE)
    if report.failed and not self.request.is_eager:
        raise self.retry(countdown=report.retry_in)
    return report.delivered
