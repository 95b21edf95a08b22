"""Health checks behind GET /healthz: database, broker and AWS endpoint, each with a time limit."""

import logging
import time

from botocore.config import Config
from django.db import connection

from .aws import aws_client
from .celery import app as celery_app

logger = logging.getLogger(__name__)

_FAST_AWS = Config(connect_timeout=2, read_timeout=2, retries={"max_attempts": 1})
# What anyone may read of a failed check: exception texts name internal hosts, ports, database
# users and endpoints, so only staff (and the log) get them.
PUBLIC_FAILURE_DETAIL = "unreachable"


def _timed(name, check):
    started = time.perf_counter()
    try:
        check()
    except Exception as exc:  # a failed check is reported, not raised
        ok, detail = False, f"{type(exc).__name__}: {exc}"[:300]
        logger.warning("health check %s failed: %s", name, detail)
    else:
        ok, detail = True, "reachable"
    return {"ok": ok, "detail": detail, "ms": round((time.perf_counter() - started) * 1000, 1)}


def check_database():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def check_broker():
    with celery_app.connection_for_write() as conn:
        conn.ensure_connection(max_retries=1, timeout=2)


def check_aws():
    aws_client("dynamodb", config=_FAST_AWS).list_tables(Limit=1)


CHECKS = {"database": check_database, "broker": check_broker, "aws": check_aws}


def run_checks(*, with_details: bool = True) -> dict:
    """`with_details=False` (anyone but staff): a failed check says only "unreachable"."""
    results = {name: _timed(name, check) for name, check in CHECKS.items()}
    if not with_details:
        for result in results.values():
            if not result["ok"]:
                result["detail"] = PUBLIC_FAILURE_DETAIL
    return {"ok": all(r["ok"] for r in results.values()), "checks": results}
