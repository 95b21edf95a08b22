"""The one SQL text that turns a day of usage events into UsageDaily rows.

Athena (Trino) and DuckDB both run it; only `{source}` differs: the Glue table over S3 for
Athena, `read_json(...)` over the local event files for DuckDB. Both expose the hive partition
columns year, month and day as strings, so the WHERE clause prunes to one day's partition.
The events are deduplicated by request_id (the proxy or a retry may write an event twice).
Only successful calls are billed: the proxy also stores the calls it admitted that then failed
upstream (for the error rates of the latency page), and every query but the operations one
keeps to `status = 'success'` (a line without a status, from before failed calls were stored,
or unreadable, counts as one).
Values are formatted from a `datetime.date` only, never from user text.

Token counts are read as text (string in the Glue table, VARCHAR in DuckDB) and checked here, per
event, by the same expression on both engines: a count column that is present must read back
as the same whole number from 0 to 2**63-1 (`try_cast` to decimal(38, 0) and back to text), so
a string, a fraction, a negative number or a number past bigint can neither fail the query
(Athena's JSON SerDe fails the whole query on a value that does not fit a bigint column) nor
be summed. Such events are grouped apart, with the name of the first bad column in
`invalid_column`, and the import quarantines them (usage/quarantine.py); a missing count reads
as 0. Lines the engine cannot parse at all come back
as rows of NULLs (DuckDB's ignore_errors, Athena's ignore.malformed.json); they have no
request_id, so they are not deduplicated with each other, and the import quarantines their
group (no customer_id). Sums are decimal(38, 0), so they cannot overflow inside the engine.
The per-user and hourly queries check all four counts the same way, so an event set aside
from the billed rows is left out of them too.
"""

import datetime as dt

MAX_COUNT = 2**63 - 1  # PostgreSQL bigint


def _counts(columns: tuple[str, ...]) -> str:
    """Select-list lines: each count column's text, and its value as decimal(38, 0)."""
    return "".join(
        f"        {c},\n        try_cast({c} AS decimal(38, 0)) AS {c}_count,\n" for c in columns
    )


def _first_invalid(columns: tuple[str, ...]) -> str:
    """The name of the first count column present but not a whole number 0..MAX_COUNT, or ''."""
    cases = "".join(
        f"            WHEN NOT coalesce({c} IS NULL OR (CAST({c}_count AS varchar) = {c}\n"
        f"                AND {c}_count BETWEEN 0 AND {MAX_COUNT}), false) THEN '{c}'\n"
        for c in columns
    )
    return f"        CASE\n{cases}            ELSE ''\n        END AS invalid_column\n"


def _count_names(columns: tuple[str, ...]) -> str:
    return "".join(f"        {c}_count,\n" for c in columns)


_TOKEN_COUNTS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")

DAILY_USAGE_SQL = (
    """\
WITH day_events AS (
    SELECT
        request_id,
        customer_id,
        model_id,
        tags,
"""
    + _counts(_TOKEN_COUNTS)
    + """\
        row_number() OVER (PARTITION BY request_id ORDER BY "timestamp") AS copy_number
    FROM {source}
    WHERE year = '{year}' AND month = '{month}' AND day = '{day}'
      AND coalesce(status, 'success') = 'success'
),
checked AS (
    SELECT
        customer_id,
        model_id,
        tags,
"""
    + _count_names(_TOKEN_COUNTS)
    + _first_invalid(_TOKEN_COUNTS)
    + """\
    FROM day_events
    WHERE copy_number = 1 OR request_id IS NULL
)
SELECT
    customer_id,
    model_id,
    coalesce(tags.applicationId, '') AS application_id,
    coalesce(tags.costCenter, '') AS cost_center,
    coalesce(tags.environment, '') AS environment,
    count(*) AS requests,
    coalesce(sum(input_tokens_count), 0) AS input_tokens,
    coalesce(sum(output_tokens_count), 0) AS output_tokens,
    coalesce(sum(cache_read_tokens_count), 0) AS cache_read_tokens,
    coalesce(sum(cache_write_tokens_count), 0) AS cache_write_tokens,
    invalid_column
FROM checked
GROUP BY 1, 2, 3, 4, 5, 11
ORDER BY 1, 2, 3, 4, 5, 11
"""
)

