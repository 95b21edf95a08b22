import time

import pytest
from django.core import mail

from customers import services, tasks
from customers.models import SyncOutbox
from proxy import contract

pytestmark = pytest.mark.django_db


def test_sweeper_delivers_rows_that_were_never_queued(ddb, customer):
    SyncOutbox.objects.create(
        customer=customer, kind="customer", version=1, payload=_payload(customer)
    )
    assert tasks.sweep_outbox.delay().get() == 1
    assert contract.get_customer(ddb, str(customer.pk)).name == customer.name


def test_reconcile_task_reports(ddb, customer):
    summary = tasks.reconcile_dynamodb.delay().get()
    assert "repaired 1 items" in summary


def test_expiry_warning_task(ddb, customer):
    assert tasks.send_token_expiry_warnings.delay().get() == 0
    assert mail.outbox == []


def test_broker_down_leaves_the_row_for_the_sweeper(ddb, customer, monkeypatch):
    def broken(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.deliver_customer_outbox, "delay", broken)
    services.customer_update_limits(customer=customer, rpm_limit=9)  # committed all the same
    assert SyncOutbox.objects.filter(delivered_at__isnull=True).count() == 1
    # A suspension does not wait for the broker: it is written to DynamoDB at once.
    services.customer_suspend(customer=customer)
    assert contract.get_customer(ddb, str(customer.pk)).status == "suspended"
    monkeypatch.undo()
    tasks.sweep_outbox.delay()
    assert not SyncOutbox.objects.filter(delivered_at__isnull=True).exists()
    assert contract.get_customer(ddb, str(customer.pk)).status == "suspended"


@pytest.mark.worker
def test_real_worker_delivers_the_outbox(ddb, customer, celery_worker_on_broker):
    services.customer_update_limits(customer=customer, rpm_limit=42)
    deadline = time.monotonic() + 20
    while SyncOutbox.objects.filter(delivered_at__isnull=True).exists():
        assert time.monotonic() < deadline, "the worker did not deliver the outbox"
        time.sleep(0.1)
    assert contract.get_customer(ddb, str(customer.pk)).rpm_limit == 42


def _payload(customer):
    from customers.sync import customer_payload

    return customer_payload(customer)
