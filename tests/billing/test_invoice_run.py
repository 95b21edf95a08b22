"""The monthly run: drafts for active customers, priced per day, idempotent."""

from datetime import UTC, date, datetime, time
from decimal import Decimal as D

import pytest

from billing.models import Invoice, InvoiceLine
from billing.pricing import PricingError
from billing.services import (
    InvoiceRunRefused,
    InvoiceStateError,
    invoice_draft_refresh,
    invoice_issue,
    invoice_line_add,
    invoice_run,
    plan_assign,
)
from billing.tasks import invoice_run_monthly
from customers.models import Customer
from usage.models import UsageDaily
from usage.services import usage_day_replace

from .conftest import OCTOBER


@pytest.fixture
def october_usage(customer, other_customer, price_book, add_usage):
    # Customer: model A before and after the mid-month price change, model B once.
    add_usage(customer, date(2026, 10, 3), input_tokens=100_000, output_tokens=10_000)
    add_usage(customer, date(2026, 10, 20), input_tokens=100_000, output_tokens=10_000)
    add_usage(
        customer,
        date(2026, 10, 21),
        model_id="test.model-b",
        requests=600,
        input_tokens=40_000,
        output_tokens=4_000,
        application_id="app-1",
    )
    add_usage(
        customer,
        date(2026, 10, 21),
        model_id="test.model-b",
        requests=0,
        input_tokens=0,
        output_tokens=0,
        application_id="app-2",
    )
    add_usage(customer, date(2026, 11, 1), input_tokens=999_999)  # next month: not billed
    add_usage(other_customer, date(2026, 10, 5), requests=10, input_tokens=1000)


def test_run_creates_one_draft_per_active_customer(october_usage, customer, other_customer):
    closed = Customer.objects.create(
        name="Closed Co", contact_email="c@closed.example", status="closed"
    )
    result = invoice_run(period_start=OCTOBER)
    assert result.created == 2
    invoice = Invoice.objects.get(customer=customer)
    assert invoice.status == Invoice.Status.DRAFT
    assert invoice.number is None
    assert (invoice.period_start, invoice.period_end) == (date(2026, 10, 1), date(2026, 10, 31))
    # Model A old price: 100 x 0.003 + 10 x 0.015 = 0.45; new price: 0.225 -> 0.23 (half-up);
    # Model B: 40 x 0.00025 + 4 x 0.00125 + 600 x 0.001 = 0.615 -> 0.62. Subtotal 1.30.
    assert [line.amount for line in invoice.lines.all()] == [D("0.45"), D("0.23"), D("0.62")]
    assert invoice.subtotal == D("1.30")
    assert invoice.total == D("1.30")
    assert not Invoice.objects.filter(customer=closed).exists()


def test_run_is_idempotent(october_usage):
    invoice_run(period_start=OCTOBER)
    lines = InvoiceLine.objects.count()
    again = invoice_run(period_start=date(2026, 10, 17))  # any day of the month
    assert again.created == 0 and again.skipped == 2
    assert Invoice.objects.count() == 2
    assert InvoiceLine.objects.count() == lines


def test_a_draft_is_re_rated_after_a_re_ingest(october_usage, customer, settings):
    settings.BILLING_TAX_RATE = "0.2"
    invoice_run(period_start=OCTOBER)
    draft = Invoice.objects.get(customer=customer)
    invoice_line_add(invoice=draft, description="Onboarding", amount=D("10"))
    # A staff re-ingest of Oct 20 finds late events: model A doubles that day.
    usage_day_replace(
        day=date(2026, 10, 20),
        engine="duckdb",
        rows=[(str(customer.pk), "test.model-a", "", "", "", 2, 200_000, 20_000, 0, 0)],
    )
    assert invoice_run(period_start=OCTOBER).created == 0  # the run never touches a draft

    draft = invoice_draft_refresh(invoice=draft)

    # Model A after the price change: 200 x 0.0015 + 20 x 0.0075 = 0.45 (was 0.23).
    lines = [(line.position, line.kind, line.amount) for line in draft.lines.all()]
    assert lines == [
        (1, "usage", D("0.45")),
        (2, "usage", D("0.45")),
        (3, "usage", D("0.62")),
        (4, "manual", D("10.00")),
    ]
    assert (draft.subtotal, draft.tax, draft.total) == (D("11.52"), D("2.30"), D("13.82"))
    issued = invoice_issue(invoice=draft)
    with pytest.raises(InvoiceStateError):
        invoice_draft_refresh(invoice=issued)


