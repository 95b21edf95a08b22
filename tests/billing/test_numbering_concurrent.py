"""Gapless numbering under concurrent issue: real threads, real row locks (PostgreSQL only)."""

import threading
from datetime import date
from decimal import Decimal as D

import pytest
from django.db import connection, connections

from billing.models import Invoice, InvoiceLine
from billing.services import invoice_issue, invoice_run
from customers.models import Customer

from .conftest import established

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL row locks"
)


@pytest.mark.django_db(transaction=True)
def test_concurrent_issue_gives_gapless_unique_numbers():
    drafts = []
    for i in range(24):
        customer = Customer.objects.create(name=f"C{i}", contact_email=f"c{i}@example.com")
        invoice = Invoice.objects.create(
            customer=customer, period_start=date(2026, 10, 1), period_end=date(2026, 10, 31)
        )
        InvoiceLine.objects.create(invoice=invoice, kind="manual", description="x", amount=D("1"))
        drafts.append(invoice)
    barrier = threading.Barrier(8)
    errors = []

    def worker(chunk):
        try:
            barrier.wait()
            for invoice in chunk:
                invoice_issue(invoice=invoice)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker, args=(drafts[i::8],)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    numbers = sorted(Invoice.objects.values_list("number", flat=True))
    assert numbers == [f"INV-{n:06d}" for n in range(1, 25)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_runs_never_duplicate():
    established(
        *(
            Customer.objects.create(name=f"C{i}", contact_email=f"c{i}@example.com")
            for i in range(30)
        )
    )
    barrier = threading.Barrier(4)
    errors = []

    def worker():
        try:
            barrier.wait()
            invoice_run(period_start=date(2026, 10, 1))
        except Exception as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert Invoice.objects.count() == 30
