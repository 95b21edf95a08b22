"""Plain-text usage report (`manage.py customers usage`), shared by commands."""

import datetime as dt

from .selectors import ingested_days, usage_by_model

COLUMNS = ("requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
HEADERS = ("model", "requests", "input", "output", "cache read", "cache write")


def parse_range(start_text: str, end_text: str) -> tuple[dt.date, dt.date]:
    """Two YYYY-MM-DD strings as dates; ValueError with a readable message otherwise."""
    try:
        start, end = dt.date.fromisoformat(start_text), dt.date.fromisoformat(end_text)
    except (TypeError, ValueError):
        raise ValueError("Dates must be in YYYY-MM-DD form, e.g. 2026-04-01.") from None
    if start > end:
        raise ValueError("The start date is after the end date.")
    return start, end


def print_usage_by_model(*, customer, start: dt.date, end: dt.date, out) -> list[dict]:
    """Write the customer's requests and tokens for [start, end], one line per model."""
    rows = usage_by_model(customer_id=customer.pk, start=start, end=end)
    out.write(f"Usage of {customer.name} ({customer.pk}) from {start} to {end} (UTC days)\n")
    table = [HEADERS] + [(r["model_id"], *(f"{r[c]:,}" for c in COLUMNS)) for r in rows]
    totals = {c: sum(r[c] for r in rows) for c in COLUMNS}
    table.append(("total", *(f"{totals[c]:,}" for c in COLUMNS)))
    widths = [max(len(str(line[i])) for line in table) for i in range(len(HEADERS))]
    for line in table:
        cells = [str(line[0]).ljust(widths[0])]
        cells += [str(v).rjust(w) for v, w in zip(line[1:], widths[1:], strict=True)]
        out.write("  ".join(cells) + "\n")
    days = (end - start).days + 1
    missing = days - len(ingested_days(start=start, end=end))
    if missing:
        out.write(
            f"Note: {missing} of {days} days are not ingested yet (today's usage is only in "
            "the real-time counters); run `manage.py usage_ingest` for past days.\n"
        )
    return rows
