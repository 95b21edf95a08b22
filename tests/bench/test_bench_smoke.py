"""The benchmarks keep working: the data set generator, every page benchmark and the proxy
handler benchmark run on a tiny data set (the figures themselves come from `make bench`)."""

import datetime as dt

import pytest
from django.db import connection

from bench import bench_pages, bench_proxy, bench_proxy_rps, dataset
from bench import run as bench_run
from billing.models import Invoice, InvoiceLine
from core.models import User
from customers.models import Customer, Token
from usage.models import IngestedDay, UsageDaily

CUSTOMERS = 3
END_DAY = dt.date(2026, 10, 31)


@pytest.fixture
def tiny_dataset(db):
    return dataset.generate(connection=connection, customers=CUSTOMERS, end_day=END_DAY)


def test_generator_writes_every_table(tiny_dataset):
    assert Customer.objects.count() == CUSTOMERS
    assert User.objects.filter(is_staff=True).get().email == dataset.STAFF_EMAIL
    assert User.objects.filter(customer__isnull=False).count() == CUSTOMERS
    assert Token.objects.count() == CUSTOMERS * dataset.TOKENS_PER_CUSTOMER
    assert UsageDaily.objects.count() == tiny_dataset["usage rows"] > CUSTOMERS * 100
    assert UsageDaily.objects.latest("day").day == END_DAY
    assert IngestedDay.objects.count() == dataset.DAYS
    assert Invoice.objects.count() == CUSTOMERS * dataset.INVOICE_MONTHS
    assert InvoiceLine.objects.count() == 2 * Invoice.objects.count()
    # Money stays exact: totals are the sum of their lines.
    invoice = Invoice.objects.order_by("number").first()
    assert invoice.total == sum(line.amount for line in invoice.lines.all())
    assert invoice.number == "INV-000001"


def test_every_page_benchmark_runs(tiny_dataset, aws):
    pages = bench_pages.pages(
        customer_pk=dataset.customer_id(1),
        staff_email=dataset.STAFF_EMAIL,
        customer_email=dataset.customer_email(1),
    )
    results = bench_pages.measure(pages, requests=2, warmup=1)
    assert [r["page"] for r in results] == [label for label, _, _ in pages]
    for r in results:
        assert r["queries"] > 0 and r["p95_ms"] >= r["p50_ms"] > 0


def test_page_query_counts_do_not_depend_on_the_customer(tiny_dataset, aws):
    """Customers 0 and 2 have different numbers of tag combinations and rows."""
    counts = []
    for n in (0, 2):
        pages = bench_pages.pages(
            customer_pk=dataset.customer_id(n),
            staff_email=dataset.STAFF_EMAIL,
            customer_email=dataset.customer_email(n),
        )
        counts.append([r["queries"] for r in bench_pages.measure(pages, requests=1, warmup=1)])
    assert counts[0] == counts[1]


def test_proxy_handler_benchmark_runs():
    rows = bench_proxy_rps.bench_handler(seconds=2, max_requests=10)
    calls = next(r for r in rows if "DynamoDB calls" in r["name"])
    assert float(calls["value"]) <= bench_proxy_rps.GOAL_DYNAMODB_CALLS


def test_proxy_overhead_benchmark_runs(monkeypatch):
    """The stand-in DynamoDB answers the calls the handler makes, with the same arguments."""
    monkeypatch.setattr(bench_proxy, "WARM_REQUESTS", 20)
    p50, p99 = bench_proxy.handler_overhead()
    assert 0 < p50 <= p99


def test_a_partial_run_keeps_the_other_benchmarks_rows(tmp_path, monkeypatch):
    results = tmp_path / "RESULTS.md"
    results.write_text(
        "# Benchmark results\n\nDate: 2026-11-01 10:00 UTC\n\n"
        "| benchmark | measure | value | unit | goal | met |\n|---|---|---|---|---|---|\n"
        "| bench_ingest | rows | 80,000 | rows/s | >= 20,000 rows/s | yes |\n"
        "| bench_proxy | calls | 9 | calls | <= 2 | **no** |\n"
    )
    (tmp_path / "bench_ingest.py").touch()
    (tmp_path / "bench_proxy.py").touch()
    monkeypatch.setattr(bench_run, "BENCH_DIR", tmp_path)
    monkeypatch.setattr(
        bench_run.importlib,
        "import_module",
        lambda name: type(
            "M",
            (),
            {
                "run": staticmethod(
                    lambda: [
                        {"name": "calls", "value": 2, "unit": "calls", "goal": "<= 2", "met": True}
                    ]
                )
            },
        ),
    )
    assert bench_run.main(["bench_proxy"]) == 0
    text = results.read_text()
    assert (
        "| bench_ingest | rows | 80,000 | rows/s | >= 20,000 rows/s | yes | 2026-11-01 10:00 UTC |"
        in text
    )
    assert "| bench_proxy | calls | 2 | calls | <= 2 | yes |" in text
    assert "| 9 |" not in text


def test_database_names_are_always_bench_ones(monkeypatch):
    monkeypatch.delenv("BENCH_PORTAL_DATABASE_URL", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgres://u@127.0.0.1:5432/production")
    assert dataset.database_url(1) == "postgres://u@127.0.0.1:5432/bench_portal"
    assert dataset.database_url(0.01).endswith("/bench_portal_s0_01")
    monkeypatch.setenv("BENCH_PORTAL_DATABASE_URL", "postgres://u@h/production")
    with pytest.raises(SystemExit):
        dataset.database_url(1)
