"""Prepaid credit at the edge: the CREDIT item's credit granted, computed and pushed by billing
(billing/credit_sync.py), against moto's DynamoDB."""

import logging
import threading
from datetime import date, timedelta
from decimal import Decimal as D

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from django.db import connection, connections
from django.utils import timezone

from billing import credit_sync
from billing.credit_sync import credit_push, granted_micros
from billing.models import BillingProfile, CreditGrant, CreditPeriodSpend, Invoice
from billing.pricing import PricingError
from billing.selectors import credit_balance
from billing.services import (
    credit_grant,
    credit_note_issue,
    invoice_issue,
    invoice_line_add,
    invoice_void,
)
from core.aws import aws_client
from customers.models import Customer
from proxy import contract

OCTOBER = date(2026, 10, 1)
ISSUE_DAY = date(2026, 11, 2)
M = 1_000_000  # micro-units per unit of the currency


@pytest.fixture
def dynamodb(aws):
    return aws_client("dynamodb")


def make_prepaid(*customers):
    Customer.objects.filter(pk__in=[c.pk for c in customers]).update(prepaid=True)
    for c in customers:
        c.prepaid = True
    return customers[0]


@pytest.fixture
def prepaid(customer):
    return make_prepaid(customer)


_get_credit = contract.get_credit  # the tests read with it while some make the portal's fail


def item(dynamodb, customer) -> contract.CreditState:
    return _get_credit(dynamodb, str(customer.pk))


def proxy_spends(dynamodb, customer, micros: int, month: str = "2026-10") -> None:
    """What the proxy does for each priced call of a prepaid customer: ADD its cost."""
    dynamodb.update_item(
        TableName=contract.table_names().usage_counters,
        Key={
            contract.COUNTER_PK: {"S": contract.counter_pk(str(customer.pk))},
            contract.COUNTER_SK: {"S": contract.CREDIT_SK},
        },
        UpdateExpression="ADD #u :m, #month :m",
        ExpressionAttributeNames={"#u": contract.CREDIT_USED, "#month": f"used#{month}"},
        ExpressionAttributeValues={":m": {"N": str(micros)}},
    )


def draft(customer, amount: str, period_start=OCTOBER) -> Invoice:
    invoice = Invoice.objects.create(
        customer=customer,
        period_start=period_start,
        period_end=period_start.replace(day=28),
    )
    invoice_line_add(invoice=invoice, description="Usage", amount=D(amount))
    return invoice


