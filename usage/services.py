"""Writes of the usage app: ingest runs, replacing a day's rows, reconciliation, settings."""

import datetime as dt
import logging
import secrets
import uuid
from collections.abc import Iterable

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from customers.models import Customer
from customers.services import tokens_record_last_used

from . import counters
from .models import (
    CustomerUsageSettings,
    IngestedDay,
    IngestRun,
    QuarantinedRow,
    UsageDaily,
    UsageDifference,
)
from .operations import operations_stage
from .quarantine import Quarantine, check_row, invalid_events_problem, unreadable_problem

logger = logging.getLogger(__name__)

MAX_RANGE_DAYS = 366
# Stages whose failure is reported on the run without failing it (billing reads only "ingest").
OPTIONAL_STAGES = ("reconcile", "users", "tokens", "operations", "anomalies", "resumed")
_TEXT_COLUMNS = (("model_id", 200), ("application_id", 200), ("cost_center", 200),
                 ("environment", 100))  # fmt: skip
_COUNT_COLUMNS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens",
                  "cache_write_tokens")  # fmt: skip


def get_engine(name: str | None = None):
    name = name or settings.USAGE_ENGINE
    if name == "athena":
        from .athena import AthenaEngine

        return AthenaEngine()
    if name == "duckdb":
        from .duckdb_engine import DuckDBEngine

        return DuckDBEngine()
    raise ValueError(f"Unknown usage engine {name!r} (use athena or duckdb)")


def utc_today() -> dt.date:
    return timezone.now().astimezone(dt.UTC).date()


def days_between(start: dt.date, end: dt.date) -> list[dt.date]:
    return [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]


def validate_ingest_range(start: dt.date, end: dt.date, *, today: dt.date | None = None) -> None:
    today = today or utc_today()
    if start > end:
        raise ValidationError("The start date is after the end date.")
    if end >= today:
        raise ValidationError(
            f"Only finished days can be ingested: the end date must be before {today} (UTC)."
        )
    if (end - start).days >= MAX_RANGE_DAYS:
        raise ValidationError(f"Ingest at most {MAX_RANGE_DAYS} days at a time.")


def ingest_run_create(
    *,
    days: list[dt.date],
    trigger: str,
    engine: str | None = None,
    requested_by=None,
) -> IngestRun:
    days = sorted(set(days))
    return IngestRun.objects.create(
        trigger=trigger,
        engine=engine or settings.USAGE_ENGINE,
        start_day=days[0],
        end_day=days[-1],
        days=[d.isoformat() for d in days],
        days_total=len(days),
        requested_by=requested_by,
    )


def ingest_range_request(
    *, start: dt.date, end: dt.date, trigger: str, requested_by=None, engine: str | None = None
) -> IngestRun:
    """Validate a staff/command range and queue its run (the task starts after commit)."""
    validate_ingest_range(start, end)
    run = ingest_run_create(
        days=days_between(start, end), trigger=trigger, requested_by=requested_by, engine=engine
    )
    from .tasks import ingest_run_task

    transaction.on_commit(lambda: ingest_run_task.delay(run.pk))
    return run


def missing_days(*, today: dt.date | None = None) -> list[dt.date]:
    """Yesterday, plus every earlier day in the catch-up window that was never ingested."""
    today = today or utc_today()
    yesterday = today - dt.timedelta(days=1)
    first = today - dt.timedelta(days=settings.USAGE_CATCHUP_DAYS)
    oldest_customer = Customer.objects.order_by("created_at").values_list("created_at", flat=True)
    if oldest := oldest_customer.first():
        first = max(first, oldest.astimezone(dt.UTC).date())
    done = set(IngestedDay.objects.filter(day__gte=first).values_list("day", flat=True))
    days = [d for d in days_between(first, yesterday) if d not in done]
    if yesterday not in days:
        days.append(yesterday)
    return days


def ingest_nightly(*, today: dt.date | None = None, engine=None) -> IngestRun:
    run = ingest_run_create(days=missing_days(today=today), trigger=IngestRun.Trigger.NIGHTLY)
    return ingest_run_execute(run_id=run.pk, engine=engine)


