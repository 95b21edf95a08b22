"""Hourly usage and daily latency per model, replaced day by day at each ingest.

The engine's OPERATIONS_SQL (usage/query.py) returns three kinds of rows from the day's events:
per customer, model and hour (UsageHourly), per customer and model (UsageLatencyDaily) and per
model over every customer (ModelLatencyDaily). Nothing is billed from them. Rows are checked
like the billed rows (usage/quarantine.py, stage "operations"): a row with a text or a count the
tables cannot hold, or an hour outside the day, is set aside, never allowed to fail the load.
"""

import datetime as dt
import logging
import uuid
from collections.abc import Iterable

from django.db import transaction

from customers.models import Customer

from .models import (
    IngestedDay,
    ModelLatencyDaily,
    QuarantinedRow,
    UsageHourly,
    UsageLatencyDaily,
)
from .quarantine import Quarantine, check_row, count_value

logger = logging.getLogger(__name__)

_TEXT_COLUMNS = (("model_id", 200),)
_COUNT_COLUMNS = ("requests", "input_tokens", "output_tokens", "errors")
_LATENCY_COLUMNS = ("latency_p50_ms", "latency_p95_ms")


def _hour(text, day: dt.date) -> dt.datetime | None:
    """The UTC hour of a "YYYY-MM-DDTHH" text, if it lies on `day`."""
    try:
        hour = dt.datetime.strptime(str(text), "%Y-%m-%dT%H").replace(tzinfo=dt.UTC)
    except ValueError:
        return None
    return hour if hour.date() == day else None


def _latency(column: str, value) -> tuple[int | None, str | None]:
    if value is None or value == "":
        return None, None  # no call of the group recorded a latency
    return count_value(column, value)


def _merge_latency(totals: list, counts: tuple, latency: tuple) -> None:
    """Requests and errors add up; percentiles of two groups cannot be merged exactly, so the
    larger is kept (only rows of one customer id spelled in two letter cases meet here)."""
    totals[0] += counts[0]
    totals[1] += counts[3]
    for i, value in enumerate(latency, start=2):
        if value is not None:
            totals[i] = value if totals[i] is None else max(totals[i], value)


def operations_day_replace(*, day: dt.date, rows: Iterable[tuple], run=None) -> int:
    """Replace the day's hourly and latency rows with `rows` (OPERATIONS_RESULT_COLUMNS order).
    Rows of unknown customers are dropped, as for the billed rows. Returns the hourly rows
    stored, also kept as `IngestedDay.hourly_rows` (which tells the anomaly baselines that the
    day has hourly usage)."""
    from .services import quarantine_save

    known = {str(pk) for pk in Customer.objects.values_list("pk", flat=True)}
    quarantine = Quarantine(day=day, stage=QuarantinedRow.Stage.OPERATIONS, run=run)
    hourly: dict[tuple, list[int]] = {}
    per_customer: dict[tuple, list] = {}
    per_model: dict[str, list] = {}
    for row in rows:
        grain, customer_id, hour_text = row[0], row[1], row[2]
        if grain != "hour":  # token sums are stored per hour only: not checked here
            row = (*row[:5], 0, 0, *row[7:])
        texts, counts, problems = check_row(row, _TEXT_COLUMNS, _COUNT_COLUMNS, first=3)
        latency = []
        for column, value in zip(_LATENCY_COLUMNS, row[8:10], strict=True):
            number, problem = _latency(column, value)
            latency.append(number)
            if problem:
                problems.append(problem)
        if grain != "model":
            try:
                customer_id = str(uuid.UUID(str(customer_id)))
            except ValueError:
                continue
            if customer_id not in known:
                continue
        hour = None
        if grain == "hour" and (hour := _hour(hour_text, day)) is None:
            problems.append(f"hour {str(hour_text)[:20]!a} is not an hour of {day}")
        if grain not in ("hour", "day", "model"):
            problems.append(f"unknown grain {str(grain)[:20]!a}")
        if problems:
            quarantine.add(row, "; ".join(problems))
            continue
        model_id = texts[0]
        if grain == "hour":
            totals = hourly.setdefault((customer_id, hour, model_id), [0, 0, 0, 0])
            for i, value in enumerate(counts):
                totals[i] += value
        elif grain == "day":
            totals = per_customer.setdefault((customer_id, model_id), [0, 0, None, None])
            _merge_latency(totals, counts, tuple(latency))
        else:
            totals = per_model.setdefault(model_id, [0, 0, None, None])
            _merge_latency(totals, counts, tuple(latency))
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    with transaction.atomic():
        UsageHourly.objects.filter(hour__gte=start, hour__lt=start + dt.timedelta(days=1)).delete()
        UsageLatencyDaily.objects.filter(day=day).delete()
        ModelLatencyDaily.objects.filter(day=day).delete()
        UsageHourly.objects.bulk_create(
            [
                UsageHourly(
                    customer_id=customer_id,
                    hour=hour,
                    model_id=model_id,
                    requests=t[0],
                    input_tokens=t[1],
                    output_tokens=t[2],
                    errors=t[3],
                )
                for (customer_id, hour, model_id), t in hourly.items()
            ],
            batch_size=2000,
        )
        UsageLatencyDaily.objects.bulk_create(
            [
                UsageLatencyDaily(
                    customer_id=customer_id,
                    day=day,
                    model_id=model_id,
                    requests=t[0],
                    errors=t[1],
                    latency_p50_ms=t[2],
                    latency_p95_ms=t[3],
                )
                for (customer_id, model_id), t in per_customer.items()
            ],
            batch_size=2000,
        )
        ModelLatencyDaily.objects.bulk_create(
            [
                ModelLatencyDaily(
                    day=day,
                    model_id=model_id,
                    requests=t[0],
                    errors=t[1],
                    latency_p50_ms=t[2],
                    latency_p95_ms=t[3],
                )
                for model_id, t in per_model.items()
            ],
            batch_size=2000,
        )
        IngestedDay.objects.filter(day=day).update(hourly_rows=len(hourly))
        quarantine_save(quarantine)
    return len(hourly)


def operations_stage(engine, day: dt.date, run) -> None:
    """The ingest's last stages for a day: hourly usage and latency from the engine, then the
    anomaly check. A failure is recorded on the run (stage "operations" or "anomalies") without
    failing it: nothing is billed from them."""
    operations_rows = getattr(engine, "operations_rows", None)
    if operations_rows is None:
        return
    try:
        operations_day_replace(day=day, rows=operations_rows(day), run=run)
    except Exception as exc:
        logger.exception("hourly usage of %s failed", day)
        run.errors.append({"day": day.isoformat(), "stage": "operations", "error": str(exc)[:500]})
        return
    from .anomalies import anomalies_detect_day

    try:
        anomalies_detect_day(day=day)
    except Exception as exc:
        logger.exception("anomaly check of %s failed", day)
        run.errors.append({"day": day.isoformat(), "stage": "anomalies", "error": str(exc)[:500]})
