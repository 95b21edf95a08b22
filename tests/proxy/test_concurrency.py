"""Limits hold across concurrent containers: 50 requests in parallel, daily limit 20.

Each thread plays its own Lambda container (its own ProxyApp, cache and boto3 client), all of
them against one moto server on 127.0.0.1, so only DynamoDB's conditions can keep the count.
"""

import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import boto3
import pytest
from moto.server import ThreadedMotoServer

from proxy import contract

from .conftest import REGION, chat, event, make_app, put_customer, put_token


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def atomic_moto(monkeypatch):
    """moto's backend applies a request as read-modify-write without a lock, so two threads can
    lose an ADD; DynamoDB applies each write atomically. One lock per write restores that (it
    does not serialise our read-then-decide logic: there is none, the conditions decide)."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()  # transact_write_items calls the others
    for name in ("transact_write_items", "update_item", "put_item"):
        original = getattr(DynamoDBBackend, name)

        def locked(self, *args, _original=original, **kwargs):
            with lock:
                return _original(self, *args, **kwargs)

        monkeypatch.setattr(DynamoDBBackend, name, locked)


@pytest.fixture
def moto_server(aws_env, atomic_moto):
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def test_fifty_concurrent_requests_against_a_limit_of_twenty(moto_server):
    def client():
        return boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_server)

    setup = client()
    contract.create_tables(setup)
    customer = put_customer(setup, daily_request_limit=20)
    token, _ = put_token(setup, customer)
    barrier = threading.Barrier(50)

    def one_container(_):
        app = make_app(client())
        barrier.wait()
        return app.handle(event(chat(), token=token))["statusCode"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        statuses = list(pool.map(one_container, range(50)))
    assert statuses.count(200) == 20
    assert statuses.count(429) == 30
    snapshot = contract.get_usage_snapshot(setup, customer.customer_id, datetime.now(UTC).date())
    assert snapshot["day"]["requests"] == 20
    assert snapshot["day_by_model"]["sandbox.echo-v1"]["requests"] == 20
