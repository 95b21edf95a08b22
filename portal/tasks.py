import logging

from celery import shared_task
from django.core.cache import cache
from django.utils import timezone

logger = logging.getLogger(__name__)

HEARTBEAT_CACHE_KEY = "portal:celery-heartbeat"


@shared_task
def heartbeat() -> str:
    """Record that the worker ran a scheduled task, so staff can see beat and worker are alive."""
    now = timezone.now().isoformat()
    cache.set(HEARTBEAT_CACHE_KEY, now, timeout=None)
    logger.info("celery heartbeat at %s", now)
    return now


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
