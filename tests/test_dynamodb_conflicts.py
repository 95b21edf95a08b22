"""The conflict-faithful DynamoDB (portal/dynamodb_conflicts.py): transactions hold their items,
single-item writes to a held item fail, writes to one item are applied one at a time, and a hot
item is throttled past its ceiling. Then the proxy, unchanged, against it with one hot customer."""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from portal import emulator
from portal.dynamodb_conflicts import ON_DEMAND_THROTTLE_MESSAGE, ConflictingDynamoDB
from proxy import contract, limits
from tests.proxy.conftest import chat, event, make_app, put_customer, put_token

TABLE = "conflict-items"


@pytest.fixture
def ddb(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    emulator.make_dynamodb_atomic()  # moto applies each request atomically, as DynamoDB does
    with mock_aws():
        dynamodb = boto3.client("dynamodb", region_name="us-east-1")
        dynamodb.create_table(
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
        yield dynamodb


def key(sk, pk="CUST#1"):
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def add(sk, cap=None, pk="CUST#1") -> dict:
    update = {
        "TableName": TABLE,
        "Key": key(sk, pk),
        "UpdateExpression": "ADD n :one",
        "ExpressionAttributeValues": {":one": {"N": "1"}},
    }
    if cap is not None:
        update["ConditionExpression"] = "attribute_not_exists(n) OR n < :cap"
        update["ExpressionAttributeValues"][":cap"] = {"N": str(cap)}
    return update


def value(ddb, sk, pk="CUST#1"):
    item = ddb.get_item(TableName=TABLE, Key=key(sk, pk), ConsistentRead=True).get("Item")
    return int(item["n"]["N"]) if item else None


def wait_until(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.002)
    raise AssertionError("condition not reached")


def code_of(exc: ClientError) -> str:
    return exc.response["Error"]["Code"]


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


# --- transactions ---------------------------------------------------------------------------


def test_an_overlapping_transaction_is_cancelled_with_a_reason_per_item(ddb):
    double = ConflictingDynamoDB(ddb, transaction_seconds=0.15)
    first = threading.Thread(
        target=double.transact_write_items, kwargs={"TransactItems": [{"Update": add("X")}]}
    )
    first.start()
    wait_until(lambda: double.in_flight())
    assert double.in_flight() == [f"{TABLE}[pk=CUST#1, sk=X]"]
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as caught:
        double.transact_write_items(
            TransactItems=[{"Update": add("Z")}, {"Update": add("X")}, {"Update": add("W")}]
        )
    first.join(timeout=5)
    response = caught.value.response
    assert response["Error"] == {
        "Code": "TransactionCanceledException",
        "Message": "Transaction cancelled, please refer cancellation reasons for specific "
        "reasons [None, TransactionConflict, None]",
    }
    assert response["CancellationReasons"] == [
        {"Code": "None"},
        {"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"},
        {"Code": "None"},
    ]
    assert limits.is_conflict(caught.value)  # what the proxy's limiter retries
    assert (value(ddb, "X"), value(ddb, "Z"), value(ddb, "W")) == (1, None, None)
    stats = double.stats()
    assert stats["transactions_attempted"] == 2 and stats["transactions_committed"] == 1
    assert stats["cancelled_by_conflict"] == 1 and stats["conflicts"] == 1
    assert double.in_flight() == []


def test_two_transactions_started_together_on_one_item_exactly_one_commits(ddb):
    double = ConflictingDynamoDB(ddb, transaction_seconds=0.1)
    barrier = threading.Barrier(2)

    def one(_):
        barrier.wait()
        try:
            double.transact_write_items(TransactItems=[{"Update": add("X")}])
            return "committed"
        except ClientError as exc:
            return exc.response["CancellationReasons"][0]["Code"]

    with ThreadPoolExecutor(max_workers=2) as pool:
        outcomes = sorted(pool.map(one, range(2)))
    assert outcomes == ["TransactionConflict", "committed"]
    assert value(ddb, "X") == 1


def test_transactions_on_different_items_both_commit(ddb):
    double = ConflictingDynamoDB(ddb, transaction_seconds=0.1)
    barrier = threading.Barrier(2)

    def one(sk):
        barrier.wait()
        double.transact_write_items(TransactItems=[{"Update": add(sk)}, {"Update": add(sk + "2")}])

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(one, ["A", "B"]))
    assert [value(ddb, sk) for sk in ("A", "A2", "B", "B2")] == [1, 1, 1, 1]
    stats = double.stats()
    assert stats["transactions_committed"] == 2 and stats["conflicts"] == 0
    assert stats["write_units"][f"{TABLE}[pk=CUST#1, sk=A]"] == 2  # prepare + commit


def test_a_failed_condition_cancels_the_transaction_through_the_real_logic(ddb):
    double = ConflictingDynamoDB(ddb, transaction_seconds=0)
    with pytest.raises(ClientError) as caught:
        double.transact_write_items(
            TransactItems=[
                {"Update": add("X")},
                {
                    "ConditionCheck": {
                        "TableName": TABLE,
                        "Key": key("Y"),
                        "ConditionExpression": "attribute_exists(pk)",
                    }
                },
            ]
        )
    assert [r["Code"] for r in caught.value.response["CancellationReasons"]] == [
        "None",
        "ConditionalCheckFailed",
    ]
    assert value(ddb, "X") is None
    stats = double.stats()
    assert stats["cancelled_by_condition"] == 1 and stats["transactions_cancelled"] == 1


def test_applied_at_the_start_the_items_stay_held_for_the_rest_of_the_latency(ddb):
    double = ConflictingDynamoDB(ddb, transaction_seconds=0.15, apply_at="start")
    first = threading.Thread(
        target=double.transact_write_items, kwargs={"TransactItems": [{"Update": add("X")}]}
    )
    first.start()
    wait_until(lambda: value(ddb, "X") == 1)  # applied, still in flight
    assert double.in_flight() == [f"{TABLE}[pk=CUST#1, sk=X]"]
    with pytest.raises(ddb.exceptions.TransactionConflictException):
        double.update_item(**add("X"))
    first.join(timeout=5)
    stats = double.stats()
    assert stats["transactions_committed"] == 1 and stats["hold_seconds_mean"] >= 0.15


# --- single-item writes -----------------------------------------------------------------------


def test_a_single_write_to_an_item_in_a_transaction_conflicts_and_succeeds_after(ddb):
    double = ConflictingDynamoDB(ddb, transaction_seconds=0.15, write_seconds=0)
    ddb.update_item(**add("X"))
    first = threading.Thread(
        target=double.transact_write_items, kwargs={"TransactItems": [{"Update": add("X")}]}
    )
    first.start()
    wait_until(lambda: double.in_flight())
    with pytest.raises(ddb.exceptions.TransactionConflictException) as caught:
        double.update_item(**add("X"))
    assert caught.value.response["Error"] == {
        "Code": "TransactionConflictException",
        "Message": "Transaction is ongoing for the item",
    }
    assert limits.is_conflict(caught.value)
    # A read is not refused, and sees the last committed value.
    assert double.get_item(TableName=TABLE, Key=key("X"))["Item"]["n"] == {"N": "1"}
    with pytest.raises(ddb.exceptions.TransactionConflictException):
        double.put_item(TableName=TABLE, Item={**key("X"), "n": {"N": "9"}})
    first.join(timeout=5)
    double.update_item(**add("X"))
    assert value(ddb, "X") == 3
    stats = double.stats()
    assert stats["write_conflicts"] == 2 and stats["conflicts"] == 2
    assert stats["calls"]["UpdateItem"] == 2 and stats["calls"]["PutItem"] == 1


def test_sequential_single_writes_never_conflict(ddb):
    double = ConflictingDynamoDB(ddb, write_seconds=0)
    for _ in range(20):
        double.update_item(**add("X"))
    double.put_item(TableName=TABLE, Item={**key("Y"), "n": {"N": "1"}})
    double.delete_item(TableName=TABLE, Key=key("Y"))
    assert value(ddb, "X") == 20 and value(ddb, "Y") is None
    stats = double.stats()
    assert stats["conflicts"] == 0 and stats["throttles"] == 0
    assert stats["write_units"][f"{TABLE}[pk=CUST#1, sk=X]"] == 20


class ConcurrencySpy:
    """Passes calls through to the DynamoDB client and records how many ran at once."""

    def __init__(self, ddb):
        self.ddb, self.lock = ddb, threading.Lock()
        self.running = self.most = 0

    def __getattr__(self, name):
        return getattr(self.ddb, name)

    def update_item(self, **kwargs):
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(0.0005)
            return self.ddb.update_item(**kwargs)
        finally:
            with self.lock:
                self.running -= 1


def test_concurrent_conditional_adds_on_one_item_are_applied_one_at_a_time_and_exact(ddb):
    spy = ConcurrencySpy(ddb)
    double = ConflictingDynamoDB(spy, write_seconds=0.001)
    barrier = threading.Barrier(8)

    def writer(_):
        barrier.wait()
        landed = refused = 0
        for _ in range(10):
            try:
                double.update_item(**add("X", cap=50))
                landed += 1
            except ddb.exceptions.ConditionalCheckFailedException:
                refused += 1
        return landed, refused

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(writer, range(8)))
    assert sum(r[0] for r in results) == 50 and sum(r[1] for r in results) == 30
    assert value(ddb, "X") == 50
    assert spy.most == 1  # one at a time
    assert double.stats()["write_units"][f"{TABLE}[pk=CUST#1, sk=X]"] == 80  # failed ones too


