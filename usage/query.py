"""The one SQL text that turns a day of usage events into UsageDaily rows.

Athena (Trino) and DuckDB both run it; only `{source}` differs: the Glue table over S3 for
Athena, `read_json(...)` over the local event files for DuckDB. Both expose the hive partition
columns year, month and day as strings, so the WHERE clause prunes to one day's partition.
The events are deduplicated by request_id (the proxy or a retry may write an event twice).
Values are formatted from a `datetime.date` only, never from user text.
"""

import datetime as dt

DAILY_USAGE_SQL = """\
WITH day_events AS (
    SELECT
        customer_id,
        model_id,
        tags,
        input_tokens,
        output_tokens,
        cache_read_tokens,
        cache_write_tokens,
        row_number() OVER (PARTITION BY request_id ORDER BY "timestamp") AS copy_number
    FROM {source}
    WHERE year = '{year}' AND month = '{month}' AND day = '{day}'
)
SELECT
    customer_id,
    model_id,
    coalesce(tags.applicationId, '') AS application_id,
    coalesce(tags.costCenter, '') AS cost_center,
    coalesce(tags.environment, '') AS environment,
    count(*) AS requests,
    coalesce(sum(input_tokens), 0) AS input_tokens,
    coalesce(sum(output_tokens), 0) AS output_tokens,
    coalesce(sum(cache_read_tokens), 0) AS cache_read_tokens,
    coalesce(sum(cache_write_tokens), 0) AS cache_write_tokens
FROM day_events
WHERE copy_number = 1
GROUP BY 1, 2, 3, 4, 5
ORDER BY 1, 2, 3, 4, 5
"""

# Seed 003's rule: tokens per user, application and model within one clock hour (UTC), for the
# current hour and the previous one (so usage in a check interval spanning the hour is seen).
HOURLY_TOKENS_SQL = """\
WITH recent AS (
    SELECT
        customer_id,
        model_id,
        tags,
        "timestamp",
        input_tokens,
        output_tokens,
        row_number() OVER (PARTITION BY request_id ORDER BY "timestamp") AS copy_number
    FROM {source}
    WHERE ((year = '{year}' AND month = '{month}' AND day = '{day}')
        OR (year = '{since_year}' AND month = '{since_month}' AND day = '{since_day}'))
      AND "timestamp" >= '{since}'
)
SELECT
    customer_id,
    substr("timestamp", 1, 13) AS hour,
    coalesce(tags.userId, '') AS user_id,
    coalesce(tags.applicationId, '') AS application_id,
    model_id,
    coalesce(sum(input_tokens), 0) + coalesce(sum(output_tokens), 0) AS tokens
FROM recent
WHERE copy_number = 1
GROUP BY 1, 2, 3, 4, 5
HAVING coalesce(sum(input_tokens), 0) + coalesce(sum(output_tokens), 0) >= {minimum}
"""

# Seed 003's application x user view: the same day's events per end user (tags.userId). Kept
# apart from the billed rows so adding the user dimension never multiplies what billing reads.
USER_DAILY_SQL = """\
WITH day_events AS (
    SELECT
        customer_id,
        model_id,
        tags,
        input_tokens,
        output_tokens,
        row_number() OVER (PARTITION BY request_id ORDER BY "timestamp") AS copy_number
    FROM {source}
    WHERE year = '{year}' AND month = '{month}' AND day = '{day}'
)
SELECT
    customer_id,
    coalesce(tags.applicationId, '') AS application_id,
    coalesce(tags.userId, '') AS user_id,
    model_id,
    count(*) AS requests,
    coalesce(sum(input_tokens), 0) AS input_tokens,
    coalesce(sum(output_tokens), 0) AS output_tokens
FROM day_events
WHERE copy_number = 1
GROUP BY 1, 2, 3, 4
ORDER BY 1, 2, 3, 4
"""
USER_RESULT_COLUMNS = (
    "customer_id",
    "application_id",
    "user_id",
    "model_id",
    "requests",
    "input_tokens",
    "output_tokens",
)
USER_INTEGER_COLUMNS = frozenset(USER_RESULT_COLUMNS[4:])

# Each token's last use on the day (Token.last_used_at, issue 3): read from the same events at
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
)
INTEGER_COLUMNS = frozenset(RESULT_COLUMNS[5:])


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
