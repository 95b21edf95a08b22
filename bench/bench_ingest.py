"""Benchmark: load 1,000,000 usage result rows (one day) into PostgreSQL.

Measures the path the nightly ingest takes after the SQL engine: the day's rows are cleaned
(customer id check, text and count checks, usage/quarantine.py) and written with COPY into a
staging table, then merged into UsageDaily with one INSERT ... SELECT ... ON CONFLICT, all in
the transaction that replaces the day. Three figures:

- first load of 1,000,000 rows (1,000 customers x 10 models x 100 applications);
- re-ingest of the same day (deletes the 1,000,000 rows, loads them again: replace-a-day);
- the Athena path end to end: 1,000,000 rows parsed from get_query_results pages (1,000 rows a
  page, NextToken paging, built on the fly by a fake client) and loaded.

Database: BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/helper_usage_bench,
created if missing; its usage and customer tables are wiped at each run.

    .venv/bin/python bench/bench_ingest.py          # prints a markdown table
"""

import datetime as dt
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/helper_usage_bench"
CUSTOMERS = int(os.environ.get("BENCH_INGEST_CUSTOMERS", "1000"))
MODELS = 10
APPLICATIONS = 100
GOAL_ROWS_PER_SECOND = 20_000
DAY = dt.date(2026, 10, 15)
COLUMNS = (
    "customer_id", "model_id", "application_id", "cost_center", "environment",
    "requests", "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens",
    "invalid_column",
)  # fmt: skip


def _create_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _setup_django(url: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings_test"
    _create_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def _customers() -> list[str]:
    from django.db import connection

    from customers.models import Customer

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE usage_usagedaily, usage_ingestedday, usage_usagedifference, "
            "usage_alert, usage_customerusagesettings, usage_summarydelivery"
        )
    Customer.objects.filter(name__startswith="bench-ingest-").delete()
    ids = [uuid.uuid4() for _ in range(CUSTOMERS)]
    Customer.objects.bulk_create(
        Customer(id=i, name=f"bench-ingest-{n:05d}", contact_email=f"c{n}@bench.example")
        for n, i in enumerate(ids)
    )
    return [str(i) for i in ids]


def _rows(customer_ids):
    models = [f"vendor.model-{m}" for m in range(MODELS)]
    apps = [f"app-{a:03d}" for a in range(APPLICATIONS)]
    for n, customer_id in enumerate(customer_ids):
        for model in models:
            for app in apps:
                yield (customer_id, model, app, "cc-1", "prod", 1 + n % 7, 1200, 300, 0, 0, "")


class _PagedResults:
    """A fake Athena client serving the rows as get_query_results pages of 1,000."""

    def __init__(self, customer_ids):
        self.rows = _rows(customer_ids)

    def start_query_execution(self, **kwargs):
        return {"QueryExecutionId": "bench"}

    def get_query_execution(self, **kwargs):
        return {"QueryExecution": {"Status": {"State": "SUCCEEDED"}}}

    def get_query_results(self, *, QueryExecutionId, MaxResults, NextToken=None):
        page = [] if NextToken else [{"Data": [{"VarCharValue": c} for c in COLUMNS]}]
        for row in self.rows:
            page.append({"Data": [{"VarCharValue": str(v)} for v in row]})
            if len(page) >= MaxResults:
                break
        result = {
            "ResultSet": {
                "Rows": page,
                "ResultSetMetadata": {"ColumnInfo": [{"Name": c} for c in COLUMNS]},
            }
        }
        if len(page) >= MaxResults:
            result["NextToken"] = str(int(NextToken or 0) + 1)
        return result


def _measure(name, load) -> dict:
    started = time.perf_counter()
    ingested = load()
    seconds = time.perf_counter() - started
    rate = ingested.rows / seconds
    return {
        "name": f"{name} ({ingested.rows:,} rows, {seconds:.1f} s)",
        "value": f"{rate:,.0f}",
        "unit": "rows/s",
        "goal": f">= {GOAL_ROWS_PER_SECOND:,} rows/s",
        "met": rate >= GOAL_ROWS_PER_SECOND,
    }


def _bench() -> list[dict]:
    _setup_django(os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL))
    from usage.athena import AthenaEngine
    from usage.models import UsageDaily
    from usage.services import usage_day_replace

    ids = _customers()
    results = [
        _measure(
            "first load of a day",
            lambda: usage_day_replace(day=DAY, rows=_rows(ids), engine="bench"),
        ),
        _measure(
            "re-ingest of the same day (replace)",
            lambda: usage_day_replace(day=DAY, rows=_rows(ids), engine="bench"),
        ),
    ]
    engine = AthenaEngine(_PagedResults(ids), sleep=lambda s: None)
    results.append(
        _measure(
            "Athena result pages parsed + loaded",
            lambda: usage_day_replace(day=DAY, rows=engine.daily_rows(DAY), engine="athena"),
        )
    )
    assert UsageDaily.objects.filter(day=DAY).count() == CUSTOMERS * MODELS * APPLICATIONS
    return results


def run() -> list[dict]:
    """Runs in a fresh interpreter so it never touches another benchmark's Django database."""
    env = {k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)}
    env.pop("DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, __file__, "--json"], env=env, capture_output=True, text=True, check=True
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    if "--json" in sys.argv:
        print(json.dumps(_bench()))
    else:
        rows = run()
        print("| measure | value | unit | goal | met |")
        print("|---|---|---|---|---|")
        for r in rows:
            print(
                f"| {r['name']} | {r['value']} | {r['unit']} | {r['goal']} | "
                f"{'yes' if r['met'] else 'no'} |"
            )
