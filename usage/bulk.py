"""PostgreSQL bulk load of a day's rows: COPY into a staging table, then INSERT ... SELECT.

COPY is the fastest way into PostgreSQL (the temporary staging table writes no WAL). The day
was just deleted and the engine's GROUP BY makes keys unique, so a plain INSERT is tried first
(in a savepoint); if two rows still share a key (the same customer id spelled differently in
the events), the merge path sums them with GROUP BY and upserts with ON CONFLICT.
Runs inside the caller's transaction (the staging table is dropped at commit).
bench/bench_ingest.py measures it.
"""

import datetime as dt
from collections.abc import Iterable

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from .models import UsageDaily

_CREATE_STAGING = """
CREATE TEMP TABLE IF NOT EXISTS usage_daily_staging (
    customer_id uuid, model_id text, application_id text, cost_center text, environment text,
    requests bigint, input_tokens bigint, output_tokens bigint,
    cache_read_tokens bigint, cache_write_tokens bigint
) ON COMMIT DROP
"""
_COPY = """
COPY usage_daily_staging (customer_id, model_id, application_id, cost_center, environment,
    requests, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens) FROM STDIN
"""
_INSERT = """
WITH inserted AS (
    INSERT INTO usage_usagedaily (customer_id, day, model_id, application_id, cost_center,
        environment, requests, input_tokens, output_tokens, cache_read_tokens,
        cache_write_tokens, ingested_at)
    SELECT customer_id, %s, model_id, application_id, cost_center, environment,
        requests, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, %s
    FROM usage_daily_staging
    RETURNING requests
)
SELECT count(*), coalesce(sum(requests), 0) FROM inserted
"""
_UPSERT = """
WITH inserted AS (
    INSERT INTO usage_usagedaily (customer_id, day, model_id, application_id, cost_center,
        environment, requests, input_tokens, output_tokens, cache_read_tokens,
        cache_write_tokens, ingested_at)
    SELECT customer_id, %s, model_id, application_id, cost_center, environment,
        sum(requests), sum(input_tokens), sum(output_tokens), sum(cache_read_tokens),
        sum(cache_write_tokens), %s
    FROM usage_daily_staging
    GROUP BY customer_id, model_id, application_id, cost_center, environment
    ON CONFLICT (customer_id, day, model_id, application_id, cost_center, environment)
    DO UPDATE SET requests = EXCLUDED.requests, input_tokens = EXCLUDED.input_tokens,
        output_tokens = EXCLUDED.output_tokens, cache_read_tokens = EXCLUDED.cache_read_tokens,
        cache_write_tokens = EXCLUDED.cache_write_tokens, ingested_at = EXCLUDED.ingested_at
    RETURNING requests
)
SELECT count(*), coalesce(sum(requests), 0) FROM inserted
"""


def copy_day_rows(*, day: dt.date, rows: Iterable[tuple]) -> tuple[int, int]:
    """Load cleaned rows (customer_id, model, app, cost center, env, 5 counts) for `day`."""
    assert UsageDaily._meta.db_table == "usage_usagedaily"
    with connection.cursor() as cursor:
        cursor.execute(_CREATE_STAGING)
        with cursor.cursor.copy(_COPY) as copy:
            for row in rows:
                copy.write_row(row)
        params = [day, timezone.now()]
        try:
            with transaction.atomic():
                cursor.execute(_INSERT, params)
                written, requests = cursor.fetchone()
        except IntegrityError:
            cursor.execute(_UPSERT, params)
            written, requests = cursor.fetchone()
        cursor.execute("DROP TABLE usage_daily_staging")
    return int(written), int(requests)
