"""Per-user daily usage (seed 003's application x user view), replaced day by day on ingest."""

import datetime as dt
import uuid
from collections.abc import Iterable

from django.db import transaction

from customers.models import Customer

from .models import UsageUserDaily

_TEXT_LIMITS = (200, 200, 200)  # application_id, user_id, model_id


def user_usage_day_replace(*, day: dt.date, rows: Iterable[tuple]) -> int:
    """Replace the day's UsageUserDaily rows with `rows` (USER_RESULT_COLUMNS order).

    Rows of unknown customers are dropped, as for the billed rows; duplicate keys (e.g. a
    customer id in other letter case) are summed. Returns the number of rows stored.
    """
    known = {str(pk) for pk in Customer.objects.values_list("pk", flat=True)}
    merged: dict[tuple, list[int]] = {}
    for row in rows:
        try:
            customer_id = str(uuid.UUID(str(row[0])))
        except ValueError:
            continue
        if customer_id not in known:
            continue
        texts = tuple(str(v or "")[:n] for v, n in zip(row[1:4], _TEXT_LIMITS, strict=True))
        totals = merged.setdefault((customer_id, *texts), [0, 0, 0])
        for i, value in enumerate(row[4:7]):
            totals[i] += int(value or 0)
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
    return len(objects)
