"""The embedded engine: DuckDB runs the usage SQL over the proxy's local JSON-lines files.

The proxy (proxy/usage.py) writes them under USAGE_EVENTS_DIR with the S3 layout
(`usage-events/year=YYYY/month=MM/day=DD/proxy-<pid>.jsonl`), so hive partitioning gives the
query the same year/month/day columns as the Athena table. The column list is fixed here, as
the Glue table fixes it for Athena: a file without tags yields NULL tags, not a missing column.

With ignore_errors (measured with DuckDB 2.0) no line fails the query: a line DuckDB
cannot parse (not JSON, invalid UTF-8, a lone surrogate escape such as "\\ud800", a raw control
byte) becomes one row of NULLs, and a value of the wrong type in a typed column becomes NULL.
The token counts are VARCHAR, checked by the SQL. A file it cannot read at all (a .gz that is
not gzip, no permission) still fails the day's query.
"""

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from proxy import contract

from .query import (
    DUCKDB_PERCENTILE,
    daily_usage_sql,
    hourly_tokens_sql,
    operations_sql,
    token_last_used_sql,
    user_daily_sql,
)

# A boolean is read as text: DuckDB would skip a whole line whose `stream` is not a boolean,
# where the JSON SerDe reads NULL and keeps the line (the import reads neither flag to bill).
_DUCKDB_TYPES = {"string": "VARCHAR", "bigint": "BIGINT", "int": "BIGINT", "boolean": "VARCHAR"}


def _duckdb_type(glue_type: str) -> str:
    """The DuckDB type that reads a column of the event's Glue type (struct<a:string,...>)."""
    if glue_type.startswith("struct<"):
        fields = glue_type[len("struct<") : -1].split(",")
        return (
            "STRUCT("
            + ", ".join(
                f"{name} {_duckdb_type(kind)}" for name, kind in (f.split(":") for f in fields)
            )
            + ")"
        )
    return _DUCKDB_TYPES[glue_type]


# The event's columns as DuckDB reads them, from the one definition (proxy/contract.py). Counts
# are read as text and checked by the SQL (usage/query.py), as the Glue table does.
EVENT_COLUMNS = {name: _duckdb_type(kind) for name, kind in contract.USAGE_EVENT_COLUMNS.items()}
EVENTS_PREFIX = "usage-events"


def _events_root(base: str | Path | None = None) -> Path:
    root = Path(base or settings.USAGE_EVENTS_DIR)
    # Accept both the directory holding `usage-events/` and `usage-events/` itself.
    return root / EVENTS_PREFIX if (root / EVENTS_PREFIX).is_dir() else root


def _partition(root: Path, day: dt.date) -> Path:
    return root / f"year={day:%Y}" / f"month={day:%m}" / f"day={day:%d}"


def _source(root: Path, days: list[dt.date] | None = None) -> str:
    """The events as a table. With `days`, only those days' partitions are listed (the
    query's WHERE prunes to them anyway; listing them spares DuckDB globbing every day ever
    written: a day's import reads one folder, not the whole history)."""
    columns = ", ".join(f"'{name}': '{kind}'" for name, kind in EVENT_COLUMNS.items())
    paths = [_partition(root, day) / "*" for day in days or [] if _partition_has_files(root, day)]
    if not paths:  # no day given, or none has files: the whole history (the WHERE prunes)
        paths = [root / "year=*" / "month=*" / "day=*" / "*"]
    patterns = ", ".join("'" + str(path).replace("'", "''") + "'" for path in paths)
    return (
        # ignore_errors: a torn or malformed line is skipped, like Athena's ignore.malformed.json
        f"read_json([{patterns}], format = 'newline_delimited', hive_partitioning = true, "
        "ignore_errors = true, "
        "hive_types = {'year': 'VARCHAR', 'month': 'VARCHAR', 'day': 'VARCHAR'}, "
        f"columns = {{{columns}}})"
    )


def _partition_has_files(root: Path, day: dt.date) -> bool:
    folder = _partition(root, day)
    return folder.is_dir() and any(p.is_file() for p in folder.iterdir())


def _duckdb():
    """The duckdb module, imported on first use: it comes with the `run` extra (the laptop's
    engine), which the production image does not install."""
    try:
        import duckdb
    except ImportError as missing:
        raise ImproperlyConfigured(
            "USAGE_ENGINE=duckdb needs the duckdb package, from the `run` extra: make install "
            "(or pip install --require-hashes -r requirements/run.txt); production uses athena."
        ) from missing
    return duckdb


class DuckDBEngine:
    name = "duckdb"

    def __init__(self, events_dir: str | Path | None = None):
        self.root = _events_root(events_dir)

    def daily_sql(self, day: dt.date) -> str:
        return daily_usage_sql(source=_source(self.root, [day]), day=day)

    def daily_rows(self, day: dt.date) -> Iterator[tuple]:
        """Rows in RESULT_COLUMNS order; a day without files has no usage (not an error)."""
        yield from self._rows(day, self.daily_sql(day))

    def user_daily_rows(self, day: dt.date) -> Iterator[tuple]:
        """Rows in USER_RESULT_COLUMNS order (per end user, application and model)."""
        yield from self._rows(day, user_daily_sql(source=_source(self.root, [day]), day=day))

    def token_last_used_rows(self, day: dt.date) -> Iterator[tuple]:
        """(token_id, latest "timestamp" string) for each token used on the day."""
        sql = token_last_used_sql(source=_source(self.root, [day]), day=day)
        yield from self._rows(day, sql)

    def operations_rows(self, day: dt.date) -> Iterator[tuple]:
        """Rows in OPERATIONS_RESULT_COLUMNS order (usage/operations.py)."""
        sql = operations_sql(
            source=_source(self.root, [day]), day=day, percentile=DUCKDB_PERCENTILE
        )
        yield from self._rows(day, sql)

    def _rows(self, day: dt.date, sql: str) -> Iterator[tuple]:
        if not _partition_has_files(self.root, day):
            return
        duckdb = _duckdb()
        with duckdb.connect() as con:
            cursor = con.execute(sql)
            while batch := cursor.fetchmany(10_000):
                yield from batch

    def hourly_token_rows(self, now: dt.datetime, minimum: int) -> list[tuple]:
        days = {now.date(), (now - dt.timedelta(hours=1)).date()}
        if not any(_partition_has_files(self.root, d) for d in days):
            return []
        duckdb = _duckdb()
        sql = hourly_tokens_sql(source=_source(self.root, sorted(days)), now=now, minimum=minimum)
        with duckdb.connect() as con:
            return con.execute(sql).fetchall()