def ingest_run_execute(*, run_id: int, engine=None, reconcile: bool = True) -> IngestRun:
    """Ingest each day of a queued run; a failing day is recorded and the others continue.
    `reconcile=False` skips comparing the days with the proxy's counters (demo usage, which
    the proxy never counted: every day would differ, and the emulator is not up yet)."""
    now = timezone.now()
    claimed = IngestRun.objects.filter(pk=run_id, status=IngestRun.Status.QUEUED).update(
        status=IngestRun.Status.RUNNING, started_at=now, progress_at=now
    )
    run = IngestRun.objects.get(pk=run_id)
    if not claimed:
        logger.info("ingest run %s is already %s", run_id, run.status)
        return run
    try:
        engine = engine or get_engine(run.engine)
    except Exception as exc:
        run.errors.append({"day": run.days[0], "stage": "engine", "error": str(exc)[:500]})
        run.status, run.finished_at = IngestRun.Status.FAILED, timezone.now()
        run.save(update_fields=["errors", "status", "finished_at"])
        return run
    # A resumed run (its worker was lost) goes on from the first day not done.
    for day in (dt.date.fromisoformat(d) for d in run.days[run.days_done :]):
        try:
            ingested = usage_day_replace(
                day=day, rows=engine.daily_rows(day), engine=run.engine, run=run
            )
            run.rows_written += ingested.rows
        except Exception as exc:  # one bad day must not stop the catch-up of the others
            logger.exception("ingest of %s failed", day)
            run.errors.append({"day": day.isoformat(), "stage": "ingest", "error": str(exc)[:500]})
        else:
            try:
                if reconcile:
                    reconcile_day(day=day)
            except Exception as exc:
                logger.exception("reconciliation of %s failed", day)
                run.errors.append(
                    {"day": day.isoformat(), "stage": "reconcile", "error": str(exc)[:500]}
                )
            _replace_user_rows(engine, day, run)
            _record_tokens_last_used(engine, day, run)
            operations_stage(engine, day, run)  # hourly usage, latency, unusual hours
        run.days_done += 1
        run.progress_at = timezone.now()
        run.save(update_fields=["rows_written", "errors", "days_done", "progress_at"])
    # Billing depends on the billed rows only; a failed reconciliation, per-user view, token
    # last-used update, hourly usage or anomaly check is reported on the run but does not fail
    # it, nor does a resume.
    failed = any(e["stage"] not in OPTIONAL_STAGES for e in run.errors)
    run.status = IngestRun.Status.FAILED if failed else IngestRun.Status.SUCCEEDED
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "finished_at"])
    return run


def ingest_runs_resume_stale(*, now=None) -> list[int]:
    """Runs left "running" by a worker that died (killed, redeployed, out of memory) would
    stay so forever, their remaining days never ingested. A run with no progress for
    USAGE_INGEST_STALE_MINUTES is queued again and resumes at its first day not done (each
    day is replaced in one transaction, so a day cut off half-way left nothing half-written).
    The threshold must exceed the longest day (the Athena timeout): a slow but live worker
    would otherwise be joined by a second one, which is safe but wasted work."""
    from .tasks import ingest_run_task

    now = now or timezone.now()
    cutoff = now - dt.timedelta(minutes=settings.USAGE_INGEST_STALE_MINUTES)
    resumed = []
    stale = IngestRun.objects.filter(status=IngestRun.Status.RUNNING).filter(
        Q(progress_at__lt=cutoff) | Q(progress_at__isnull=True, started_at__lt=cutoff)
    )
    for run in stale.only("pk", "days", "days_done", "errors", "progress_at", "started_at"):
        next_day = run.days[min(run.days_done, len(run.days) - 1)]
        last = run.progress_at or run.started_at
        note = f"no progress since {last:%Y-%m-%d %H:%M} UTC; resumed"
        updated = IngestRun.objects.filter(  # progress_at=None matches IS NULL
            pk=run.pk, status=IngestRun.Status.RUNNING, progress_at=run.progress_at
        ).update(
            status=IngestRun.Status.QUEUED,
            errors=[*run.errors, {"day": next_day, "stage": "resumed", "error": note}],
        )
        if updated:  # not resumed by a concurrent sweep, nor moved on meanwhile
            logger.warning("ingest run %s: %s", run.pk, note)
            resumed.append(run.pk)
            transaction.on_commit(lambda pk=run.pk: ingest_run_task.delay(pk))
    return resumed


