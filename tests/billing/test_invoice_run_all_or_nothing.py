"""A failure half-way through the invoice run leaves no drafts: the month is all or nothing."""

from datetime import date

import pytest
from django.db import DatabaseError

from billing import invoice_run as run_module
from billing.models import Invoice, InvoiceLine
from billing.pricing import PricingError
from billing.services import invoice_run, plan_assign
from customers.models import Customer

from .conftest import TWO_TIERS, established, written_around_the_rule

pytestmark = pytest.mark.django_db

OCTOBER = date(2026, 10, 1)
TODAY = date(2026, 11, 2)


@pytest.fixture
def customers(db):
    made = [
        Customer.objects.create(name=f"C{i}", contact_email=f"c{i}@example.com") for i in range(3)
    ]
    return sorted(established(*made), key=lambda c: c.pk)


def test_a_broken_plan_for_the_last_customer_writes_no_draft(
    customers, make_plan, price_book, add_usage, monkeypatch
):
    monkeypatch.setattr(run_module, "CHUNK", 1)  # the first two chunks would be written first
    for c in customers:
        add_usage(c, date(2026, 10, 5), requests=3, input_tokens=1000, output_tokens=500)
    broken = make_plan(kind="tiered", tiers=TWO_TIERS, name="Broken")
    plan_assign(customer=customers[-1], plan=broken, effective_from=date(2026, 9, 1))
    written_around_the_rule(broken, tiers=[{"up_to": 5, "unit_price": "1"}])
    with pytest.raises(PricingError, match="Broken"):
        invoice_run(period_start=OCTOBER, today=TODAY)
    assert not Invoice.objects.exists() and not InvoiceLine.objects.exists()


def test_a_failed_insert_half_way_writes_no_draft_and_a_rerun_completes(
    customers, price_book, add_usage, monkeypatch
):
    monkeypatch.setattr(run_module, "CHUNK", 1)
    real_insert = run_module._insert_chunk
    calls = []

    def failing_second_chunk(drafts):
        calls.append(drafts)
        if len(calls) == 2:
            raise DatabaseError("connection lost")
        return real_insert(drafts)

    monkeypatch.setattr(run_module, "_insert_chunk", failing_second_chunk)
    with pytest.raises(DatabaseError):
        invoice_run(period_start=OCTOBER, today=TODAY)
    assert not Invoice.objects.exists()

    monkeypatch.setattr(run_module, "_insert_chunk", real_insert)
    result = invoice_run(period_start=OCTOBER, today=TODAY)
    assert (result.created, result.skipped) == (3, 0)
    assert Invoice.objects.count() == 3
