"""Rows the import cannot store are set aside, never allowed to fail the day.

Without this, one usage event with a NUL in a tag would fail a day's load on PostgreSQL (text
cannot hold NUL), and the day would have no rows for any customer. Each result row is checked
before it is loaded: a text with a control character or a lone surrogate, or longer than its
column; a count that is not an integer, is negative or is past PostgreSQL's bigint; events the
SQL found with an unusable token count (`invalid_column`, usage/query.py); lines the engine
could not parse (a row without customer_id). Such a row is not stored: it is counted
(`IngestedDay.quarantined_rows`) and kept, made safe for storage, as a `QuarantinedRow` of the
day and stage, shown on the staff ingest run page. The rest of the day loads as usual.
"""

import datetime as dt
import json
from decimal import Decimal

from core.text import UNPRINTABLE, unprintable

from .models import QuarantinedRow
from .query import MAX_COUNT

# Rows kept per day and stage for inspection; beyond, they are only counted (a flood of bad
# events must not turn into a flood of rows held in memory during the load).
KEEP = 1000
RAW_LIMIT = 2000  # characters of the raw row kept


def _excerpt(value, limit: int = 40) -> str:
    """A short, ASCII-only picture of a value for a reason text (NUL shows as \\x00)."""
    text = ascii(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def text_problem(column: str, value, limit: int) -> str | None:
    text = "" if value is None else value if isinstance(value, str) else str(value)
    if problem := unprintable(text):
        return f"{column} contains {problem}"
    if len(text) > limit:
        return f"{column} is {len(text):,} characters long; the column holds {limit}"
    return None


def count_value(column: str, value) -> tuple[int, str | None]:
    """(the count, None) or (0, what is wrong with it). A missing count is 0."""
    if value is None or value == "":
        return 0, None
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, Decimal):
        if value.is_finite() and value == value.to_integral_value():
            number = int(value)
    elif isinstance(value, float):
        if value.is_integer():
            number = int(value)
    elif isinstance(value, str):
        digits = value[1:] if value[:1] == "-" else value
        if digits.isascii() and digits.isdigit() and len(digits) <= 40:
            number = int(value)
    if number is None:
        return 0, f"{column} is not a whole number: {_excerpt(value)}"
    if number < 0:
        return 0, f"{column} is negative: {number}"
    if number > MAX_COUNT:
        return 0, f"{column} is {number}, above the largest storable count {MAX_COUNT}"
    return number, None


def invalid_events_problem(requests, column) -> str:
    count, _ = count_value("requests", requests)
    events = f"{count:,} event(s)" if count else "events"
    return f"{events} whose {column} is not a whole number from 0 to {MAX_COUNT}"


def unreadable_problem(requests) -> str:
    count, _ = count_value("requests", requests)
    lines = f"{count:,} event line(s)" if count else "event lines"
    return (
        f"{lines} without a customer_id: a line the engine cannot parse (not JSON, invalid "
        "UTF-8, a lone surrogate escape) is read as empty"
    )


def raw_text(row) -> str:
    """The row as JSON text safe to store: ASCII only, so NUL is the six characters \\u0000."""
    text = json.dumps(list(row), ensure_ascii=True, default=str)
    if len(text) > RAW_LIMIT:
        text = f"{text[:RAW_LIMIT]}… ({len(text):,} characters)"
    return text


class Quarantine:
    """The rows set aside by one stage of one day's load."""

    def __init__(self, *, day: dt.date, stage: str, run=None):
        self.day, self.stage, self.run = day, stage, run
        self.count = 0
        self.kept: list[QuarantinedRow] = []

    def add(self, row, reason: str) -> None:
        self.count += 1
        if len(self.kept) < KEEP:
            self.kept.append(
                QuarantinedRow(
                    day=self.day,
                    run=self.run,
                    stage=self.stage,
                    reason=reason,
                    raw_row=raw_text(row),
                )
            )

    def save(self) -> None:
        """Replace the day's rows of this stage (call inside the load's transaction)."""
        QuarantinedRow.objects.filter(day=self.day, stage=self.stage).delete()
        QuarantinedRow.objects.bulk_create(self.kept, batch_size=500)


def _plain_count(value) -> int | None:
    """The count when it is an int (Athena's path) or an integral Decimal (DuckDB's sums) in
    0..MAX_COUNT, else None (then count_value says what is wrong)."""
    kind = type(value)
    if kind is Decimal:
        try:
            number = int(value)
        except (ValueError, OverflowError):  # NaN, Infinity
            return None
        if number != value:
            return None
    elif kind is int:
        number = value
    else:
        return None
    return number if 0 <= number <= MAX_COUNT else None


def _text(value) -> str:
    return "" if value is None else value if type(value) is str else str(value)


def check_row(row, text_columns, count_columns, *, first: int) -> tuple[tuple, tuple, list[str]]:
    """(texts, counts, problems) for `row[first:]`: texts (column, limit) then counts. The
    common case (printable text that fits, int counts in range) takes one regex search."""
    middle = first + len(text_columns)
    texts = tuple(v if type(v) is str else _text(v) for v in row[first:middle])
    values = row[middle : middle + len(count_columns)]
    plain = []
    for value in values:
        if type(value) is int and 0 <= value <= MAX_COUNT:
            plain.append(value)
        elif (number := _plain_count(value)) is not None:
            plain.append(number)
        else:
            break
    else:
        if UNPRINTABLE.search("".join(texts)) is None:
            for text, (_, limit) in zip(texts, text_columns, strict=True):
                if len(text) > limit:
                    break
            else:
                return texts, tuple(plain), []
    problems = [
        problem
        for (column, limit), text in zip(text_columns, texts, strict=True)
        if (problem := text_problem(column, text, limit))
    ]
    counts = []
    for column, value in zip(count_columns, values, strict=True):
        number, problem = count_value(column, value)
        if problem:
            problems.append(problem)
        counts.append(number)
    return texts, tuple(counts), problems