def test_customer_without_usage_gets_an_empty_draft(customer, price_book):
    invoice_run(period_start=OCTOBER)
    invoice = Invoice.objects.get(customer=customer)
    assert invoice.subtotal == 0 and invoice.lines.count() == 0


def test_plan_in_force_at_period_start_is_used(october_usage, customer, make_plan):
    plan = make_plan(
        kind="subscription",
        monthly_fee=D("49"),
        included_units=500,
        overage_unit_price=D("0.01"),
        name="Team",
    )
    plan_assign(customer=customer, plan=plan, effective_from=date(2026, 9, 1))
    invoice_run(period_start=OCTOBER)
    invoice = Invoice.objects.get(customer=customer)
    # 602 requests, 500 included: 49 + 102 x 0.01 = 50.02
    assert invoice.plan_name == "Team"
    assert invoice.subtotal == D("50.02")


def test_tax_is_applied(october_usage, customer, settings):
    settings.BILLING_TAX_RATE = "0.2"
    invoice_run(period_start=OCTOBER)
    invoice = Invoice.objects.get(customer=customer)
    assert (invoice.subtotal, invoice.tax, invoice.total) == (D("1.30"), D("0.26"), D("1.56"))


def test_monthly_task_is_idempotent(october_usage):
    result = invoice_run_monthly.delay("2026-10-01").get()
    assert result["created"] == 2
    assert invoice_run_monthly.delay("2026-10-01").get()["created"] == 0


def test_a_month_that_has_not_ended_is_refused(customer):
    # A mid-month draft would hold part of the usage, and the run on the 1st would skip it.
    with pytest.raises(InvoiceRunRefused, match="October 2026 has not ended"):
        invoice_run(period_start=OCTOBER, today=date(2026, 10, 31))
    assert not Invoice.objects.exists()
    assert invoice_run(period_start=OCTOBER, today=date(2026, 11, 1)).created == 1


def test_beat_schedules_the_run_on_the_first():
    from portal.celery import app

    entry = app.conf.beat_schedule["billing-monthly-invoice-run"]
    assert entry["task"] == "billing.tasks.invoice_run_monthly"
    assert entry["schedule"].day_of_month == {1}


def test_suspended_customer_with_usage_is_still_billed(price_book, add_usage):
    suspended = Customer.objects.create(
        name="Suspended Co", contact_email="s@susp.example", status="suspended"
    )
    idle = Customer.objects.create(
        name="Idle Co", contact_email="i@idle.example", status="suspended"
    )
    add_usage(suspended, date(2026, 10, 2), input_tokens=1000)
    invoice_run(period_start=OCTOBER)
    assert Invoice.objects.filter(customer=suspended).count() == 1
    assert not Invoice.objects.filter(customer=idle).exists()


def test_cross_region_profile_is_priced_as_its_model(customer, price_book, add_usage):
    add_usage(customer, date(2026, 10, 3), model_id="us.test.model-a", input_tokens=100_000)
    add_usage(customer, date(2026, 10, 20), model_id="us.test.model-a", input_tokens=100_000)
    invoice_run(period_start=OCTOBER)
    lines = list(Invoice.objects.get(customer=customer).lines.all())
    # 100 x 0.003 = 0.30 before the price change, 100 x 0.0015 = 0.15 after
    assert [line.amount for line in lines] == [D("0.30"), D("0.15")]
    assert lines[0].description.startswith("Model A (us profile)")
    assert lines[0].model_id == "us.test.model-a"


# --- Who gets a draft ------------------------------------------------------------------------