@pytest.fixture
def committed(django_capture_on_commit_callbacks):
    """Run a change and what it asks for on commit (the push)."""

    def run(action, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return action(*args, **kwargs)

    return run


# --- the figure -----------------------------------------------------------------------------


def test_top_up_pushes_the_wallet_in_micro_units_exactly(prepaid, dynamodb, committed):
    committed(credit_grant, customer=prepaid, amount=D("12.34"))
    committed(credit_grant, customer=prepaid, amount=D("0.01"), kind="promotional")
    state = item(dynamodb, prepaid)
    assert state.granted_micros == 12_350_000 == granted_micros(prepaid.pk)
    assert state.available_micros == 12_350_000
    assert state.version == 2 == BillingProfile.objects.get(customer=prepaid).credit_version


def test_invoicing_moves_the_months_spend_from_the_proxy_to_the_wallet(
    prepaid, dynamodb, committed
):
    committed(credit_grant, customer=prepaid, amount=D("100.00"))
    proxy_spends(dynamodb, prepaid, 30_500_000)  # October's calls at list price
    assert item(dynamodb, prepaid).available_micros == 69_500_000

    # The invoice charges the month on the customer's plan (here 40.00), paid from the wallet.
    invoice = committed(invoice_issue, invoice=draft(prepaid, "40.00"), today=ISSUE_DAY)
    assert invoice.credits_applied == D("40.00")
    assert credit_balance(prepaid.pk, ISSUE_DAY) == D("60.00")
    spend = CreditPeriodSpend.objects.get(customer=prepaid)
    assert (spend.period_start, spend.used_micros, spend.invoice_id) == (
        OCTOBER,
        30_500_000,
        invoice.pk,
    )
    state = item(dynamodb, prepaid)
    assert state.granted_micros == 60_000_000 + 30_500_000
    assert state.available_micros == 60_000_000  # the wallet: October is paid

    # November's calls count against it at once.
    proxy_spends(dynamodb, prepaid, 5_000_000, month="2026-11")
    assert item(dynamodb, prepaid).available_micros == 55_000_000


def test_void_gives_the_wallet_back_and_keeps_the_month_recorded(prepaid, dynamodb, committed):
    committed(credit_grant, customer=prepaid, amount=D("100.00"))
    proxy_spends(dynamodb, prepaid, 30_500_000)
    invoice = committed(invoice_issue, invoice=draft(prepaid, "40.00"), today=ISSUE_DAY)
    committed(invoice_void, invoice=invoice, reason="Wrong plan")
    assert CreditPeriodSpend.objects.filter(customer=prepaid).count() == 1
    state = item(dynamodb, prepaid)
    assert state.granted_micros == 100_000_000 + 30_500_000
    assert state.available_micros == 100_000_000  # the void forgave October


def test_credit_note_returns_its_credit_share(prepaid, dynamodb, committed):
    committed(credit_grant, customer=prepaid, amount=D("100.00"))
    proxy_spends(dynamodb, prepaid, 30_500_000)
    invoice = committed(invoice_issue, invoice=draft(prepaid, "40.00"), today=ISSUE_DAY)
    committed(credit_note_issue, invoice=invoice, amount=D("10.00"), reason="Outage")
    assert credit_balance(prepaid.pk) == D("70.00")
    state = item(dynamodb, prepaid)
    assert state.granted_micros == 70_000_000 + 30_500_000
    assert state.available_micros == 70_000_000


def test_credit_note_paid_in_money_becomes_credit_at_the_proxy(prepaid, dynamodb, committed):
    invoice = committed(invoice_issue, invoice=draft(prepaid, "40.00"), today=ISSUE_DAY)
    assert invoice.credits_applied == 0
    committed(credit_note_issue, invoice=invoice, amount=D("15.00"), reason="Outage")
    assert item(dynamodb, prepaid).available_micros == 15_000_000


def test_expired_grant_leaves_the_figure_at_the_next_reconciliation(prepaid, dynamodb, committed):
    from billing.credit_reconcile import credit_reconcile

    today = timezone.localdate()
    committed(credit_grant, customer=prepaid, amount=D("10.00"))
    promo = committed(
        credit_grant, customer=prepaid, amount=D("5.00"), kind="promotional", expires_on=today
    )
    assert item(dynamodb, prepaid).granted_micros == 15_000_000
    report = credit_reconcile(client=dynamodb)  # still usable today: nothing to do
    assert (report.checked, report.in_step, report.pushed) == (1, 1, 0)

    # The day after its expiry the grant no longer counts; no event says so: the reconciler.
    report = credit_reconcile(client=dynamodb, on_day=today + timedelta(days=1))
    assert report.pushed == 1
    assert item(dynamodb, prepaid).granted_micros == 10_000_000
    CreditGrant.objects.filter(pk=promo.pk).update(expires_on=today - timedelta(days=1))
    assert granted_micros(prepaid.pk) == 10_000_000
    assert credit_reconcile(client=dynamodb).in_step == 1


def test_a_months_spend_is_recorded_once(prepaid, dynamodb, committed):
    committed(credit_grant, customer=prepaid, amount=D("100.00"))
    proxy_spends(dynamodb, prepaid, 30_500_000)
    first = committed(invoice_issue, invoice=draft(prepaid, "40.00"), today=ISSUE_DAY)
    reissue = committed(invoice_void, invoice=first, reason="Wrong plan", reissue=True)
    proxy_spends(dynamodb, prepaid, 1_000_000)  # a late settle of October: not recorded again
    committed(invoice_issue, invoice=reissue, today=ISSUE_DAY)
    spends = list(CreditPeriodSpend.objects.filter(customer=prepaid))
    assert [(s.period_start, s.used_micros, s.invoice_id) for s in spends] == [
        (OCTOBER, 30_500_000, first.pk)
    ]
    assert credit_balance(prepaid.pk) == D("60.00")
    assert item(dynamodb, prepaid).granted_micros == 60_000_000 + 30_500_000


def test_customer_that_was_never_prepaid_costs_no_read_and_no_push(
    customer, committed, monkeypatch
):
    def refuse(*args, **kwargs):
        raise AssertionError("DynamoDB was called for a customer that is not prepaid")

    monkeypatch.setattr(contract, "get_credit", refuse)
    monkeypatch.setattr(contract, "put_credit", refuse)
    committed(credit_grant, customer=customer, amount=D("50.00"))
    committed(invoice_issue, invoice=draft(customer, "20.00"), today=ISSUE_DAY)
    assert not CreditPeriodSpend.objects.exists()
    assert BillingProfile.objects.get(customer=customer).credit_version == 0


def test_switching_prepaid_on_pushes_the_credit(customer, dynamodb, committed):
    committed(credit_grant, customer=customer, amount=D("25.00"))
    assert item(dynamodb, customer).version == 0  # no CREDIT item while not prepaid

    def switch_on():
        customer.prepaid = True
        customer.save()

    committed(switch_on)
    state = item(dynamodb, customer)
    assert (state.granted_micros, state.version) == (25_000_000, 1)
    committed(customer.save)  # saved again, still prepaid: no new push
    assert item(dynamodb, customer).version == 1


def test_switching_prepaid_on_through_the_customers_service(customer, dynamodb, committed):
    from customers.services import customer_update_limits

    committed(credit_grant, customer=customer, amount=D("7.00"))
    committed(customer_update_limits, customer=customer, prepaid=True)
    assert item(dynamodb, customer).granted_micros == 7_000_000


# --- versions -------------------------------------------------------------------------------


def test_versions_only_grow_and_a_stale_push_changes_nothing(
    prepaid, dynamodb, committed, django_capture_on_commit_callbacks
):
    committed(credit_grant, customer=prepaid, amount=D("10.00"))
    with django_capture_on_commit_callbacks() as late:  # computed, not yet sent
        stale = credit_push(customer_id=prepaid.pk, client=dynamodb)
    committed(credit_grant, customer=prepaid, amount=D("5.00"))  # pushed first, newer
    assert item(dynamodb, prepaid).version == stale.version + 1
    for callback in late:  # the older push arrives last
        callback()
    assert stale.landed is False
    state = item(dynamodb, prepaid)
    assert (state.granted_micros, state.version) == (15_000_000, 3)
    assert not contract.put_credit(dynamodb, str(prepaid.pk), 1, 3)  # same version: refused
    assert not contract.put_credit(dynamodb, str(prepaid.pk), 1, 2)
    assert item(dynamodb, prepaid).granted_micros == 15_000_000
    versions = [credit_push(customer_id=prepaid.pk, client=dynamodb).version for _ in range(3)]
    assert versions == [4, 5, 6]


def test_push_leaves_the_proxys_spend_alone(prepaid, dynamodb, committed):
    proxy_spends(dynamodb, prepaid, 2_000_000, month="2026-11")
    committed(credit_grant, customer=prepaid, amount=D("3.00"))
    state = item(dynamodb, prepaid)
    assert (state.used_micros, state.used_by_month) == (2_000_000, {"2026-11": 2_000_000})
    assert state.available_micros == 1_000_000


# --- failures and the reconciler ------------------------------------------------------------


def test_dynamodb_down_during_a_top_up_loses_nothing_and_the_reconciler_repairs(
    prepaid, dynamodb, committed, monkeypatch, caplog
):
    from billing.credit_reconcile import credit_reconcile

    caplog.set_level(logging.WARNING, logger="billing.credit_sync")
    real_put = contract.put_credit

    def unreachable(*args, **kwargs):
        raise EndpointConnectionError(endpoint_url="https://dynamodb.example")

    monkeypatch.setattr(contract, "put_credit", unreachable)
    grant = committed(credit_grant, customer=prepaid, amount=D("42.42"))
    assert CreditGrant.objects.filter(pk=grant.pk).exists()
    assert credit_balance(prepaid.pk) == D("42.42")
    assert item(dynamodb, prepaid).version == 0  # not at the proxy
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert "EndpointConnectionError" in warning and str(prepaid.pk) in warning
    assert "42" not in warning.replace(str(prepaid.pk), "")  # no figure in the log

    monkeypatch.setattr(contract, "put_credit", real_put)
    report = credit_reconcile(client=dynamodb)
    assert (report.pushed, report.failed) == (1, 0)
    state = item(dynamodb, prepaid)
    assert state.granted_micros == 42_420_000
    assert state.version == BillingProfile.objects.get(customer=prepaid).credit_version == 2
    assert credit_reconcile(client=dynamodb).pushed == 0  # in step now


def test_reconciler_goes_past_a_customer_that_fails(
    customer, other_customer, dynamodb, committed, monkeypatch
):
    from billing import credit_reconcile as module

    make_prepaid(customer, other_customer)
    real_take = module.credit_figure_take

    def take(*, customer_id, **kwargs):
        if customer_id == customer.pk:
            raise RuntimeError("broken row")
        return real_take(customer_id=customer_id, **kwargs)

    monkeypatch.setattr(module, "credit_figure_take", take)
    committed(credit_grant, customer=other_customer, amount=D("1.00"))
    report = module.credit_reconcile(client=dynamodb)
    assert (report.checked, report.failed, report.pushed + report.in_step) == (2, 1, 1)
    assert "broken row" in report.errors[0]
    assert item(dynamodb, other_customer).granted_micros == 1_000_000


def test_reconciler_records_a_month_the_issue_could_not_read(
    prepaid, dynamodb, committed, monkeypatch
):
    from billing.credit_reconcile import credit_reconcile

    committed(credit_grant, customer=prepaid, amount=D("100.00"))
    proxy_spends(dynamodb, prepaid, 30_500_000)
    real_get = contract.get_credit

    def throttled(*args, **kwargs):
        raise ClientError({"Error": {"Code": "ThrottlingException"}}, "GetItem")

    monkeypatch.setattr(contract, "get_credit", throttled)
    committed(invoice_issue, invoice=draft(prepaid, "40.00"), today=ISSUE_DAY)
    assert not CreditPeriodSpend.objects.exists()  # the issue went ahead
    # Until repaired the proxy's figure is low (October counted twice), never high.
    assert item(dynamodb, prepaid).available_micros == 60_000_000 - 30_500_000

    monkeypatch.setattr(contract, "get_credit", real_get)
    report = credit_reconcile(client=dynamodb)
    assert (report.periods_recorded, report.pushed) == (1, 1)
    assert CreditPeriodSpend.objects.get(customer=prepaid).used_micros == 30_500_000
    assert item(dynamodb, prepaid).available_micros == 60_000_000


def test_reconciler_goes_above_a_version_ahead_of_the_portal(prepaid, dynamodb, committed):
    """A database restored from an older copy: the item's version is ahead."""
    from billing.credit_reconcile import credit_reconcile

    committed(credit_grant, customer=prepaid, amount=D("9.00"))
    assert contract.put_credit(dynamodb, str(prepaid.pk), 123_000_000, 50)
    report = credit_reconcile(client=dynamodb)
    assert report.pushed == 1
    state = item(dynamodb, prepaid)
    assert (state.granted_micros, state.version) == (9_000_000, 51)
    assert BillingProfile.objects.get(customer=prepaid).credit_version == 51


class CountingClient:
    """The DynamoDB client, counting the keys of each BatchGetItem."""

    def __init__(self, client):
        self.client = client
        self.batches = []

    def batch_get_item(self, **kwargs):
        self.batches.append(len(next(iter(kwargs["RequestItems"].values()))["Keys"]))
        return self.client.batch_get_item(**kwargs)

    def __getattr__(self, name):
        return getattr(self.client, name)


def test_reconciler_reads_in_batches(db, dynamodb, committed):
    from billing.credit_reconcile import credit_reconcile

    customers = [
        Customer.objects.create(name=f"Prepaid {n}", contact_email=f"p{n}@example.com")
        for n in range(5)
    ]
    make_prepaid(*customers)
    client = CountingClient(dynamodb)
    report = credit_reconcile(client=client, batch=2)
    assert client.batches == [2, 2, 1]  # one read per batch, not one per customer
    assert (report.checked, report.pushed, report.failed) == (5, 5, 0)
    assert {item(dynamodb, c).version for c in customers} == {1}
    client.batches.clear()
    assert credit_reconcile(client=client).in_step == 5
    assert client.batches == [5]


def test_reconciler_task_is_on_beat_every_minute():
    from portal.celery import app

    entry = app.conf.beat_schedule["billing-credit-reconcile"]
    assert entry["task"] == "billing.tasks.credit_reconcile"
    assert entry["schedule"] == 60.0


def test_reconciler_task_runs(prepaid, dynamodb, committed):
    from billing.tasks import credit_reconcile

    summary = credit_reconcile.delay().get()
    assert (summary["checked"], summary["pushed"], summary["failed"]) == (1, 1, 0)


# --- hostile values -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "amount", ["NaN", "sNaN", "Infinity", "-Infinity", "-5.00", "0", "0.001", "1e12", "1E+400"]
)
def test_hostile_grant_amounts_are_refused_and_push_nothing(prepaid, dynamodb, committed, amount):
    with pytest.raises(PricingError):
        committed(credit_grant, customer=prepaid, amount=amount)
    assert not CreditGrant.objects.exists()
    assert item(dynamodb, prepaid).version == 0


