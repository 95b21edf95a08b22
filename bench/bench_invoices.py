"""Benchmark: the monthly invoice run for 10,000 customers with a month of usage.

Data: 10,000 active customers (BENCH_CUSTOMERS), each with usage of 3 of 5 models
(BENCH_MODELS_PER_DAY) on every day of October 2026: 930,000 UsageDaily rows, one model
changing price mid-month, a third of customers on a graduated tiered plan, a third on a
subscription, the rest pay-as-you-go. Generated with bulk_create into a dedicated database
(BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/helper_billing_bench),
which is created if missing and wiped at each run. Only `invoice_run` is timed.

    .venv/bin/python bench/bench_invoices.py          # prints a markdown table

Under `make bench` the shared data set of bench/dataset.py is used instead when it exists (10,000
customers, a year of usage): the run covers its last full month. BENCH_INVOICES_STANDALONE=1 (or
BENCH_DATABASE_URL) keeps the standalone data set above.
"""

import os
import random
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

CUSTOMERS = int(os.environ.get("BENCH_CUSTOMERS", "10000"))
MODELS_PER_DAY = int(os.environ.get("BENCH_MODELS_PER_DAY", "3"))
GOAL_SECONDS = 60
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/helper_billing_bench"
PERIOD = date(2026, 10, 1)


def _setup_django():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)
    from django.conf import settings

    if settings.configured:
        # Another benchmark set Django up first: never wipe a database that is not ours.
        name = settings.DATABASES["default"]["NAME"]
        if name != url.rsplit("/", 1)[1]:
            return False
    else:
        os.environ["DATABASE_URL"] = url
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings_test")
        _create_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return True


