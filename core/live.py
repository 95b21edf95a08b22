"""Staff live figures (read from the proxy's counters): how fresh they are, and who keeps them so.

A live figure is the counters of many customers summed (today's requests and tokens of every
active customer; the customers near a limit). Reading them costs one batched DynamoDB read per
100 customers (0.9 s for 9,000 customers against the emulator), so pages read them from the
cache, stored with the time their read began (`as_of`):

- **Freshness bound.** A page never shows a figure read more than STAFF_LIVE_MAX_AGE_SECONDS
  (10) ago: an older entry is read again first. A call the proxy counted is therefore on the
  staff pages within that bound (plus the read itself).
- **While staff look.** Each page that shows one marks the figures as watched for
  STAFF_LIVE_WATCH_SECONDS (300); beat runs `portal.tasks.refresh_live_figures` every
  STAFF_LIVE_REFRESH_SECONDS (5) and reads them again only while they are watched, so a staff
  member on the page never waits for the read, and nobody pays for reads nobody looks at.
- **After a deploy.** `portal.tasks.warm_after_deploy` (run when a worker starts) reads them once
  with the other staff caches, so the first request does not wait either.
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

WATCHED_KEY = "live:watched"
STAFF_TODAY = "usage:staff-live"  # today's live totals of the active customers
QUOTA_WATCH = "dashboard:quota-watch"  # the customers at or over 80 % of a limit


def max_age() -> float:
    return float(settings.STAFF_LIVE_MAX_AGE_SECONDS)


# key -> the function that reads the figure; set by the apps that own them when they start
# (usage: STAFF_TODAY, the portal's dashboards: QUOTA_WATCH), as core imports neither.
_computers: dict = {}


def figure_register(key: str, compute) -> None:
    """`compute()` reads the live figure `key` (called at most once per max_age())."""
    _computers[key] = compute


def _store(key: str, compute) -> object:
    as_of = time.time()  # before the read: the figure holds every call counted by then
    value = compute()
    timeout = max(1, int(max_age()) + 1)
    cache.set(key, {"as_of": as_of, "value": value}, timeout)
    return value


def figure(key: str) -> object:
    """The live figure `key`, read at most max_age() seconds ago (read now if older)."""
    cache.set(WATCHED_KEY, time.time(), settings.STAFF_LIVE_WATCH_SECONDS)
    entry = cache.get(key)
    if isinstance(entry, dict) and time.time() - entry.get("as_of", 0) <= max_age():
        return entry["value"]
    return _store(key, _computers[key])


def refresh(*, force: bool = False) -> list[str]:
    """Read every live figure again if staff looked at one lately (or `force`)."""
    if not force and cache.get(WATCHED_KEY) is None:
        return []
    done = []
    for key, compute in list(_computers.items()):
        try:
            _store(key, compute)
            done.append(key)
        except Exception:  # the next run, or the next page, reads it again
            logger.warning("live figure %s not refreshed", key, exc_info=True)
    return done