def test_float_amount_is_refused(prepaid, committed):
    with pytest.raises(PricingError):
        committed(credit_grant, customer=prepaid, amount=1.5)


def test_largest_grant_is_exact_in_micro_units(prepaid, dynamodb, committed):
    largest = D("999999999999.99")
    committed(credit_grant, customer=prepaid, amount=largest)
    committed(credit_grant, customer=prepaid, amount=largest)
    assert item(dynamodb, prepaid).granted_micros == 2 * 999_999_999_999_990_000


@pytest.mark.parametrize("value", ["-5", "1.5", str(10**30)])
def test_hostile_month_spend_is_not_recorded(prepaid, dynamodb, committed, value):
    committed(credit_grant, customer=prepaid, amount=D("100.00"))
    dynamodb.update_item(
        TableName=contract.table_names().usage_counters,
        Key={
            contract.COUNTER_PK: {"S": contract.counter_pk(str(prepaid.pk))},
            contract.COUNTER_SK: {"S": contract.CREDIT_SK},
        },
        UpdateExpression="SET #m = :v",
        ExpressionAttributeNames={"#m": "used#2026-10"},
        ExpressionAttributeValues={":v": {"N": value}},
    )
    invoice = committed(invoice_issue, invoice=draft(prepaid, "40.00"), today=ISSUE_DAY)
    assert invoice.status == Invoice.Status.PAID
    assert not CreditPeriodSpend.objects.exists()