def test_no_draft_for_a_month_that_ended_before_the_customer_existed(
    customer, price_book, add_usage
):
    def created(name, on):
        made = Customer.objects.create(name=name, contact_email=f"{name[:3]}@new.example")
        Customer.objects.filter(pk=made.pk).update(
            created_at=datetime.combine(on, time(9), tzinfo=UTC)
        )
        return made

    november = created("November Co", date(2026, 11, 3))
    mid_october = created("Mid October Co", date(2026, 10, 20))
    last_day = created("Last Day Co", date(2026, 10, 31))
    # Usage in the month is billed whatever the creation date says.
    used = created("Backfilled Co", date(2026, 11, 3))
    add_usage(used, date(2026, 10, 30), input_tokens=100_000)
    result = invoice_run(period_start=OCTOBER, today=date(2026, 11, 4))
    billed = set(Invoice.objects.values_list("customer_id", flat=True))
    assert billed == {customer.pk, mid_october.pk, last_day.pk, used.pk}
    assert november.pk not in billed  # it was a 0.00 draft for October
    assert result.created == 4


# --- Usage that cannot be billed stops the run, naming the customer ------------------------


def test_negative_usage_is_refused_naming_the_customer(customer, other_customer, price_book):
    # The import quarantines negative counts (usage/quarantine.py); this row is written
    # around it, as a script or SQL could.
    UsageDaily.objects.create(
        customer=other_customer, day=date(2026, 10, 4), model_id="test.model-a", requests=1,
        input_tokens=-50_000,
    )  # fmt: skip
    with pytest.raises(PricingError) as caught:
        invoice_run(period_start=OCTOBER)
    message = str(caught.value)
    assert f"Cannot bill customer '{other_customer.name}' ({other_customer.pk})" in message
    assert "plan 'Pay as you go'" in message and "input_tokens -50,000" in message
    assert not Invoice.objects.exists()  # it was a draft with a -0.15 line


def test_rating_never_produces_a_negative_line():
    from billing.pricing import TokenPrice, TokenUsage
    from billing.rating import PlanTerms, UsageRow, rate_usage

    prices = {("m", None): TokenPrice(D("0.003"), D("0.015"))}
    for kind in ("per_token", "per_request", "subscription"):
        with pytest.raises(PricingError, match="negative count"):
            rate_usage(
                [UsageRow("m", None, TokenUsage(requests=-3, output_tokens=10))],
                terms=PlanTerms(kind=kind, per_request_price=D("0.01")),
                prices=prices,
            )


def test_a_draft_refresh_refuses_negative_usage_too(customer, price_book, add_usage):
    add_usage(customer, date(2026, 10, 3), input_tokens=1000)
    invoice_run(period_start=OCTOBER)
    UsageDaily.objects.filter(customer=customer).update(output_tokens=-1)
    with pytest.raises(PricingError, match=f"customer '{customer.name}'.*negative count"):
        invoice_draft_refresh(invoice=Invoice.objects.get(customer=customer))


def test_an_amount_too_large_for_its_column_fails_the_run_cleanly(
    customer, other_customer, price_book, add_usage
):
    # 10^17 output tokens of model A at 0.015 per 1,000 = 1,500,000,000,000.00: 13 digits before
    # the point, where the amount column (14 digits, 2 decimal places) holds 12. PostgreSQL
    # refused the insert with a bare "numeric field overflow"; SQLite stored a draft that could
    # not be read back.
    add_usage(customer, date(2026, 10, 3), output_tokens=10**17)
    add_usage(other_customer, date(2026, 10, 3), output_tokens=1000)
    with pytest.raises(PricingError) as caught:
        invoice_run(period_start=OCTOBER)
    message = str(caught.value)
    assert f"Cannot bill customer '{customer.name}' ({customer.pk})" in message
    assert "amount 1500000000000.00" in message and "12 digits before the decimal point" in message
    assert list(Invoice.objects.all()) == [] and not InvoiceLine.objects.exists()


def test_the_largest_amount_that_fits_is_written_and_read_back(customer, price_book, add_usage):
    # 66,666,666,666,666,000 output tokens x 0.015 / 1,000 = 999,999,999,999.99, the largest
    # value of the amount column (the quantity, 17 digits, fits its column too).
    add_usage(customer, date(2026, 10, 3), output_tokens=66_666_666_666_666_000)
    invoice_run(period_start=OCTOBER)
    invoice = Invoice.objects.get(customer=customer)
    assert invoice.subtotal == D("999999999999.99")
    assert invoice.lines.get().amount == D("999999999999.99")
