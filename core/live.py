"""Staff live figures (read from the proxy's counters): how fresh they are, and who keeps them so.

A live figure is the counters of many customers summed (today's requests and tokens of every
active customer; the customers near a limit). Reading them costs one batched DynamoDB read per
100 customers (0.9 s for 9,000 customers against the emulator), so a page never reads them: it
shows what the cache holds, stored with the time its read began (`as_of`), and says how old it is.

- **Fresh.** A figure read at most STAFF_LIVE_MAX_AGE_SECONDS (10) ago is shown as it is.
- **Older (stale while it is read again).** The last figure read is kept for
  STAFF_LIVE_KEEP_SECONDS (a day). A page that finds it older than the bound shows it at once,
  marked with its time ("as of 14:03:05, updating…"), never as if it were fresh, and queues one
  read (`portal.tasks.refresh_live_figure`; a cache lock makes concurrent pages queue one task).
- **None yet** (a cache emptied by a deploy or a restart): the page says the figures are being
  read and queues the read the same way; it does not wait for it.
- **While staff look.** Each page that shows one marks the figures as watched for
  STAFF_LIVE_WATCH_SECONDS (300); beat runs `portal.tasks.refresh_live_figures` every
  STAFF_LIVE_REFRESH_SECONDS (5) and reads them again only while they are watched, so a staff
  member on the page sees figures at most 10 s old, and nobody pays for reads nobody looks at.
- **After a deploy.** `portal.tasks.warm_after_deploy` (run when a worker starts) reads them once
  with the other staff caches.
"""

import datetime as dt
import logging
import time

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

WATCHED_KEY = "live:watched"
REFRESHING_KEY = "live:refreshing:"  # + figure key: a read of it is queued and not done yet
STAFF_TODAY = "usage:staff-live"  # today's live totals of the active customers
QUOTA_WATCH = "dashboard:quota-watch"  # the customers at or over 80 % of a limit
# A queued read not done within this long (a worker down) may be queued again.
REFRESH_LOCK_SECONDS = 60


def max_age() -> float:
    return float(settings.STAFF_LIVE_MAX_AGE_SECONDS)


def keep_seconds() -> int:
    return int(getattr(settings, "STAFF_LIVE_KEEP_SECONDS", 24 * 3600))


# key -> the function that reads the figure; set by the apps that own them when they start
# (usage: STAFF_TODAY, the portal's dashboards: QUOTA_WATCH), as core imports neither.
_computers: dict = {}
# The function that queues a read of one figure (the portal's Celery task), set by the portal.
_queue = {"read": None}


def figure_register(key: str, compute) -> None:
    """`compute()` reads the live figure `key` (a dict; called at most once per max_age())."""
    _computers[key] = compute


def refresh_queue_register(queue_read) -> None:
    """`queue_read(key)` queues a read of the figure `key` in the background."""
    _queue["read"] = queue_read


def _store(key: str, compute) -> dict:
    as_of = time.time()  # before the read: the figure holds every call counted by then
    value = compute()
    entry = {"as_of": as_of, "value": value}
    cache.set(key, entry, max(keep_seconds(), int(max_age()) + 1))
    cache.delete(REFRESHING_KEY + key)
    return entry


def refresh_one(key: str) -> None:
    """Read the figure `key` now (the queued task)."""
    try:
        _store(key, _computers[key])
    except Exception:
        cache.delete(REFRESHING_KEY + key)  # the next page queues it again
        raise


def _queue_read(key: str) -> bool:
    """Queue one read of `key`, unless one is queued already (True if this call queued it)."""
    queue_read = _queue["read"]
    if queue_read is None or not cache.add(REFRESHING_KEY + key, time.time(), REFRESH_LOCK_SECONDS):
        return False
    try:
        queue_read(key)
    except Exception:  # no broker: the next page queues it again
        cache.delete(REFRESHING_KEY + key)
        logger.warning("live figure %s: read not queued", key, exc_info=True)
        return False
    return True


def _shown(entry: dict, *, now: float) -> dict:
    """The figure as pages show it: its value, its time, and whether it is being read again."""
    value = entry["value"] if isinstance(entry["value"], dict) else {"value": entry["value"]}
    age = max(0.0, now - entry["as_of"])
    return {
        **value,
        "as_of": entry["as_of"],
        "as_of_at": dt.datetime.fromtimestamp(entry["as_of"], tz=dt.UTC),
        "age": age,
        "stale": age > max_age(),
        "pending": False,
    }


def figure(key: str) -> dict:
    """The live figure `key` from the cache, never read here: its value with `as_of` (epoch
    seconds) and `stale` (older than max_age(); a read is queued). With none cached yet:
    `pending` True, no value, and a read queued."""
    cache.set(WATCHED_KEY, time.time(), settings.STAFF_LIVE_WATCH_SECONDS)
    now = time.time()
    entry = cache.get(key)
    if isinstance(entry, dict) and now - entry.get("as_of", 0) <= max_age():
        return _shown(entry, now=now)
    _queue_read(key)
    # A read that already ran (Celery eager, as in tests and `make run`'s one-process mode).
    entry = cache.get(key) or entry
    if isinstance(entry, dict) and "as_of" in entry:
        return _shown(entry, now=time.time())
    return {"pending": True, "stale": False, "as_of": None, "error": None, "rows": []}


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