def _replace_user_rows(engine, day: dt.date, run: IngestRun) -> None:
    """Per-user rows for the day, from the same events (usage/users.py)."""
    user_rows = getattr(engine, "user_daily_rows", None)
    if user_rows is None:
        return
    from .users import user_usage_day_replace

    try:
        user_usage_day_replace(day=day, rows=user_rows(day), run=run)
    except Exception as exc:
        logger.exception("per-user usage of %s failed", day)
        run.errors.append({"day": day.isoformat(), "stage": "users", "error": str(exc)[:500]})


def _record_tokens_last_used(engine, day: dt.date, run: IngestRun) -> None:
    """Token.last_used_at from the day's events; it only moves forward, so re-ingesting an
    older day leaves a later last use in place. Rows that are not a token id and a UTC time
    are quarantined (stage tokens)."""
    token_rows = getattr(engine, "token_last_used_rows", None)
    if token_rows is None:
        return

    try:
        quarantine = Quarantine(day=day, stage=QuarantinedRow.Stage.TOKENS, run=run)
        last_used = dict(_clean_last_used(token_rows(day), quarantine))
        tokens_record_last_used(last_used=last_used)
        quarantine_save(quarantine)
    except Exception as exc:
        logger.exception("token last-used of %s failed", day)
        run.errors.append({"day": day.isoformat(), "stage": "tokens", "error": str(exc)[:500]})


def quarantine_save(quarantine: Quarantine) -> None:
    """Store a later stage's set-aside rows and add their count to the day's."""
    with transaction.atomic():
        quarantine.save()
        if quarantine.count:
            IngestedDay.objects.filter(day=quarantine.day).update(
                quarantined_rows=F("quarantined_rows") + quarantine.count
            )
    if quarantine.count:
        logger.warning(
            "%s: %s %s result rows quarantined", quarantine.day, quarantine.count, quarantine.stage
        )


def _clean_last_used(
    rows: Iterable[tuple], quarantine: Quarantine | None = None
) -> Iterable[tuple[str, dt.datetime]]:
    """Valid (token id, aware UTC datetime) pairs; anything else (no token, a malformed
    timestamp) is set aside: last use is an observation, nothing is billed from it."""
    for row in rows:
        token_id, stamp = row
        try:
            token_id = str(uuid.UUID(str(token_id)))
        except ValueError:
            if quarantine is not None:
                quarantine.add(row, "token_id is not a token id")
            continue
        try:
            when = dt.datetime.fromisoformat(str(stamp))
        except ValueError:
            when = None
        if when is None or when.tzinfo is None:
            if quarantine is not None:
                quarantine.add(row, "last_used is not a time with a UTC offset")
            continue
        yield token_id, when.astimezone(dt.UTC)


def _clean_rows(
    rows: Iterable[tuple], known: set[str], counts: dict, quarantine: Quarantine
) -> Iterable[tuple]:
    """Rows ready to load: known customers, text and counts the tables can hold. Rows of
    unknown customers are counted as skipped; rows with a value that cannot be stored, or
    that stand for events the SQL found unusable, are quarantined."""
    for row in rows:
        counts["seen"] += 1
        if row[0] is None or row[0] == "":
            quarantine.add(row, unreadable_problem(row[5]))
            continue
        try:
            customer_id = str(uuid.UUID(str(row[0])))
        except ValueError:
            counts["skipped"] += 1
            continue
        if customer_id not in known:
            counts["skipped"] += 1
            continue
        invalid = row[10] if len(row) > 10 else ""
        if invalid:
            quarantine.add(row, invalid_events_problem(row[5], invalid))
            continue
        texts, numbers, problems = check_row(row, _TEXT_COLUMNS, _COUNT_COLUMNS, first=1)
        if problems:
            quarantine.add(row, "; ".join(problems))
            continue
        yield (customer_id, *texts, *numbers)