# The hourly rule: tokens per user, application and model within one clock hour (UTC), for the
# current hour and the previous one (so usage in a check interval spanning the hour is seen).
HOURLY_TOKENS_SQL = (
    """\
WITH recent AS (
    SELECT
        request_id,
        customer_id,
        model_id,
        tags,
        "timestamp",
"""
    + _counts(_TOKEN_COUNTS)
    + """\
        row_number() OVER (PARTITION BY request_id ORDER BY "timestamp") AS copy_number
    FROM {source}
    WHERE ((year = '{year}' AND month = '{month}' AND day = '{day}')
        OR (year = '{since_year}' AND month = '{since_month}' AND day = '{since_day}'))
      AND "timestamp" >= '{since}'
      AND coalesce(status, 'success') = 'success'
),
checked AS (
    SELECT
        customer_id,
        model_id,
        tags,
        "timestamp",
"""
    + _count_names(_TOKEN_COUNTS)
    + _first_invalid(_TOKEN_COUNTS)
    + """\
    FROM recent
    WHERE copy_number = 1
)
SELECT
    customer_id,
    substr("timestamp", 1, 13) AS hour,
    coalesce(tags.userId, '') AS user_id,
    coalesce(tags.applicationId, '') AS application_id,
    model_id,
    coalesce(sum(input_tokens_count), 0) + coalesce(sum(output_tokens_count), 0) AS tokens
FROM checked
WHERE invalid_column = ''
GROUP BY 1, 2, 3, 4, 5
HAVING coalesce(sum(input_tokens_count), 0) + coalesce(sum(output_tokens_count), 0) >= {minimum}
"""
)

# The application x user view: the same day's events per end user (tags.userId). Kept
# apart from the billed rows so adding the user dimension never multiplies what billing reads.
USER_DAILY_SQL = (
    """\
WITH day_events AS (
    SELECT
        request_id,
        customer_id,
        model_id,
        tags,
"""
    + _counts(_TOKEN_COUNTS)
    + """\
        row_number() OVER (PARTITION BY request_id ORDER BY "timestamp") AS copy_number
    FROM {source}
    WHERE year = '{year}' AND month = '{month}' AND day = '{day}'
      AND coalesce(status, 'success') = 'success'
),
checked AS (
    SELECT
        customer_id,
        model_id,
        tags,
"""
    + _count_names(_TOKEN_COUNTS)
    + _first_invalid(_TOKEN_COUNTS)
    + """\
    FROM day_events
    WHERE copy_number = 1 OR request_id IS NULL
)
SELECT
    customer_id,
    coalesce(tags.applicationId, '') AS application_id,
    coalesce(tags.userId, '') AS user_id,
    model_id,
    count(*) AS requests,
    coalesce(sum(input_tokens_count), 0) AS input_tokens,
    coalesce(sum(output_tokens_count), 0) AS output_tokens,
    invalid_column
FROM checked
GROUP BY 1, 2, 3, 4, 8
ORDER BY 1, 2, 3, 4, 8
"""
)
USER_RESULT_COLUMNS = (
    "customer_id",
    "application_id",
    "user_id",
    "model_id",
    "requests",
    "input_tokens",
    "output_tokens",
    "invalid_column",
)
USER_INTEGER_COLUMNS = frozenset(USER_RESULT_COLUMNS[4:7])

# Each token's last use on the day (Token.last_used_at): read from the same events at
# each ingest, so the proxy's hot path writes nothing more. The proxy formats "timestamp" as
# YYYY-MM-DDTHH:MM:SS.mmmZ (fixed width, UTC), so max() on the string is the latest instant.
TOKEN_LAST_USED_SQL = """\
WITH day_events AS (
    SELECT
        token_id,
        "timestamp",
        row_number() OVER (PARTITION BY request_id ORDER BY "timestamp") AS copy_number
    FROM {source}
    WHERE year = '{year}' AND month = '{month}' AND day = '{day}'
      AND coalesce(status, 'success') = 'success'
)
SELECT
    token_id,
    max("timestamp") AS last_used
FROM day_events
WHERE copy_number = 1 AND token_id IS NOT NULL
GROUP BY 1
ORDER BY 1
"""
TOKEN_RESULT_COLUMNS = ("token_id", "last_used")

RESULT_COLUMNS = (
    "customer_id",
    "model_id",
    "application_id",
    "cost_center",
    "environment",
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "invalid_column",  # "" or the first token count column that is not a storable count
)
INTEGER_COLUMNS = frozenset(RESULT_COLUMNS[5:10])


def daily_usage_sql(*, source: str, day: dt.date, template: str = DAILY_USAGE_SQL) -> str:
    if not isinstance(day, dt.date):
        raise TypeError("day must be a datetime.date")
    return template.format(
        source=source, year=f"{day.year:04d}", month=f"{day.month:02d}", day=f"{day.day:02d}"
    )


def user_daily_sql(*, source: str, day: dt.date) -> str:
    return daily_usage_sql(source=source, day=day, template=USER_DAILY_SQL)