def test_to_micros_is_exact_and_refuses_what_is_not_money():
    assert credit_sync.to_micros(D("0.01")) == 10_000
    assert credit_sync.to_micros(D("123456789012.34")) == 123_456_789_012_340_000
    for bad in (D("NaN"), D("Infinity"), D("0.0000001"), 1.5):
        with pytest.raises(ValueError):
            credit_sync.to_micros(bad)
    assert credit_sync.from_micros(12_340_000) == D("12.34")


# --- low balance ----------------------------------------------------------------------------


def test_low_balance_alert_of_a_prepaid_customer_is_on_the_credit_available_now(
    prepaid, dynamodb, committed, mailoutbox
):
    from billing.credit_reconcile import credit_reconcile

    committed(credit_grant, customer=prepaid, amount=D("20.00"))  # threshold 10.00
    committed(credit_reconcile, client=dynamodb)
    assert not mailoutbox
    proxy_spends(dynamodb, prepaid, 14_999_999, month="2026-11")  # wallet 20.00, 5.000001 left
    report = committed(credit_reconcile, client=dynamodb)
    assert report.alerts == 1
    assert len(mailoutbox) == 1
    assert "available now is low: 5.00 USD" in mailoutbox[0].subject
    assert committed(credit_reconcile, client=dynamodb).alerts == 0  # once
    assert len(mailoutbox) == 1
    committed(credit_grant, customer=prepaid, amount=D("50.00"))  # a top-up re-arms it
    assert not BillingProfile.objects.get(customer=prepaid).low_balance_notified