def usage_day_replace(*, day: dt.date, rows: Iterable[tuple], engine: str, run=None) -> IngestedDay:
    """Replace every UsageDaily row of `day` with `rows` (RESULT_COLUMNS order), atomically.

    Readers see the old rows until commit, then exactly the new ones: ingesting a day twice
    gives the same totals. Rows for customer ids the portal does not know are counted, not
    stored. A row with a value the tables cannot hold is quarantined (usage/quarantine.py),
    and the rest of the day loads.
    """
    known = {str(pk) for pk in Customer.objects.values_list("pk", flat=True)}
    counts = {"seen": 0, "skipped": 0}
    quarantine = Quarantine(day=day, stage=QuarantinedRow.Stage.DAILY, run=run)
    cleaned = _clean_rows(rows, known, counts, quarantine)
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Two loads of the same day (nightly and a staff re-ingest) take turns.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [5_0001, day.toordinal()])
        UsageDaily.objects.filter(day=day).delete()
        if connection.vendor == "postgresql":
            from .bulk import copy_day_rows

            written, requests = copy_day_rows(day=day, rows=cleaned)
        else:
            written, requests = _bulk_create_day_rows(day=day, rows=cleaned)
        quarantine.save()
        ingested, _ = IngestedDay.objects.update_or_create(
            day=day,
            defaults={
                "run": run,
                "engine": engine,
                "rows": written,
                "requests": requests,
                "skipped_rows": counts["skipped"],
                "quarantined_rows": quarantine.count,
            },
        )
    if counts["skipped"]:
        logger.warning("%s: %s result rows for unknown customers skipped", day, counts["skipped"])
    if quarantine.count:
        logger.warning("%s: %s result rows quarantined", day, quarantine.count)
    return ingested


def _bulk_create_day_rows(*, day: dt.date, rows: Iterable[tuple]) -> tuple[int, int]:
    merged: dict[tuple, list[int]] = {}
    for row in rows:
        totals = merged.setdefault(row[:5], [0, 0, 0, 0, 0])
        for i, value in enumerate(row[5:]):
            totals[i] += value
    objects = [
        UsageDaily(
            customer_id=key[0],
            day=day,
            model_id=key[1],
            application_id=key[2],
            cost_center=key[3],
            environment=key[4],
            requests=t[0],
            input_tokens=t[1],
            output_tokens=t[2],
            cache_read_tokens=t[3],
            cache_write_tokens=t[4],
        )
        for key, t in merged.items()
    ]
    UsageDaily.objects.bulk_create(objects, batch_size=2000)
    return len(objects), sum(t[0] for t in merged.values())


def reconcile_day(*, day: dt.date, client=None) -> int:
    """Compare the day's billed totals with the DAY# counters; store the differences."""
    from .selectors import billed_totals_by_customer

    billed = billed_totals_by_customer(day=day)
    customer_ids = {str(c) for c in Customer.objects.values_list("pk", flat=True)}
    counted = counters.day_totals(sorted(customer_ids), day=day, client=client)
    differences = []
    for customer_id in customer_ids:
        requests, tokens = billed.get(customer_id, (0, 0))
        counter = counted.get(customer_id, counters.CounterTotals())
        if (requests, tokens) != (counter.requests, counter.tokens):
            differences.append(
                UsageDifference(
                    customer_id=customer_id,
                    day=day,
                    billed_requests=requests,
                    counter_requests=counter.requests,
                    billed_tokens=tokens,
                    counter_tokens=counter.tokens,
                )
            )
    with transaction.atomic():
        UsageDifference.objects.filter(day=day).delete()
        UsageDifference.objects.bulk_create(differences)
    return len(differences)


def usage_settings_update(
    *,
    customer,
    regenerate_secret: bool = False,
    slack_webhook_url: str = "",
    remove_slack_webhook: bool = False,
    **changes,
) -> CustomerUsageSettings:
    """The one way a customer's usage settings are written (the staff page, the customer's
    pages and the API all come here, with values their forms validated). Applies `changes`
    and the rules: a signed webhook gets a signing secret when it has none, a new one on
    `regenerate_secret`; a Slack webhook URL given replaces the stored one and
    `remove_slack_webhook` clears it (neither: it stays)."""
    unknown = set(changes) - set(CustomerUsageSettings.EDITABLE)
    if unknown:
        raise TypeError(f"not usage settings: {', '.join(sorted(unknown))}")
    from .selectors import usage_settings_for  # selectors reads services' helpers

    with transaction.atomic():
        current = CustomerUsageSettings.objects.select_for_update().filter(
            customer=customer
        ).first() or usage_settings_for(customer=customer)
        for name, value in changes.items():
            setattr(current, name, value)
        if slack_webhook_url:
            current.slack_webhook_url = slack_webhook_url
        elif remove_slack_webhook:
            current.slack_webhook_url = ""
        if current.webhook_url and (regenerate_secret or not current.webhook_secret):
            current.webhook_secret = secrets.token_urlsafe(32)
        current.save()
    return current
