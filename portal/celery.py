"""The one Celery app. Tasks live in each app's tasks.py; the beat schedule lives here, in code."""

import os

from celery import Celery
from celery.schedules import crontab

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Later issues add their jobs here: the nightly usage pull, threshold checks, invoices, sync.
app.conf.beat_schedule = {
    "portal-heartbeat": {
        "task": "portal.tasks.heartbeat",
        "schedule": crontab(minute="*/5"),
    },
    # Draft invoices for the previous calendar month, after the night's usage pull.
    "billing-monthly-invoice-run": {
        "task": "billing.tasks.invoice_run_monthly",
        "schedule": crontab(minute=0, hour=6, day_of_month=1),
    },
}