# --- the write ceiling --------------------------------------------------------------------------


def test_writes_past_the_item_ceiling_are_throttled_until_the_second_passes(ddb):
    clock = FakeClock()
    double = ConflictingDynamoDB(
        ddb, item_write_ceiling=5, write_seconds=0, clock=clock, sleep=clock.sleep
    )
    for _ in range(5):
        double.update_item(**add("X"))
    double.update_item(**add("Y"))  # another item has its own ceiling
    with pytest.raises(ddb.exceptions.ThrottlingException) as caught:
        double.update_item(**add("X"))
    response = caught.value.response
    assert response["Error"] == {
        "Code": "ThrottlingException",
        "Message": ON_DEMAND_THROTTLE_MESSAGE,
    }
    assert response["throttlingReasons"] == [
        {
            "reason": "TableWriteKeyRangeThroughputExceeded",
            "resource": f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}",
        }
    ]
    assert limits.store_unavailable(caught.value).code == "service_unavailable"  # the proxy's 503
    clock.now += 0.5
    with pytest.raises(ddb.exceptions.ThrottlingException):
        double.update_item(**add("X"))
    clock.now += 0.6  # the first five are more than a second old
    double.update_item(**add("X"))
    assert value(ddb, "X") == 6
    stats = double.stats()
    assert stats["throttles"] == 2
    assert stats["peak_write_units_per_second"][f"{TABLE}[pk=CUST#1, sk=X]"] == 5


