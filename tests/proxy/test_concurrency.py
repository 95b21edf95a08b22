"""Limits hold across concurrent containers: 50 requests in parallel, daily limit 20.

Each thread plays its own Lambda container (its own ProxyApp, cache and boto3 client), all of
them against one moto server on 127.0.0.1, so only DynamoDB's conditions can keep the count.
"""

import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import boto3

from proxy import contract

from .conftest import REGION, chat, event, make_app, put_customer, put_token


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