def test_issue_does_not_alert_a_prepaid_customer_on_the_wallet(
    prepaid, dynamodb, committed, mailoutbox
):
    committed(credit_grant, customer=prepaid, amount=D("20.00"))
    committed(invoice_issue, invoice=draft(prepaid, "15.00"), today=ISSUE_DAY)
    subjects = [m.subject for m in mailoutbox]
    assert not [s for s in subjects if "low" in s]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL row locks")
@pytest.mark.django_db(transaction=True)
def test_concurrent_top_ups_leave_the_newest_figure_at_the_proxy(aws):
    """Eight threads top up at once, each pushing after its commit: whatever order the puts
    arrive in, the figure that stays is the one computed last, with every top-up in it."""
    from portal import emulator

    emulator.make_dynamodb_atomic()  # DynamoDB applies each request atomically; moto does not
    dynamodb = aws_client("dynamodb")
    customer = Customer.objects.create(name="Busy", contact_email="busy@example.com")
    make_prepaid(customer)
    barrier = threading.Barrier(8)
    errors = []

    def top_up():
        try:
            barrier.wait()
            for _ in range(3):
                credit_grant(customer=customer, amount=D("1.00"))
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=top_up) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    state = item(dynamodb, customer)
    assert state.granted_micros == 24 * M
    assert state.version == 24 == BillingProfile.objects.get(customer=customer).credit_version
