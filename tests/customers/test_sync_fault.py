"""DynamoDB unreachable during 50 operations, then back: everything delivered, exactly."""

import random

import pytest

from customers import selectors, services
from customers.models import Customer, SyncOutbox, Token
from customers.sync import dynamodb_client, outbox_deliver
from customers.tasks import sweep_outbox
from proxy import contract

pytestmark = pytest.mark.django_db(transaction=True)

CLOSED_PORT_ENDPOINT = "http://127.0.0.1:9"  # the discard port: nothing listens on loopback


def test_fifty_operations_while_dynamodb_is_down(ddb, settings, customer, other_customer):
    settings.SYNC_RETRY_BASE_SECONDS = 0  # retry as soon as the sweeper runs
    rng = random.Random(42)
    settings.AWS_ENDPOINT_URL = CLOSED_PORT_ENDPOINT
    plaintexts = {}
    customers = [customer, other_customer]
    for step in range(50):
        target = customers[step % 2]
        live = [t for t in selectors.token_list_usable(customer=target) if not t.replaced_by_id]
        choice = rng.choice(["limits", "token", "rotate", "revoke", "status"])
        inactive = target.status != Customer.Status.ACTIVE  # no new token for it (refused)
        if (
            choice == "limits"
            or (choice in ("rotate", "revoke") and not live)
            or (choice in ("token", "rotate") and inactive)
        ):
            services.customer_update_limits(customer=target, daily_request_limit=step + 1)
        elif choice == "token":
            issued = services.token_create(customer=target, label=f"t{step}")
            plaintexts[issued.token.pk] = issued.plaintext
        elif choice == "rotate":
            issued = services.token_rotate(token=live[0], grace_hours=1)
            plaintexts[issued.token.pk] = issued.plaintext
        elif choice == "revoke":
            services.token_revoke(token=live[0])
        elif target.status == Customer.Status.ACTIVE:
            services.customer_suspend(customer=target)
        else:
            services.customer_reactivate(customer=target)

    pending = SyncOutbox.objects.filter(delivered_at__isnull=True)
    assert pending.count() >= 50
    assert pending.filter(attempts__gt=0).exists()  # the on-commit task tried, and failed
    assert "EndpointConnectionError" in pending.exclude(last_error="").first().last_error
    assert selectors.customer_sync_state(customer=customer).state == "failing"
    assert contract.get_customer(ddb, str(customer.pk)) is None  # nothing got through

    # DynamoDB is back: the beat's sweeper task (the production path) delivers everything.
    settings.AWS_ENDPOINT_URL = None
    total = SyncOutbox.objects.count()
    assert sweep_outbox.apply().get() == total
    assert not SyncOutbox.objects.filter(delivered_at__isnull=True).exists()
    # A replay of every row (duplicate tasks, say) changes nothing: versions make it idempotent.
    client = dynamodb_client()
    before = (list(contract.iter_customers(client)), list(contract.iter_tokens(client)))
    SyncOutbox.objects.update(delivered_at=None)
    assert outbox_deliver(limit=10_000).failed == 0
    after = (list(contract.iter_customers(client)), list(contract.iter_tokens(client)))
    assert sorted(map(repr, before[0] + before[1])) == sorted(map(repr, after[0] + after[1]))

    for row in Customer.objects.all():
        item = contract.get_customer(client, str(row.pk))
        assert (item.version, item.status, item.daily_request_limit) == (
            row.sync_version,
            row.status,
            row.daily_request_limit,
        )
        assert selectors.customer_sync_state(customer=row).state == "in sync"
    tokens = list(Token.objects.all())
    assert len(tokens) == len(plaintexts)
    for token in tokens:
        item = contract.get_token(client, token.token_hash)
        assert item.version == token.sync_version
        assert item.status == ("revoked" if token.status == "revoked" else "active")
    for token_id, plaintext in plaintexts.items():
        assert contract.get_token(client, contract.hash_token(plaintext)).token_id == str(token_id)
    # Nothing duplicated: one item per customer and per token.
    assert sorted(i.customer_id for i in contract.iter_customers(client)) == sorted(
        str(c.pk) for c in Customer.objects.all()
    )
    assert len(list(contract.iter_tokens(client))) == len(tokens)


def test_older_version_never_overwrites_newer(ddb, customer):
    services.customer_update_limits(customer=customer, daily_request_limit=1)
    services.customer_update_limits(customer=customer, daily_request_limit=2)
    first = SyncOutbox.objects.filter(customer=customer).order_by("id").first()
    SyncOutbox.objects.filter(pk=first.pk).update(delivered_at=None)
    report = outbox_deliver(customer_id=customer.pk)
    assert (report.delivered, report.superseded) == (1, 1)
    assert contract.get_customer(ddb, str(customer.pk)).daily_request_limit == 2


def test_backoff_grows_and_is_capped(settings):
    from customers.sync import backoff_delay

    settings.SYNC_RETRY_BASE_SECONDS = 5
    settings.SYNC_RETRY_MAX_SECONDS = 60
    assert backoff_delay(1).total_seconds() <= 5
    assert 16 <= backoff_delay(3).total_seconds() <= 20
    assert backoff_delay(30).total_seconds() <= 60


def test_failed_rows_wait_for_their_backoff(ddb, settings, customer):
    settings.SYNC_RETRY_BASE_SECONDS = 600
    settings.AWS_ENDPOINT_URL = CLOSED_PORT_ENDPOINT
    services.customer_update_limits(customer=customer, daily_request_limit=7)
    settings.AWS_ENDPOINT_URL = None
    assert outbox_deliver().delivered == 0  # not due yet
    assert outbox_deliver(force=True).delivered == 1