def test_a_transaction_past_the_ceiling_is_cancelled_with_throttling_error(ddb):
    clock = FakeClock()
    double = ConflictingDynamoDB(
        ddb, item_write_ceiling=5, transaction_seconds=0, clock=clock, sleep=clock.sleep
    )
    double.transact_write_items(TransactItems=[{"Update": add("X")}, {"Update": add("Y")}])
    double.transact_write_items(TransactItems=[{"Update": add("X")}])  # X: 4 units of 5
    with pytest.raises(ddb.exceptions.TransactionCanceledException) as caught:
        double.transact_write_items(TransactItems=[{"Update": add("Y")}, {"Update": add("X")}])
    reasons = caught.value.response["CancellationReasons"]
    assert reasons == [
        {"Code": "None"},
        {"Code": "ThrottlingError", "Message": ON_DEMAND_THROTTLE_MESSAGE},
    ]
    assert not limits.is_conflict(caught.value)  # the limiter answers 503, it does not retry
    assert (value(ddb, "X"), value(ddb, "Y")) == (2, 1)
    assert double.stats()["cancelled_by_throttle"] == 1


def test_provisioned_throttling_partition_scope_and_replayed_sdk_retries(ddb):
    clock = FakeClock()
    double = ConflictingDynamoDB(
        ddb,
        item_write_ceiling=3,
        write_seconds=0,
        ceiling_scope="partition",
        throttle_code="ProvisionedThroughputExceededException",
        clock=clock,
        sleep=clock.sleep,
    )
    for sk in ("A", "B", "C"):  # one partition key: one ceiling
        double.update_item(**add(sk))
    double.update_item(**add("A", pk="CUST#2"))
    with pytest.raises(ddb.exceptions.ProvisionedThroughputExceededException) as caught:
        double.update_item(**add("D"))
    assert caught.value.response["ThrottlingReasons"][0]["reason"] == (
        "TableWriteKeyRangeThroughputExceeded"
    )
    double.throttle_retries, double.throttle_backoff = 3, 2.0  # waits up to 1, 2, 4 s (fake)
    double.update_item(**add("D"))  # retried as botocore's standard mode does
    assert value(ddb, "D") == 1 and clock.now > 1000.0
    assert double.stats()["peak_write_units_per_second"] == {f"{TABLE}[pk=CUST#1]": 3.0} | {
        f"{TABLE}[pk=CUST#2]": 1.0
    }


