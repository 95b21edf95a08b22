"""Per-user daily usage (the application x user view), replaced day by day on ingest."""

import datetime as dt
import uuid
from collections.abc import Iterable

from django.db import transaction

from customers.models import Customer

from .models import QuarantinedRow, UsageUserDaily
from .quarantine import Quarantine, check_row, invalid_events_problem, unreadable_problem

_TEXT_COLUMNS = (("application_id", 200), ("user_id", 200), ("model_id", 200))
_COUNT_COLUMNS = ("requests", "input_tokens", "output_tokens")


def user_usage_day_replace(*, day: dt.date, rows: Iterable[tuple], run=None) -> int:
    """Replace the day's UsageUserDaily rows with `rows` (USER_RESULT_COLUMNS order).

    Rows of unknown customers are dropped, as for the billed rows; duplicate keys (e.g. a
    customer id in other letter case) are summed; rows with a value the table cannot hold are
    quarantined (stage users), as for the billed rows. Returns the number of rows stored.
    """
    from .services import quarantine_save

    known = {str(pk) for pk in Customer.objects.values_list("pk", flat=True)}
    quarantine = Quarantine(day=day, stage=QuarantinedRow.Stage.USERS, run=run)
    merged: dict[tuple, list[int]] = {}
    for row in rows:
        if row[0] is None or row[0] == "":
            quarantine.add(row, unreadable_problem(row[4]))
            continue
        try:
            customer_id = str(uuid.UUID(str(row[0])))
        except ValueError:
            continue
        if customer_id not in known:
            continue
        invalid = row[7] if len(row) > 7 else ""
        if invalid:
            quarantine.add(row, invalid_events_problem(row[4], invalid))
            continue
        texts, numbers, problems = check_row(row, _TEXT_COLUMNS, _COUNT_COLUMNS, first=1)
        if problems:
            quarantine.add(row, "; ".join(problems))
            continue
        totals = merged.setdefault((customer_id, *texts), [0, 0, 0])
        for i, value in enumerate(numbers):
            totals[i] += value
    objects = [
        UsageUserDaily(
            customer_id=key[0],
            day=day,
            application_id=key[1],
            user_id=key[2],
            model_id=key[3],
            requests=t[0],
            input_tokens=t[1],
            output_tokens=t[2],
        )
        for key, t in merged.items()
    ]
    with transaction.atomic():
        UsageUserDaily.objects.filter(day=day).delete()
        UsageUserDaily.objects.bulk_create(objects, batch_size=2000)
        quarantine_save(quarantine)
    return len(objects)