def _run_in_subprocess(*args: str) -> list[dict]:
    """Django is already set up on another database in this process: run in a fresh one."""
    import json
    import subprocess

    env = {
        k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL")
    }
    done = subprocess.run(
        [sys.executable, __file__, "--json", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def _create_database(url: str) -> None:
    if not url.startswith("postgres"):
        return
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def _generate() -> float:
    from django.db import connection

    from billing.models import CustomerPlan, ModelPrice, PricingPlan
    from customers.models import Customer
    from usage.models import UsageDaily

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE billing_invoiceline, billing_creditapplication, billing_invoice,"
            " billing_customerplan, usage_usagedaily, customers_customer CASCADE"
        )
    # Written without save(), as a data migration writes: the benchmark has no proxy to send
    # the price to (ModelPrice.save records it in the outbox for the proxy).
    change = {
        "model_id": "anthropic.claude-3-haiku-20240307-v1:0",
        "effective_from": date(2026, 10, 16),
    }
    prices = {
        "input_per_1k": Decimal("0.0002"),
        "output_per_1k": Decimal("0.001"),
        "display_name": "Claude 3 Haiku (bench price change)",
    }
    if not ModelPrice.objects.filter(**change).update(**prices):
        ModelPrice.objects.bulk_create([ModelPrice(**change, **prices)])
    tiered, _ = PricingPlan.objects.get_or_create(
        code="bench-tiered",
        defaults={
            "name": "Bench graduated",
            "kind": "tiered",
            "metric": "requests",
            "tiers": [
                {"up_to": 1000, "unit_price": "0.01"},
                {"up_to": 10000, "unit_price": "0.008"},
                {"unit_price": "0.005"},
            ],
        },
    )
    subscription, _ = PricingPlan.objects.get_or_create(
        code="bench-subscription",
        defaults={
            "name": "Bench team",
            "kind": "subscription",
            "monthly_fee": Decimal("49"),
            "included_units": 2000,
            "overage_unit_price": Decimal("0.004"),
            "minimum_commitment": Decimal("60"),
        },
    )
    customers = Customer.objects.bulk_create(
        Customer(name=f"Bench customer {i:05d}", contact_email=f"c{i}@bench.example")
        for i in range(CUSTOMERS)
    )
    CustomerPlan.objects.bulk_create(
        CustomerPlan(customer=c, plan=tiered if i % 3 == 0 else subscription, effective_from=PERIOD)
        for i, c in enumerate(customers)
        if i % 3 != 2
    )
    models = [
        "anthropic.claude-3-haiku-20240307-v1:0",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "amazon.nova-lite-v1:0",
        "meta.llama3-1-8b-instruct-v1:0",
        "sandbox.echo-v1",
    ]
    rng = random.Random(42)
    days = [PERIOD + timedelta(days=d) for d in range(31)]
    batch = []
    for customer in customers:
        for day in days:
            for model_id in rng.sample(models, MODELS_PER_DAY):
                requests = rng.randint(1, 200)
                batch.append(
                    UsageDaily(
                        customer_id=customer.pk,
                        day=day,
                        model_id=model_id,
                        requests=requests,
                        input_tokens=requests * rng.randint(200, 2000),
                        output_tokens=requests * rng.randint(50, 500),
                    )
                )
            if len(batch) >= 20000:
                UsageDaily.objects.bulk_create(batch)
                batch = []
    UsageDaily.objects.bulk_create(batch)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return time.perf_counter() - started


def _shared_dataset() -> bool:
    """`make bench` generates one large data set for every benchmark (bench/dataset.py): use it
    when it is there, unless BENCH_INVOICES_STANDALONE or BENCH_DATABASE_URL asks otherwise."""
    if os.environ.get("BENCH_INVOICES_STANDALONE") or "BENCH_DATABASE_URL" in os.environ:
        return False
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench import dataset

    return dataset.ready()


def _run_shared() -> list[dict]:
    """The run for the last full month of the shared data set, which has no invoices yet (drafts
    left by an earlier benchmark run are deleted first)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from bench import dataset

    dataset.setup_django(dataset.database_url())
    details = dataset.ensure()
    from billing.models import Invoice, InvoiceLine
    from billing.services import invoice_run
    from customers.models import Customer
    from usage.models import UsageDaily

    end_day = date.fromisoformat(details["end_day"])
    period = (end_day.replace(day=1) - timedelta(days=1)).replace(day=1)
    Invoice.objects.filter(period_start=period, status=Invoice.Status.DRAFT).delete()
    usage_rows = UsageDaily.objects.filter(day__gte=period, day__lt=end_day.replace(day=1)).count()
    customers = Customer.objects.count()
    started = time.perf_counter()
    result = invoice_run(period_start=period)
    seconds = time.perf_counter() - started
    assert result.created == customers, result
    lines = InvoiceLine.objects.filter(invoice__period_start=period).count()
    started = time.perf_counter()
    again = invoice_run(period_start=period)
    rerun_seconds = time.perf_counter() - started
    assert again.created == 0, again
    return [
        {
            "name": f"invoice run {period:%Y-%m} on the shared data set, {customers:,} customers,"
            f" {usage_rows:,} usage rows that month (5M in the table) -> {lines:,} lines",
            "value": round(seconds, 2),
            "unit": "s",
            "goal": f"< {GOAL_SECONDS}",
            "met": seconds < GOAL_SECONDS,
        },
        {
            "name": "re-run of the same month (idempotent, creates nothing)",
            "value": round(rerun_seconds, 2),
            "unit": "s",
            "goal": f"< {GOAL_SECONDS}",
            "met": rerun_seconds < GOAL_SECONDS,
        },
    ]


def run() -> list[dict]:
    if _shared_dataset():
        return _run_in_subprocess("--shared")
    if not _setup_django():
        return _run_in_subprocess()
    from billing.models import Invoice, InvoiceLine
    from billing.services import invoice_run
    from usage.models import UsageDaily

    generate_seconds = _generate()
    usage_rows = UsageDaily.objects.count()
    started = time.perf_counter()
    result = invoice_run(period_start=PERIOD)
    seconds = time.perf_counter() - started
    assert result.created == CUSTOMERS, result
    lines = InvoiceLine.objects.count()
    started = time.perf_counter()
    again = invoice_run(period_start=PERIOD)
    rerun_seconds = time.perf_counter() - started
    assert again.created == 0 and Invoice.objects.count() == CUSTOMERS
    return [
        {
            "name": f"invoice run, {CUSTOMERS:,} customers, {usage_rows:,} usage rows"
            f" -> {lines:,} lines",
            "value": round(seconds, 2),
            "unit": "s",
            "goal": f"< {GOAL_SECONDS}",
            "met": seconds < GOAL_SECONDS,
        },
        {
            "name": "re-run of the same month (idempotent, creates nothing)",
            "value": round(rerun_seconds, 2),
            "unit": "s",
            "goal": f"< {GOAL_SECONDS}",
            "met": rerun_seconds < GOAL_SECONDS,
        },
        {
            "name": "test data generation with bulk_create (not part of the goal)",
            "value": round(generate_seconds, 1),
            "unit": "s",
            "goal": "",
        },
    ]


if __name__ == "__main__":
    rows = _run_shared() if "--shared" in sys.argv else run()
    if "--json" in sys.argv:
        import json

        print(json.dumps(rows))
        sys.exit(0)
    print("| measure | value | unit | goal | met |")
    print("|---|---|---|---|---|")
    for row in rows:
        met = row.get("met")
        met_text = "" if met is None else ("yes" if met else "**no**")
        print(f"| {row['name']} | {row['value']} | {row['unit']} | {row['goal']} | {met_text} |")
