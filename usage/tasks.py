"""Celery tasks of the usage app: thin wrappers around services, scheduled in portal/celery.py.

`reject_on_worker_lost=True` (a task whose worker process died mid-run is delivered again) is
set only where running again is safe; docs/architecture.md lists which tasks and why.
"""

from celery import shared_task

from .signals import usage_imported


def _warm_dashboards() -> None:
    """New billed rows: whoever shows them (the staff dashboards) recomputes its views."""
    usage_imported.send(sender=__name__)


@shared_task(reject_on_worker_lost=True)
def ingest_nightly_task():
    from .services import ingest_nightly

    run = ingest_nightly()
    _warm_dashboards()
    return run.pk


@shared_task(reject_on_worker_lost=True)
def ingest_run_task(run_id: int):
    from .services import ingest_run_execute

    run = ingest_run_execute(run_id=run_id)
    _warm_dashboards()
    return run.status


@shared_task(reject_on_worker_lost=True)
def resume_stale_ingest_runs_task():
    from .services import ingest_runs_resume_stale

    return ingest_runs_resume_stale()


@shared_task(reject_on_worker_lost=True)
def check_alerts_task():
    from .alerts import alerts_check

    return alerts_check()


@shared_task(reject_on_worker_lost=True)
def deliver_alert_task(alert_id: int):
    """Kept for tasks queued before alerts were delivered together (deliver_alerts_task)."""
    from .notifications import alert_deliver

    alert_deliver(alert_id=alert_id)


@shared_task(reject_on_worker_lost=True)
def deliver_alerts_task(alert_ids: list[int]):
    """Run again after a lost worker: each email and channel message is claimed first
    (usage/notifications.py, usage/alert_channels.py), so nothing already sent goes twice."""
    from .notifications import alerts_deliver

    return alerts_deliver(alert_ids=alert_ids)


@shared_task
def send_summaries_task(frequency: str):
    from .summaries import summaries_send

    return summaries_send(frequency=frequency)