def token_last_used_sql(*, source: str, day: dt.date) -> str:
    return daily_usage_sql(source=source, day=day, template=TOKEN_LAST_USED_SQL)


def hourly_tokens_sql(*, source: str, now: dt.datetime, minimum: int) -> str:
    """Events since the start of the previous clock hour (possibly the previous day)."""
    since = (now - dt.timedelta(hours=1)).replace(minute=0, second=0, microsecond=0)
    return HOURLY_TOKENS_SQL.format(
        source=source,
        year=f"{now.year:04d}",
        month=f"{now.month:02d}",
        day=f"{now.day:02d}",
        since_year=f"{since.year:04d}",
        since_month=f"{since.month:02d}",
        since_day=f"{since.day:02d}",
        since=since.strftime("%Y-%m-%dT%H:%M:%S"),
        minimum=int(minimum),
    )


# Operations figures of the day, from the same events in one scan (GROUPING SETS): requests,
# tokens and failed calls per customer, model and UTC hour (UsageHourly, the anomaly baselines),
# and requests, failed calls and latency percentiles per customer and model and per model over
# every customer (the latency page). `grain` says which: "hour", "day" or "model". A call is
# failed when its status is not "success", its http_status is 400 or more, or it carries an
# error_code: an admitted call Bedrock failed, or a stream cut by an upstream error (requests
# refused before admission, by authentication or a limit, are only on CloudWatch).
# Events set aside from the billed rows (an unusable token count) and unreadable lines are left
# out. The percentile function is the engine's: quantile_cont on DuckDB (exact),
# approx_percentile on Athena (Trino's, within about 1 %).
OPERATIONS_SQL = (
    """\
WITH day_events AS (
    SELECT
        request_id,
        customer_id,
        model_id,
        "timestamp",
        latency_ms,
        status,
        http_status,
        error_code,
"""
    + _counts(_TOKEN_COUNTS)
    + """\
        row_number() OVER (PARTITION BY request_id ORDER BY "timestamp") AS copy_number
    FROM {source}
    WHERE year = '{year}' AND month = '{month}' AND day = '{day}'
),
checked AS (
    SELECT
        customer_id,
        coalesce(model_id, '') AS model_id,
        coalesce(substr("timestamp", 1, 13), '') AS event_hour,
        latency_ms,
        CASE WHEN coalesce(status, 'success') <> 'success' OR coalesce(http_status, 200) >= 400
            OR coalesce(error_code, '') <> '' THEN 1 ELSE 0 END AS failed,
"""
    + _count_names(_TOKEN_COUNTS)
    + _first_invalid(_TOKEN_COUNTS)
    + """\
    FROM day_events
    WHERE (copy_number = 1 OR request_id IS NULL) AND customer_id IS NOT NULL
)
SELECT
    CASE WHEN grouping(customer_id) = 1 THEN 'model'
        WHEN grouping(event_hour) = 1 THEN 'day' ELSE 'hour' END AS grain,
    customer_id,
    event_hour AS hour,
    model_id,
    count(*) AS requests,
    coalesce(sum(input_tokens_count), 0) AS input_tokens,
    coalesce(sum(output_tokens_count), 0) AS output_tokens,
    sum(failed) AS errors,
    {p50} AS latency_p50_ms,
    {p95} AS latency_p95_ms
FROM checked
WHERE invalid_column = ''
GROUP BY GROUPING SETS ((customer_id, model_id, event_hour), (customer_id, model_id), (model_id))
"""
)
OPERATIONS_RESULT_COLUMNS = (
    "grain",
    "customer_id",
    "hour",
    "model_id",
    "requests",
    "input_tokens",
    "output_tokens",
    "errors",
    "latency_p50_ms",
    "latency_p95_ms",
)
OPERATIONS_INTEGER_COLUMNS = frozenset(OPERATIONS_RESULT_COLUMNS[4:8])
# The percentile expressions of each engine, in whole milliseconds.
DUCKDB_PERCENTILE = "CAST(round(quantile_cont(latency_ms, {fraction})) AS BIGINT)"
ATHENA_PERCENTILE = "approx_percentile(latency_ms, {fraction})"


def operations_sql(*, source: str, day: dt.date, percentile: str) -> str:
    if not isinstance(day, dt.date):
        raise TypeError("day must be a datetime.date")
    return OPERATIONS_SQL.format(
        source=source,
        year=f"{day.year:04d}",
        month=f"{day.month:02d}",
        day=f"{day.day:02d}",
        p50=percentile.format(fraction="0.5"),
        p95=percentile.format(fraction="0.95"),
    )
