"""Portal tasks: the worker heartbeat and cache warming. None is delivered again when its
worker dies (no `reject_on_worker_lost`): they only refresh a heartbeat or a cache, which the
next run (or the next page that misses the cache) does as well."""

import logging

from celery import shared_task

logger = logging.getLogger(__name__)


@shared_task
def heartbeat() -> str:
    """Record that a worker's pool ran a task (the "worker" heartbeat /healthz reads).

    Sent by beat every few seconds to a minute (portal/celery.py); a worker whose pool died or
    hangs stops running it, so its heartbeat goes stale."""
    from .heartbeats import WORKER, heartbeat_record

    at = heartbeat_record(name=WORKER).isoformat()
    logger.debug("worker heartbeat at %s", at)
    return at


@shared_task
def warm_dashboards() -> list[str]:
    """Fill the cache of the staff dashboards' billed views (queued after each ingest)."""
    from portal.dashboard.selectors import warm_billed_views

    return warm_billed_views()


@shared_task
def warm_month_cost() -> str:
    """Recompute this month's cost for the staff pages (every 5 minutes, portal/celery.py)."""
    from billing.selectors import staff_cost_so_far

    return str(staff_cost_so_far(refresh=True)["so_far"])
