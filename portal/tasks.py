"""Portal tasks: the worker heartbeat and cache warming. None is delivered again when its
worker dies (no `reject_on_worker_lost`): they only refresh a heartbeat or a cache, which the
next run (or the next page that misses the cache) does as well."""

import logging

from celery import shared_task
from django.core.cache import cache

from billing.selectors import staff_cost_so_far
from core import live, model_names
from core.heartbeats import WORKER, heartbeat_record
from core.live import refresh

logger = logging.getLogger(__name__)


@shared_task
def heartbeat() -> str:
    """Record that a worker's pool ran a task (the "worker" heartbeat /healthz reads).

    Sent by beat every few seconds to a minute (portal/celery.py); a worker whose pool died or
    hangs stops running it, so its heartbeat goes stale."""

    at = heartbeat_record(name=WORKER).isoformat()
    logger.debug("worker heartbeat at %s", at)
    return at


@shared_task
def warm_dashboards() -> list[str]:
    """Fill the cache of the staff dashboards' billed views (queued after each ingest, and by
    the overview when the cache has none)."""
    from portal.dashboard.selectors import DASHBOARDS_QUEUED, warm_billed_views

    try:
        return warm_billed_views()
    finally:
        cache.delete(DASHBOARDS_QUEUED)


@shared_task
def warm_month_cost() -> str:
    """Recompute this month's cost for the staff pages (every 5 minutes, portal/celery.py, and
    queued by the overview when the cache has none)."""

    from portal.dashboard.selectors import MONTH_COST_QUEUED

    try:
        return str(staff_cost_so_far(refresh=True)["so_far"])
    finally:
        cache.delete(MONTH_COST_QUEUED)


@shared_task
def refresh_live_figures() -> list[str]:
    """Re-read the staff live figures while staff look at them (beat, every
    STAFF_LIVE_REFRESH_SECONDS; core/live.py)."""

    return refresh()


@shared_task
def refresh_live_figure(key: str) -> str:
    """Read one staff live figure that a page found older than STAFF_LIVE_MAX_AGE_SECONDS, or
    missing (queued at most once at a time by core.live.figure)."""

    live.refresh_one(key)
    return key


def queue_live_figure_read(key: str) -> None:
    """core.live's queue: the read of one figure, in the background. No retries: a page never
    waits for a broker that is down (core.live lets the next page queue it again)."""
    refresh_live_figure.apply_async(args=[key], retry=False)


@shared_task
def warm_after_deploy() -> list[str]:
    """Fill every staff cache a cold page would compute: this month's cost, the billed
    dashboards' default views, the live figures and the model names. Queued when a worker
    starts (portal/celery.py), so the first staff request after a deploy reads the cache."""
    import time

    from portal.dashboard.selectors import warm_billed_views

    started = time.perf_counter()
    done = []
    for name, step in (
        ("month cost", lambda: staff_cost_so_far(refresh=True)),
        ("billed views", warm_billed_views),
        ("live figures", lambda: live.refresh(force=True)),
        ("model names", model_names.refresh),
    ):
        try:
            step()
            done.append(name)
        except Exception:  # warming is best effort: the page computes what is missing
            logger.warning("warming %s failed", name, exc_info=True)
    logger.info("staff caches warmed in %.1f s: %s", time.perf_counter() - started, done)
    return done