def test_reads_are_not_throttled_unless_asked(ddb):
    clock = FakeClock()
    double = ConflictingDynamoDB(ddb, clock=clock, sleep=clock.sleep)
    for _ in range(50):
        double.get_item(TableName=TABLE, Key=key("X"), ConsistentRead=True)
    double.item_read_ceiling = 2
    double.get_item(TableName=TABLE, Key=key("X"), ConsistentRead=True)
    double.get_item(TableName=TABLE, Key=key("X"))
    with pytest.raises(ddb.exceptions.ThrottlingException) as caught:
        double.get_item(TableName=TABLE, Key=key("X"), ConsistentRead=True)  # 1.5 + 1 > 2
    assert caught.value.response["throttlingReasons"][0]["reason"] == (
        "TableReadKeyRangeThroughputExceeded"
    )


# --- the proxy, unchanged, with one hot customer -------------------------------------------------


@pytest.fixture
def proxy_client(ddb):
    contract.create_tables(ddb)
    return ddb


def test_twenty_concurrent_callers_on_one_customer_meet_conflicts(proxy_client):
    """What today's design (one admission transaction holding the token, the customer and the
    counters; one usage transaction) meets on DynamoDB with 20 callers of one customer.
    Documents behaviour: only facts that must hold are asserted; the numbers are printed."""
    double = ConflictingDynamoDB(proxy_client)
    customer = put_customer(proxy_client, daily_request_limit=40)
    token, _ = put_token(proxy_client, customer)
    callers, each = 20, 3
    barrier = threading.Barrier(callers)

    def one_container(_):
        app = make_app(double)  # its own cache and limiter; DynamoDB is shared
        barrier.wait()
        return [app.handle(event(chat(), token=token)) for _ in range(each)]

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=callers) as pool:
        responses = [r for batch in pool.map(one_container, range(callers)) for r in batch]
    elapsed = time.monotonic() - started
    statuses = [r["statusCode"] for r in responses]
    errors = [json.loads(r["body"])["error"]["code"] for r in responses if r["statusCode"] != 200]
    stats = double.stats()
    print(
        f"\n{callers} callers x {each}: {statuses.count(200)} admitted, "
        f"{statuses.count(503)} x 503, {statuses.count(429)} x 429 in {elapsed:.2f} s; "
        f"transactions {stats['transactions_attempted']} attempted, "
        f"{stats['transactions_committed']} committed, "
        f"{stats['cancelled_by_conflict']} cancelled by a conflict "
        f"({stats['cancelled_by_conflict'] / stats['transactions_attempted']:.0%}), "
        f"{stats['cancelled_by_condition']} by a condition, {stats['throttles']} throttled"
    )
    assert set(statuses) <= {200, 429, 503}
    assert set(errors) <= {"service_unavailable", "daily_limit_exceeded"}
    admitted = statuses.count(200)
    assert admitted <= 40  # never over the daily limit
    snapshot = contract.get_usage_snapshot(
        proxy_client, customer.customer_id, datetime.now(UTC).date()
    )
    assert snapshot["day"]["requests"] == admitted  # a cancelled admission counts nothing
    assert snapshot["day_by_model"].get("sandbox.echo-v1", {}).get("requests", 0) <= admitted
    assert stats["transactions_attempted"] == (
        stats["transactions_committed"]
        + stats["transactions_cancelled"]
        + stats["transactions_failed"]
    )
    assert stats["transactions_cancelled"] == (
        stats["cancelled_by_conflict"]
        + stats["cancelled_by_condition"]
        + stats["cancelled_by_throttle"]
    )
    assert stats["conflicts"] >= 1  # 20 admissions at once all hold the same token item
    assert double.in_flight() == []


def test_twenty_concurrent_callers_on_one_customer_with_admission_shards(proxy_client):
    """The same 20 callers, the customer given 8 admission shards (proxy/sharded.py): one
    UpdateItem a request waits its turn instead of cancelling, so every request is admitted."""
    double = ConflictingDynamoDB(proxy_client)
    customer = put_customer(proxy_client, daily_request_limit=40, counter_shards=8)
    token, _ = put_token(proxy_client, customer)
    callers, each = 20, 3
    barrier = threading.Barrier(callers)

    def one_container(_):
        app = make_app(double)
        barrier.wait()
        return [app.handle(event(chat(), token=token)) for _ in range(each)]

    with ThreadPoolExecutor(max_workers=callers) as pool:
        responses = [r for batch in pool.map(one_container, range(callers)) for r in batch]
    statuses = [r["statusCode"] for r in responses]
    assert statuses.count(200) == 40 and statuses.count(429) == 20  # exact, no 503
    snapshot = contract.get_usage_snapshot(
        proxy_client, customer.customer_id, datetime.now(UTC).date()
    )
    assert snapshot["day"]["requests"] == 40
    assert snapshot["day_by_model"]["sandbox.echo-v1"]["requests"] == 40
    assert double.stats()["transactions_failed"] == 0 and double.in_flight() == []
