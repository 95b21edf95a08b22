"""The one Celery app. Tasks live in each app's tasks.py; the beat schedule lives here, in code."""

import os

from celery import Celery
from celery.schedules import crontab
from celery.signals import worker_ready

from core.heartbeats import worker_heartbeat_interval

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Later issues add their jobs here: the nightly usage pull, threshold checks, invoices, sync.
app.conf.beat_schedule = {
    # Staff pages: this month's cost over all customers (about 2 s at 10,000), kept warm.
    "portal-warm-month-cost": {
        "task": "portal.tasks.warm_month_cost",
        "schedule": crontab(minute="*/5"),
    },
    # Customers: deliver any sync outbox row still pending (failed earlier, or never queued).
    "customers-sweep-outbox": {
        "task": "customers.tasks.sweep_outbox",
        "schedule": crontab(minute="*"),
    },
    # Customers: compare PostgreSQL with DynamoDB and repair drift, nightly.
    "customers-reconcile-dynamodb": {
        "task": "customers.tasks.reconcile_dynamodb",
        "schedule": crontab(minute=30, hour=3),
    },
    # Customers: warn before tokens expire (TOKEN_EXPIRY_WARNING_DAYS ahead), once per token.
    "customers-token-expiry-warnings": {
        "task": "customers.tasks.send_token_expiry_warnings",
        "schedule": crontab(minute=0, hour=8),
    },
    # Customers: rotation policies (notice ahead, rotation, reminder in the grace period).
    "customers-rotate-tokens-on-schedule": {
        "task": "customers.tasks.rotate_tokens_on_schedule",
        "schedule": crontab(minute=15, hour=7),
    },
    # Billing: every prepaid customer's credit at the proxy checked and repaired (a push that
    # did not land, a grant that expired). A run that waited a minute is dropped: the next
    # one does the same.
    "billing-credit-reconcile": {
        "task": "billing.tasks.credit_reconcile",
        "schedule": 60.0,
        "options": {"expires": 60},
    },
    # Draft invoices for the previous calendar month, after the night's usage pull.
    "billing-monthly-invoice-run": {
        "task": "billing.tasks.invoice_run_monthly",
        "schedule": crontab(minute=0, hour=6, day_of_month=1),
    },
}


@app.on_after_configure.connect
def _heartbeat_schedule(sender, **kwargs):
    """The worker heartbeat (core/heartbeats.py): often enough that a live worker never looks
    stale (a third of HEALTH_HEARTBEAT_STALE_SECONDS, at most a minute). A heartbeat that
    waited longer than that in the queue is dropped: the next one says the same."""

    interval = worker_heartbeat_interval()
    sender.add_periodic_task(
        interval,
        sender.signature("portal.tasks.heartbeat"),
        name="portal-heartbeat",
        expires=interval,
    )


@app.on_after_configure.connect
def _live_schedule(sender, **kwargs):
    """Staff live figures re-read while staff look at them (core/live.py); a run that waited
    longer than its interval is dropped: the next one does the same."""
    from django.conf import settings

    interval = float(settings.STAFF_LIVE_REFRESH_SECONDS)
    sender.add_periodic_task(
        interval,
        sender.signature("portal.tasks.refresh_live_figures"),
        name="portal-refresh-live-figures",
        expires=interval,
    )


@worker_ready.connect
def _warm_after_deploy(sender, **kwargs):
    """A worker that starts (a deploy, a restart) fills the staff caches once."""
    from django.conf import settings

    if settings.WARM_CACHES_ON_WORKER_START:
        sender.app.send_task("portal.tasks.warm_after_deploy")


@app.on_after_configure.connect
def _usage_schedule(sender, **kwargs):
    """Usage jobs (usage app), timed from settings: yesterday's billed usage plus missed days
    once the previous day's events have landed; threshold checks; opt-in summaries."""
    from django.conf import settings

    sender.add_periodic_task(
        crontab(minute=settings.USAGE_INGEST_MINUTE, hour=settings.USAGE_INGEST_HOUR),
        sender.signature("usage.tasks.ingest_nightly_task"),
        name="usage-nightly-ingest",
    )
    sender.add_periodic_task(
        crontab(minute="*/10"),
        sender.signature("usage.tasks.resume_stale_ingest_runs_task"),
        name="usage-resume-stale-ingest-runs",
    )
    sender.add_periodic_task(
        crontab(minute=f"*/{settings.USAGE_ALERT_CHECK_MINUTES}"),
        sender.signature("usage.tasks.check_alerts_task"),
        name="usage-alert-check",
    )
    for frequency, when in (
        ("weekly", crontab(minute=0, hour=7, day_of_week="mon")),
        ("monthly", crontab(minute=0, hour=7, day_of_month=1)),
    ):
        sender.add_periodic_task(
            when,
            sender.signature("usage.tasks.send_summaries_task", args=(frequency,)),
            name=f"usage-{frequency}-summary",
        )
