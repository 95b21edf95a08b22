"""Health checks behind GET /healthz and GET /healthz/live.

/healthz/live: this web process answers and reaches the database. What a load balancer
probes: a dead worker must not take the web tier out of rotation.

/healthz: everything the product needs, what monitoring alerts on: the database, the broker
and the AWS endpoint (each with a time limit), the worker and beat heartbeats
(core/heartbeats.py) and the age of the oldest change the outbox has not delivered to
DynamoDB yet.
"""

import logging
import time

from botocore.config import Config
from django.conf import settings
from django.db import connection
from django.db.models import Min
from django.utils import timezone

from core.aws import aws_client
from core.heartbeats import BEAT, WORKER, heartbeats, stale_after
from customers.models import SyncOutbox

from .celery import app as celery_app

logger = logging.getLogger(__name__)

_FAST_AWS = Config(connect_timeout=2, read_timeout=2, retries={"max_attempts": 1})
# What anyone may read of a check: exception texts name internal hosts, ports, database
# users and endpoints, heartbeats name hosts and process ids, so only staff (and the log) get
# them. Others get one word: (when ok, when failed).
PUBLIC_FAILURE_DETAIL = "unreachable"
PUBLIC_DETAILS = {
    "database": ("reachable", PUBLIC_FAILURE_DETAIL),
    "broker": ("reachable", PUBLIC_FAILURE_DETAIL),
    "aws": ("reachable", PUBLIC_FAILURE_DETAIL),
    "worker": ("fresh", "stale"),
    "beat": ("fresh", "stale"),
    "outbox": ("fresh", "stale"),
}
NOT_APPLICABLE = "not applicable"


class Stale(Exception):
    """A check that ran and found something too old; the message is what staff read, `extra`
    (e.g. the age in seconds) goes with it to staff."""

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.extra = extra


def _timed(name, check):
    started = time.perf_counter()
    public_ok, public_failed = PUBLIC_DETAILS.get(name, ("reachable", PUBLIC_FAILURE_DETAIL))
    extra = {}
    try:
        outcome = check()
    except Stale as exc:
        ok, detail, public = False, str(exc), public_failed
        extra = exc.extra
        logger.warning("health check %s failed: %s", name, detail)
    except Exception as exc:  # a failed check is reported, not raised
        ok, detail, public = False, f"{type(exc).__name__}: {exc}"[:300], public_failed
        logger.warning("health check %s failed: %s", name, detail)
    else:
        ok, detail, extra = True, "reachable", {}
        if isinstance(outcome, tuple):
            detail, extra = outcome
        elif outcome:
            detail = outcome
        public = NOT_APPLICABLE if detail.startswith(NOT_APPLICABLE) else public_ok
    result = {"ok": ok, "detail": detail, "ms": round((time.perf_counter() - started) * 1000, 1)}
    return result, public, extra


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker():
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def check_aws():
    aws_client("dynamodb", config=_FAST_AWS).list_tables(Limit=1)


def _no_worker() -> str | None:
    if celery_app.conf.task_always_eager:
        return f"{NOT_APPLICABLE}: tasks run eagerly in the calling process (no worker, no beat)"
    return None


def check_worker():
    """Fresh while a worker's pool runs the heartbeat task beat sends."""
    if skipped := _no_worker():
        return skipped
    beats, threshold = heartbeats(), stale_after()
    worker, beat = beats.get(WORKER), beats.get(BEAT)
    if worker is None:
        raise Stale("no worker heartbeat recorded yet: no worker has run a task")
    if worker.stale:
        why = (
            "; beat is alive, so the worker is down, hung or has every pool process busy"
            if beat is not None and not beat.stale
            else ""
        )
        raise Stale(
            f"last task ran {worker.describe()}, stale after {threshold:.0f} s{why}",
            age_s=round(worker.age, 1),
        )
    return f"last task ran {worker.describe()}", {"age_s": round(worker.age, 1)}


def check_beat():
    """Fresh while beat ticks (it records its heartbeat itself)."""
    if skipped := _no_worker():
        return skipped
    beat = heartbeats().get(BEAT)
    if beat is None:
        raise Stale("no beat heartbeat recorded yet: beat has not run")
    if beat.stale:
        raise Stale(
            f"last tick {beat.describe()}, stale after {stale_after():.0f} s",
            age_s=round(beat.age, 1),
        )
    return f"last tick {beat.describe()}", {"age_s": round(beat.age, 1)}


def check_outbox():
    """The oldest change the proxy has not seen yet (customers.models.SyncOutbox)."""

    pending = SyncOutbox.objects.filter(delivered_at__isnull=True)
    oldest = pending.aggregate(oldest=Min("created_at"))["oldest"]
    if oldest is None:
        return "nothing waiting", {"age_s": 0.0}
    age = max(0.0, (timezone.now() - oldest).total_seconds())
    threshold = settings.HEALTH_OUTBOX_STALE_SECONDS
    text = f"oldest undelivered change is {age:.0f} s old"
    if age > threshold:
        raise Stale(f"{text}, stale after {threshold} s", age_s=round(age, 1))
    return text, {"age_s": round(age, 1)}


CHECKS = {
    "database": check_database,
    "broker": check_broker,
    "aws": check_aws,
    "worker": check_worker,
    "beat": check_beat,
    "outbox": check_outbox,
}
LIVE_CHECKS = ("database",)


def run_checks(*, with_details: bool = True, only=None) -> dict:
    """`with_details=False` (anyone but staff): each check says one word ("reachable",
    "unreachable", "fresh", "stale", "not applicable"); staff also get ages and causes."""
    results = {}
    for name, check in CHECKS.items():
        if only is not None and name not in only:
            continue
        result, public, extra = _timed(name, check)
        if with_details:
            result.update(extra)
        else:
            result["detail"] = public
        results[name] = result
    return {"ok": all(r["ok"] for r in results.values()), "checks": results}
