"""The embedded AWS emulator as `make run` starts it (portal/emulator.py): DynamoDB applies each
request atomically under concurrency, as DynamoDB does, so counters are exact."""

import socket
import threading
from concurrent.futures import ThreadPoolExecutor

import boto3
import pytest
from botocore.config import Config

from portal import emulator

TABLE = "emulator-counters"


@pytest.fixture
def dynamodb(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()
    server = emulator.start(port)
    try:
        client = boto3.client(
            "dynamodb",
            region_name="us-east-1",
            endpoint_url=f"http://127.0.0.1:{port}",
            config=Config(max_pool_connections=100, retries={"max_attempts": 10}),
        )
        if TABLE in client.list_tables()["TableNames"]:  # moto's state is per process
            client.delete_table(TableName=TABLE)
        client.create_table(
            TableName=TABLE,
            KeySchema=[
                {"AttributeName": "pk", "KeyType": "HASH"},
                {"AttributeName": "sk", "KeyType": "RANGE"},
            ],
            AttributeDefinitions=[
                {"AttributeName": "pk", "AttributeType": "S"},
                {"AttributeName": "sk", "AttributeType": "S"},
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client
    finally:
        server.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def add(key: str, condition: str | None = None) -> dict:
    update = {
        "TableName": TABLE,
        "Key": {"pk": {"S": "CUST#1"}, "sk": {"S": key}},
        "UpdateExpression": "ADD requests :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
    if condition:
        update["ConditionExpression"] = condition
    return {"Update": update}


def requests_of(dynamodb, key: str) -> int:
    item = dynamodb.get_item(
        TableName=TABLE, Key={"pk": {"S": "CUST#1"}, "sk": {"S": key}}, ConsistentRead=True
    ).get("Item", {})
    return int(item.get("requests", {}).get("N", 0))


def test_forty_concurrent_two_item_transactions_all_count(dynamodb):
    """40 transactions ADD 1 to two items each; 40 others, at the same time, are cancelled by
    a condition (moto rolls a cancelled one back by restoring its copy of the table, which
    took back the others' ADDs in between). Both items end at exactly 40."""
    for start in range(0, 200, 25):  # other items, as a running stack has: a longer copy
        dynamodb.batch_write_item(
            RequestItems={
                TABLE: [
                    {"PutRequest": {"Item": {"pk": {"S": f"CUST#{n}"}, "sk": {"S": "DAY"}}}}
                    for n in range(start + 2, start + 27)
                ]
            }
        )
    barrier = threading.Barrier(80)

    def one(n):
        barrier.wait(timeout=60)
        if n % 2:
            try:
                dynamodb.transact_write_items(
                    TransactItems=[add("OTHER", "requests > :one"), add("DAY", "requests < :one")]
                )
            except dynamodb.exceptions.TransactionCanceledException:
                return "cancelled"
            return "applied"
        dynamodb.transact_write_items(TransactItems=[add("DAY"), add("MONTH")])
        return "applied"

    with ThreadPoolExecutor(max_workers=80) as pool:
        outcomes = list(pool.map(one, range(80)))
    assert outcomes.count("cancelled") == 40
    assert requests_of(dynamodb, "DAY") == requests_of(dynamodb, "MONTH") == 40


def test_a_transaction_sent_again_with_its_token_applies_once(dynamodb):
    """botocore re-sends a call whose answer timed out, with the same ClientRequestToken;
    DynamoDB applies it once, and so does the emulator (moto alone applied it twice)."""
    key = "token"
    for _ in range(3):
        dynamodb.transact_write_items(TransactItems=[add(key)], ClientRequestToken="same-call")
    dynamodb.transact_write_items(TransactItems=[add(key)], ClientRequestToken="another-call")
    dynamodb.transact_write_items(TransactItems=[add(key)])  # no token: applied each time
    assert requests_of(dynamodb, key) == 3
