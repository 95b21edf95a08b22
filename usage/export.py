"""Usage CSV, streamed row by row from a server-side cursor (any range, constant memory)."""

import csv
import datetime as dt

from django.http import StreamingHttpResponse

from core.text import printable

from .selectors import COUNT_FIELDS, usage_export_rows

HEADER = ("day", "customer_id", "model_id", "application_id", "cost_center", "environment",
          *COUNT_FIELDS)  # fmt: skip


class _Echo:
    def write(self, value):
        return value


def _lines(rows):
    writer = csv.writer(_Echo())
    yield writer.writerow(HEADER)
    for row in rows:
        yield writer.writerow(_safe(v) for v in row)


def _safe(value):
    """Neutralise spreadsheet formulas in tag values set by the customers' programs, and
    control characters and lone surrogates (stored before the proxy refused them in tags)."""
    if not isinstance(value, str):
        return value
    if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        value = "'" + value
    return printable(value)


def usage_csv_response(*, customer_id, start: dt.date, end: dt.date, name: str):
    rows = usage_export_rows(customer_id=customer_id, start=start, end=end)
    response = StreamingHttpResponse(_lines(rows), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="usage-{name}-{start}-{end}.csv"'
    return response
