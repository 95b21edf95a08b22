"""Limits hold across concurrent containers: 50 requests in parallel, daily limit 20.

Each thread plays its own Lambda container (its own ProxyApp, cache and boto3 client), all of
them against one moto server on 127.0.0.1, so only DynamoDB's conditions can keep the count.
"""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import boto3
import pytest

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


class HeldBedrock:
    """Converse that holds every admitted call in flight until the test releases them all, so
    the monthly quota is checked while none of the calls has reported its tokens yet."""

    def __init__(self, answer: dict):
        self.answer, self.release = answer, threading.Event()
        self.in_flight, self.lock = 0, threading.Lock()

    def converse(self, **kwargs):
        with self.lock:
            self.in_flight += 1
        assert self.release.wait(timeout=30)
        return self.answer


def test_monthly_quota_holds_against_fifty_calls_in_flight(moto_server):
    """Quota 1,000 tokens; each call asks for at most 100 output tokens and really uses 100.
    Tokens are only known after the call, so admission holds an estimate (input + max output)
    against the quota: 10 calls are admitted, not 50, and the month ends at exactly 1,000."""
    from .conftest import converse_response

    def client():
        return boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_server)

    setup = client()
    contract.create_tables(setup)
    customer = put_customer(setup, monthly_token_quota=1000)
    token, _ = put_token(setup, customer)
    bedrock = HeldBedrock(converse_response(input_tokens=60, output_tokens=40))
    refused = []
    barrier = threading.Barrier(50)

    def one_container(_):
        app = make_app(client(), bedrock)
        barrier.wait()
        response = app.handle(event(chat(model="nova-micro", max_tokens=100), token=token))
        if response["statusCode"] == 429:
            refused.append(response)
        return response["statusCode"]

    with ThreadPoolExecutor(max_workers=50) as pool:
        futures = [pool.submit(one_container, i) for i in range(50)]
        deadline = time.monotonic() + 60
        while bedrock.in_flight + len(refused) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        bedrock.release.set()
        statuses = [f.result() for f in futures]
    assert statuses.count(200) == 10 and statuses.count(429) == 40
    codes = {json.loads(r["body"])["error"]["code"] for r in refused}
    assert codes == {"monthly_quota_exceeded"}
    month = setup.get_item(
        TableName=contract.table_names().usage_counters,
        Key={
            contract.COUNTER_PK: {"S": contract.counter_pk(customer.customer_id)},
            contract.COUNTER_SK: {"S": contract.month_sk(datetime.now(UTC).date())},
        },
        ConsistentRead=True,
    )["Item"]
    assert int(month["quota_tokens"]["N"]) == 1000  # exact: the holds were settled
    assert int(month["input_tokens"]["N"]) == 600 and int(month["requests"]["N"]) == 10


@pytest.mark.parametrize("scope", ["customer", "token"])
def test_tokens_per_minute_hold_against_fifty_calls_in_flight(moto_server, scope):
    """Tokens per minute 1,000, on the customer or on the token; 50 calls at once, each asking
    for at most 100 output tokens (a hold of 102: "Hello!" is 2 input tokens at four characters
    a token) and really using 100. Admission adds each call's hold to the minute's `tokens`
    while `tokens` < 1,000, so calls in flight see each other's holds.

    The bound: the tokens admitted in the minute never exceed the limit plus one call's hold
    (1,000 + 102): the last call admitted saw `tokens` under 1,000 and added its own hold. Here
    exactly 10 are admitted (0, 102, ..., 918 are under 1,000; 1,020 is not), holding 1,020,
    and once the calls report their tokens the minute holds exactly 10 x 100 = 1,000."""
    from .conftest import converse_response

    second = datetime.now(UTC).second
    if second >= 40:  # the calls must all fall in one minute
        time.sleep(61 - second)

    def client():
        return boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_server)

    setup = client()
    contract.create_tables(setup)
    limit, hold = 1000, 102
    if scope == "customer":
        customer = put_customer(setup, tpm_limit=limit)
        token, item = put_token(setup, customer)
        pk = contract.counter_pk(customer.customer_id)
    else:
        customer = put_customer(setup, tpm_limit=100 * limit)
        token, item = put_token(setup, customer, tpm_limit=limit)
        pk = contract.token_counter_pk(item.token_id)
    bedrock = HeldBedrock(converse_response(input_tokens=60, output_tokens=40))
    refused = []
    barrier = threading.Barrier(50)
    minute = contract.minute_sk(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M"))

    def one_container(_):
        app = make_app(client(), bedrock)
        barrier.wait()
        response = app.handle(event(chat(model="nova-micro", max_tokens=100), token=token))
        if response["statusCode"] == 429:
            refused.append(response)
        return response["statusCode"]

    def tokens_in_the_minute() -> int:
        item = setup.get_item(
            TableName=contract.table_names().usage_counters,
            Key={contract.COUNTER_PK: {"S": pk}, contract.COUNTER_SK: {"S": minute}},
            ConsistentRead=True,
        )["Item"]
        return int(item[contract.MINUTE_TOKENS]["N"])

    with ThreadPoolExecutor(max_workers=50) as pool:
        futures = [pool.submit(one_container, i) for i in range(50)]
        deadline = time.monotonic() + 60
        while bedrock.in_flight + len(refused) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        held = tokens_in_the_minute()  # every admitted call in flight: holds only
        bedrock.release.set()
        statuses = [f.result() for f in futures]
    admitted = statuses.count(200)
    assert held == admitted * hold
    assert held <= limit + hold  # the bound: the limit plus one call's hold
    assert admitted == 10 and statuses.count(429) == 40
    codes = {json.loads(r["body"])["error"]["code"] for r in refused}
    assert codes == {"tpm_limit_exceeded"}
    assert {r["headers"]["X-RateLimit-Scope"] for r in refused} == {scope}
    assert tokens_in_the_minute() == 1000  # exact: each hold replaced by the call's 100
