"""A change that takes access away reaches DynamoDB from the process that made it, without a
worker: revoked tokens, suspended and closed customers, from every place they can be made."""

from datetime import timedelta
from io import StringIO

import boto3
import pytest
from botocore.exceptions import EndpointConnectionError
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from customers import services, sync, tasks
from customers.models import Customer, SyncOutbox, Token
from proxy import contract

from .conftest import remote_token

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def no_worker(monkeypatch):
    """The broker takes the delivery tasks, but no worker ever runs them."""
    queued = []
    monkeypatch.setattr(
        tasks.deliver_customer_outbox, "delay", lambda *args: queued.append((args[0], None))
    )
    monkeypatch.setattr(
        tasks.deliver_customer_outbox,
        "apply_async",
        lambda args=(), countdown=None, **kw: queued.append((args[0], countdown)),
    )
    return queued


@pytest.fixture
def live_token(ddb, synced_customer):
    """A token the proxy accepts (customer and token delivered while a worker still ran)."""
    issued = services.token_create(customer=synced_customer, label="backend")
    assert remote_token(ddb, issued.plaintext).status == "active"
    return issued


def _pending():
    return SyncOutbox.objects.filter(delivered_at__isnull=True)


def _staff(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _api(user) -> APIClient:
    client = APIClient()
    client.default_format = "json"
    client.force_login(user)
    return client


def _command(*args):
    call_command("customers", *args, stdout=StringIO())


# Each way a token is revoked or a customer stops being active: (what it stops, how).
PATHS = {
    "staff page: revoke a token": (
        "token",
        lambda c, t, staff, user: _staff(staff).post(
            reverse("staff:token_revoke", args=[c.pk, t.pk])
        ),
    ),
    "customer page: revoke a token": (
        "token",
        lambda c, t, staff, user: _staff(user).post(
            reverse("customer:customer_token_revoke", args=[t.pk]), {"confirm": "1"}
        ),
    ),
    "staff page: suspend": (
        "suspended",
        lambda c, t, staff, user: _staff(staff).post(
            reverse("staff:customer_status", args=[c.pk]), {"action": "suspend", "confirm": "1"}
        ),
    ),
    "staff page: close": (
        "closed",
        lambda c, t, staff, user: _staff(staff).post(
            reverse("staff:customer_status", args=[c.pk]), {"action": "close", "confirm": "1"}
        ),
    ),
    "staff page: bulk suspend": (
        "suspended",
        lambda c, t, staff, user: _staff(staff).post(
            reverse("staff:customer_bulk"),
            {"action": "suspend", "ids": [str(c.pk)], "confirm": "1"},
        ),
    ),
    "API: revoke a token": (
        "token",
        lambda c, t, staff, user: _api(staff).post(
            f"/api/v1/customers/{c.pk}/tokens/{t.pk}/revoke/"
        ),
    ),
    "API: rotate with no grace": (
        "token",
        lambda c, t, staff, user: _api(staff).post(
            f"/api/v1/customers/{c.pk}/tokens/{t.pk}/rotate/", {"grace_hours": 0}
        ),
    ),
    "API: suspend": (
        "suspended",
        lambda c, t, staff, user: _api(staff).post(f"/api/v1/customers/{c.pk}/suspend/"),
    ),
    "API: close": (
        "closed",
        lambda c, t, staff, user: _api(staff).post(f"/api/v1/customers/{c.pk}/close/"),
    ),
    "command: revoke-token": (
        "token",
        lambda c, t, staff, user: _command("revoke-token", "--customer-id", str(c.pk)),
    ),
    "command: update-token": (
        "token",
        lambda c, t, staff, user: _command(
            "update-token", "--customer-id", str(c.pk), "--token", contract.generate_token()
        ),
    ),
    "command: rotate-token with no grace": (
        "token",
        lambda c, t, staff, user: _command(
            "rotate-token", "--customer-id", str(c.pk), "--grace-hours", "0"
        ),
    ),
    "command: suspend": (
        "suspended",
        lambda c, t, staff, user: _command("suspend", "--customer-id", str(c.pk)),
    ),
    "billing: suspension at zero balance": (
        "suspended",
        lambda c, t, staff, user: __import__(
            "billing.wallet", fromlist=["x"]
        ).customer_suspend_for_zero_balance(customer=c),
    ),
}


@pytest.mark.parametrize("path", list(PATHS))
def test_every_path_that_takes_access_away_reaches_dynamodb_without_a_worker(
    path, ddb, customer, live_token, staff_user, customer_user, no_worker
):
    stops, act = PATHS[path]
    response = act(customer, live_token.token, staff_user, customer_user)
    assert getattr(response, "status_code", 200) < 400
    if stops == "token":
        assert remote_token(ddb, live_token.plaintext).status == "revoked"
    else:
        assert contract.get_customer(ddb, str(customer.pk)).status == stops
    # What took access away is delivered; only a rotation's new token waits for the worker.
    assert not _pending().exclude(kind="token", payload__status="active").exists()
    assert {row.customer_id for row in _pending()} <= {customer.pk}


def test_revoked_token_is_refused_by_the_proxy_with_no_worker(ddb, customer, live_token, no_worker):
    from tests.proxy.conftest import body_of, chat, event, make_app

    proxy = make_app(ddb)
    assert proxy.handle(event(chat(), token=live_token.plaintext))["statusCode"] == 200
    services.token_revoke(token=live_token.token)
    response = proxy.handle(event(chat(), token=live_token.plaintext))
    assert response["statusCode"] == 401
    assert body_of(response)["error"]["code"] == "token_revoked"
    assert no_worker == []  # delivered in-process: nothing was left for a worker


def test_unreachable_dynamodb_leaves_the_row_to_the_worker_and_the_sweeper(
    ddb, customer, live_token, staff_user, no_worker, monkeypatch
):
    """The in-process write fails (endpoint unreachable): the API call still succeeds, the row
    keeps its backoff schedule, a delivery is queued for when it is due, the sweeper delivers."""
    unreachable = boto3.client("dynamodb", region_name="us-east-1")

    def refuse(request, **kwargs):
        raise EndpointConnectionError(endpoint_url=request.url)

    unreachable.meta.events.register("before-send.dynamodb.*", refuse)
    monkeypatch.setattr(sync, "access_write_client", lambda: unreachable)

    response = _api(staff_user).post(
        f"/api/v1/customers/{customer.pk}/tokens/{live_token.token.pk}/revoke/"
    )
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    assert Token.objects.get(pk=live_token.token.pk).status == "revoked"
    assert remote_token(ddb, live_token.plaintext).status == "active"  # not delivered yet

    row = _pending().get()
    assert (row.kind, row.attempts) == ("token", 1)
    assert "EndpointConnectionError" in row.last_error
    assert row.next_attempt_at > timezone.now()
    [(queued_for, countdown)] = no_worker
    assert queued_for == str(customer.pk) and 0 < countdown <= 5

    assert tasks.sweep_outbox.apply().get() == 0  # not due yet: the backoff holds
    SyncOutbox.objects.filter(pk=row.pk).update(next_attempt_at=timezone.now() - timedelta(1))
    assert tasks.sweep_outbox.apply().get() == 1
    assert remote_token(ddb, live_token.plaintext).status == "revoked"


def test_a_broken_database_after_commit_never_fails_the_change(
    ddb, customer, live_token, no_worker, monkeypatch
):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(sync, "access_changes_write", broken)
    services.token_revoke(token=live_token.token)  # does not raise
    assert Token.objects.get(pk=live_token.token.pk).status == "revoked"
    assert no_worker == [(str(customer.pk), None)]  # the worker takes over


def test_in_process_writes_are_bounded_per_commit_customers_first(
    ddb, customer, staff_user, no_worker, monkeypatch
):
    monkeypatch.setattr(sync, "ACCESS_WRITE_LIMIT", 3)
    issued = [services.token_create(customer=customer, label=f"t{i}") for i in range(4)]
    no_worker.clear()
    services.customer_close(customer=customer, actor=staff_user)  # 4 revocations + the close
    assert contract.get_customer(ddb, str(customer.pk)).status == "closed"
    statuses = [remote_token(ddb, i.plaintext) for i in issued]
    assert sum(1 for item in statuses if item and item.status == "revoked") == 2
    assert _pending().filter(payload__status="revoked").count() == 2
    assert no_worker == [(str(customer.pk), None)]  # the rest goes to the worker


def test_bulk_suspension_beyond_the_bound_goes_to_the_worker(
    ddb, staff_user, no_worker, monkeypatch
):
    monkeypatch.setattr(sync, "ACCESS_WRITE_LIMIT", 3)
    customers = [
        Customer.objects.create(name=f"C{i}", contact_email=f"c{i}@example.com") for i in range(5)
    ]
    response = _staff(staff_user).post(
        reverse("staff:customer_bulk"),
        {"action": "suspend", "ids": [str(c.pk) for c in customers], "confirm": "1"},
    )
    assert response.status_code == 302
    remote = [contract.get_customer(ddb, str(c.pk)) for c in customers]
    assert sum(1 for item in remote if item and item.status == "suspended") == 3
    assert _pending().count() == 2
    assert sorted(cid for cid, _ in no_worker) == sorted(str(row.customer_id) for row in _pending())


def test_changes_that_give_access_wait_for_the_worker(ddb, customer, no_worker):
    """Only what takes access away is written in-process; the rest is the worker's job."""
    services.customer_update_limits(customer=customer, rpm_limit=10)
    services.token_create(customer=customer)
    assert _pending().count() == 2
    assert no_worker == [(str(customer.pk), None)] * 2
