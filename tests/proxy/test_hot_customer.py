"""A customer spread over admission shards (proxy/sharded.py), under DynamoDB's concurrency rules
(portal/dynamodb_conflicts.py in front of moto): 200 callers in 20 containers never pass a
limit, a revoked token or a suspended customer is refused on the next request, a settlement
that meets a conflict is applied once, and the limiter agrees with a reference model."""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from moto import mock_aws

from portal.dynamodb_conflicts import ConflictingDynamoDB
from proxy import contract, sharded, usage
from proxy.errors import ProxyError

from .conftest import REGION, chat, event, make_app, put_customer, put_token

CALLERS, CONTAINERS = 200, 20
COUNTS = {"input_tokens": 60, "output_tokens": 40, "cache_read_tokens": 0, "cache_write_tokens": 0}


@pytest.fixture
def double(dynamodb, atomic_moto):
    return ConflictingDynamoDB(dynamodb, apply_at="start")


def code_of(response) -> str:
    return json.loads(response["body"])["error"]["code"] if response["statusCode"] != 200 else ""


def retried(write, *args):
    """A portal write while admissions hold the item: the outbox would deliver it again."""
    for _ in range(100):
        try:
            return write(*args)
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionConflictException":
                raise
            time.sleep(0.01)
    raise AssertionError("the item stayed busy")


def admission_items(dynamodb, customer_id) -> list[dict]:
    return dynamodb.query(
        TableName=contract.table_names().usage_counters,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :p)",
        ExpressionAttributeValues={
            ":pk": {"S": contract.counter_pk(customer_id)},
            ":p": {"S": contract.ADMISSION_SK_PREFIX},
        },
        ConsistentRead=True,
    )["Items"]


def test_split_caps_add_up_to_the_limit():
    for limit in (0, 1, 7, 150, 10**9 + 3):
        for shards in (1, 2, 8, 16, 64):
            parts = [sharded.split_cap(limit, shards, k) for k in range(shards)]
            assert sum(parts) == limit and max(parts) - min(parts) <= 1


def test_two_hundred_callers_in_twenty_containers_stop_exactly_at_the_daily_limit(dynamodb, double):
    customer = put_customer(dynamodb, daily_request_limit=150, counter_shards=8)
    token, _ = put_token(dynamodb, customer)
    apps = [make_app(double) for _ in range(CONTAINERS)]
    barrier = threading.Barrier(CALLERS)

    def caller(index):
        barrier.wait()
        app = apps[index % CONTAINERS]
        return [app.handle(event(chat(), token=token)) for _ in range(2)]

    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        responses = [r for batch in pool.map(caller, range(CALLERS)) for r in batch]
    statuses = [r["statusCode"] for r in responses]
    assert statuses.count(200) == 150  # exact: every shard full before any refusal
    assert statuses.count(429) == 2 * CALLERS - 150
    assert {code_of(r) for r in responses if r["statusCode"] != 200} == {"daily_limit_exceeded"}
    snapshot = contract.get_usage_snapshot(dynamodb, customer.customer_id, datetime.now(UTC).date())
    assert snapshot["day"]["requests"] == 150 and snapshot["month"]["requests"] == 150
    assert snapshot["day_by_model"]["sandbox.echo-v1"]["requests"] == 150
    counted = sum(int(item["dr"]["N"]) for item in admission_items(dynamodb, customer.customer_id))
    assert counted == 150
    assert double.in_flight() == []


@pytest.mark.parametrize("change", ["revoke", "suspend"])
def test_a_revoked_token_or_suspended_customer_is_refused_on_the_next_request(
    dynamodb, double, change
):
    customer = put_customer(dynamodb, daily_request_limit=10**6, counter_shards=16)
    token, item = put_token(dynamodb, customer)
    apps = [make_app(double) for _ in range(CONTAINERS)]
    changed_at: list[float] = []
    stop = threading.Event()

    admitted: list[int] = []  # list.append is atomic: a count shared by the callers

    def caller(index):
        # Paced (a request, then 50 ms), so moto in process is not what is measured.
        app, seen = apps[index % CONTAINERS], []
        while not stop.is_set():
            started = time.monotonic()
            response = app.handle(event(chat(), token=token))
            seen.append((started, response))
            if response["statusCode"] == 200:
                admitted.append(1)
            time.sleep(0.05)
        return seen

    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        futures = [pool.submit(caller, i) for i in range(CALLERS)]
        try:
            # Every container warm, every shard stamped: more admitted calls than callers (a
            # count, not a fixed time: a loaded machine gets there later).
            deadline = time.monotonic() + 120
            while len(admitted) <= CALLERS:
                assert time.monotonic() < deadline, f"only {len(admitted)} calls admitted"
                time.sleep(0.05)
            if change == "revoke":
                retried(contract.put_token, double, dataclasses.replace(item, status="revoked",
                                                                        version=2))  # fmt: skip
            else:
                retried(contract.put_customer, double,
                        dataclasses.replace(customer, status="suspended", version=2))  # fmt: skip
            changed_at.append(time.monotonic())
            time.sleep(1.0)
        finally:
            stop.set()  # whatever happened above, the callers stop (else the pool waits forever)
        seen = [pair for f in futures for pair in f.result()]
    after = [response for started, response in seen if started > changed_at[0]]
    before = [response for started, response in seen if started <= changed_at[0]]
    expected = "token_revoked" if change == "revoke" else "customer_suspended"
    assert after and {code_of(r) for r in after} == {expected}
    assert sum(r["statusCode"] == 200 for r in before) > CALLERS
    assert {r["statusCode"] for r in before} <= {200, 401, 403}  # no 503, no 500


class ConflictOnce:
    """The double, with one conflict injected before the first UpdateItem and the first
    TransactWriteItems: DynamoDB's own answers to a write that met a transaction."""

    def __init__(self, double):
        self.double, self.met = double, set()

    def __getattr__(self, name):
        return getattr(self.double, name)

    def update_item(self, **kwargs):
        if "update_item" not in self.met and kwargs["Key"]["sk"]["S"].startswith("ADMIT#"):
            self.met.add("update_item")
            raise self.double._error(
                "UpdateItem", "TransactionConflictException", {"message": "Transaction is "
                                                               "ongoing for the item"}
            )  # fmt: skip
        return self.double.update_item(**kwargs)

    def transact_write_items(self, **kwargs):
        if "transact" not in self.met:
            self.met.add("transact")
            count = len(kwargs["TransactItems"])
            raise self.double._cancelled(
                [{"Code": "TransactionConflict", "Message": "Transaction is ongoing for the item"}]
                + [{"Code": "None"}] * (count - 1)
            )
        return self.double.transact_write_items(**kwargs)


def test_a_settlement_that_meets_a_conflict_is_applied_once(dynamodb, double):
    customer = put_customer(dynamodb, monthly_token_quota=10_000, counter_shards=4)
    token, item = put_token(dynamodb, customer)
    app = make_app(double)
    principal = app.auth.authenticate({"authorization": f"Bearer {token}"}, "203.0.113.7")
    admission = app.limiter.admit(principal, lambda _: None, request_id="r-1", quota_hold=500)
    flaky = ConflictOnce(double)
    usage.record_success(flaky, app.settings.tables, customer.customer_id, admission,
                         "amazon.nova-micro-v1:0", COUNTS, item.token_id)  # fmt: skip
    assert flaky.met == {"update_item", "transact"}  # both met a conflict, both retried
    held = sum(
        int(i.get("mq", {}).get("N", 0)) for i in admission_items(dynamodb, customer.customer_id)
    )
    assert held == 100  # the hold of 500 replaced by the call's 60 + 40, once
    snapshot = contract.get_usage_snapshot(dynamodb, customer.customer_id, datetime.now(UTC).date())
    assert snapshot["month"]["requests"] == 1 and snapshot["month"]["quota_tokens"] == 100
    assert snapshot["month_by_model"]["amazon.nova-micro-v1:0"]["input_tokens"] == 60


def test_the_portal_reads_the_sum_of_the_shards(dynamodb):
    from usage import counters

    customer = put_customer(dynamodb, counter_shards=4)
    token, _ = put_token(dynamodb, customer)
    app = make_app(dynamodb)
    for _ in range(9):
        assert app.handle(event(chat(), token=token))["statusCode"] == 200
    today = datetime.now(UTC).date()
    pk = contract.counter_pk(customer.customer_id)
    keys = [(pk, contract.day_sk(today)), (pk, contract.month_sk(today))]
    totals = counters.read_counters(keys, client=dynamodb)
    assert totals[keys[0]].requests == 9 and totals[keys[1]].requests == 9
    assert totals[keys[0]].output_tokens > 0
    assert (
        counters.day_totals([customer.customer_id], day=today, client=dynamodb)[
            customer.customer_id
        ].requests
        == 9
    )


def test_the_portal_stamps_every_shard_at_once(dynamodb):
    customer = put_customer(dynamodb, daily_request_limit=10**6, counter_shards=8)
    token, _ = put_token(dynamodb, customer)
    app = make_app(dynamodb)
    for _ in range(120):  # random shards: all 8 exist after this (miss chance 8 x (7/8)^120)
        assert app.handle(event(chat(), token=token))["statusCode"] == 200
    assert len(admission_items(dynamodb, customer.customer_id)) == 8

    class SlowWrites:  # each stamp takes 50 ms: one at a time would take 400 ms
        def __init__(self):
            self.lock, self.in_flight, self.peak = threading.Lock(), 0, 0

        def __getattr__(self, name):
            return getattr(dynamodb, name)

        def update_item(self, **kwargs):
            with self.lock:
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
            try:
                time.sleep(0.05)
                return dynamodb.update_item(**kwargs)
            finally:
                with self.lock:
                    self.in_flight -= 1

    slow = SlowWrites()
    suspended = dataclasses.replace(customer, status="suspended", version=2)
    assert contract.put_customer(slow, suspended)
    assert slow.peak == 8  # every shard written at the same time
    items = admission_items(dynamodb, customer.customer_id)
    assert {i[contract.CUSTOMER_STAMP]["N"] for i in items} == {"2"}
    assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"
    stamped_again = contract.stamp_admission_shards(
        dynamodb, customer.customer_id, contract.CUSTOMER_STAMP, 2
    )
    assert stamped_again == 0  # already at this version: nothing written twice


def test_a_tokens_own_limits_hold_on_shards(dynamodb):
    customer = put_customer(dynamodb, daily_request_limit=1000, counter_shards=4)
    token, _ = put_token(dynamodb, customer, daily_request_limit=5)
    app = make_app(dynamodb)
    responses = [app.handle(event(chat(), token=token)) for _ in range(7)]
    assert [r["statusCode"] for r in responses] == [200] * 5 + [429] * 2
    assert responses[-1]["headers"]["X-RateLimit-Scope"] == "token"
    assert code_of(responses[-1]) == "daily_limit_exceeded"
    other, _ = put_token(dynamodb, customer)  # the customer's other token is not held back
    assert app.handle(event(chat(), token=other))["statusCode"] == 200
    items = admission_items(dynamodb, customer.customer_id)
    assert sum(int(i.get("dr", {}).get("N", 0)) for i in items) == 6


# --- the limiter against a reference model -------------------------------------------------------

SHARDS, DAILY, QUOTA, HOLD, TOKEN_DAILY = 4, 9, 1_000, 120, 6


class ShardedLimiterMachine(RuleBasedStateMachine):
    """Two containers admit, settle and refund calls of one customer (daily limit, monthly
    quota with holds) while the portal revokes and reissues tokens and suspends the customer.
    The reference: the requests counted are those admitted and not refunded; a daily refusal
    only when all of them are used; the quota never passes QUOTA + SHARDS holds, and once every
    call is settled it counts exactly the exact tokens."""

    @initialize()
    def start(self):
        for name, value in (("AWS_DEFAULT_REGION", REGION), ("AWS_ACCESS_KEY_ID", "testing"),
                            ("AWS_SECRET_ACCESS_KEY", "testing")):  # fmt: skip
            os.environ.setdefault(name, value)
        self.mock = mock_aws()
        self.mock.start()
        self.dynamodb = boto3.client("dynamodb", region_name=REGION)
        contract.create_tables(self.dynamodb)
        self.customer = put_customer(
            self.dynamodb, daily_request_limit=DAILY, monthly_token_quota=QUOTA,
            counter_shards=SHARDS,
        )  # fmt: skip
        self.token, self.token_item = put_token(
            self.dynamodb, self.customer, daily_request_limit=TOKEN_DAILY
        )
        self.token_requests = self.token_given_back = 0  # the current token's own counts
        # A refusal on cached items is read again at once, so a reactivation is seen at once.
        self.apps = [make_app(self.dynamodb) for _ in range(2)]
        self.in_flight: list = []
        self.requests = self.exact_tokens = 0
        # Given back after being counted: refunded requests, and tokens held but not used. A
        # container that saw a shard full finds such room by its one probe or next period.
        self.requests_given_back = self.tokens_given_back = 0
        self.revoked = self.suspended = False

    def teardown(self):
        if hasattr(self, "mock"):
            self.mock.stop()

    def _admit(self, container):
        app = self.apps[container]
        principal = app.auth.authenticate({"authorization": f"Bearer {self.token}"}, "198.51.100.1")
        return app, app.limiter.admit(principal, lambda _: None, quota_hold=HOLD)

    @rule(container=st.integers(0, 1))
    def admit(self, container):
        held = HOLD * len(self.in_flight)
        try:
            app, admission = self._admit(container)
        except ProxyError as exc:
            if self.revoked:
                assert exc.code == "token_revoked"
            elif self.suspended:
                assert exc.code == "customer_suspended"
            elif exc.code == "daily_limit_exceeded" and exc.headers["X-RateLimit-Scope"] == "token":
                assert self.token_requests + self.token_given_back >= TOKEN_DAILY
            elif exc.code == "daily_limit_exceeded":
                # Refused only with every shard's part used (less what was given back since).
                assert self.requests + self.requests_given_back >= DAILY
            else:
                assert exc.code == "monthly_quota_exceeded"
                used = self.exact_tokens + held + self.tokens_given_back
                assert used >= QUOTA - SHARDS * HOLD
            return
        assert not self.revoked and not self.suspended
        self.requests += 1
        self.token_requests += 1
        self.in_flight.append((app, admission, self.token_item.token_id))

    @precondition(lambda self: self.in_flight)
    @rule(index=st.integers(0, 50), output=st.integers(0, 200))
    def settle(self, index, output):
        app, admission, _ = self.in_flight.pop(index % len(self.in_flight))
        counts = {**COUNTS, "input_tokens": 20, "output_tokens": output}
        usage.record_success(self.dynamodb, app.settings.tables, self.customer.customer_id,
                             admission, "amazon.nova-micro-v1:0", counts)  # fmt: skip
        self.exact_tokens += 20 + output
        self.tokens_given_back += max(0, HOLD - 20 - output)

    @precondition(lambda self: self.in_flight)
    @rule(index=st.integers(0, 50))
    def fail(self, index):
        app, admission, token_id = self.in_flight.pop(index % len(self.in_flight))
        if token_id == self.token_item.token_id:
            self.token_requests -= 1
            self.token_given_back += 1
        usage.refund_request(self.dynamodb, app.settings.tables, self.customer.customer_id,
                             admission)  # fmt: skip
        self.requests -= 1
        self.requests_given_back += 1
        self.tokens_given_back += HOLD

    @rule()
    def revoke_and_reissue(self):
        if not self.revoked:
            revoked = dataclasses.replace(self.token_item, status="revoked", version=2)
            contract.put_token(self.dynamodb, revoked)
            self.revoked = True
        else:
            self.token, self.token_item = put_token(
                self.dynamodb, self.customer, daily_request_limit=TOKEN_DAILY
            )
            self.token_requests = self.token_given_back = 0
            self.revoked = False

    @rule()
    def suspend_or_reactivate(self):
        self.customer = dataclasses.replace(
            self.customer,
            status="active" if self.suspended else "suspended",
            version=self.customer.version + 1,
        )
        contract.put_customer(self.dynamodb, self.customer)
        self.suspended = not self.suspended

    @invariant()
    def counters_agree(self):
        if not hasattr(self, "dynamodb"):
            return
        items = admission_items(self.dynamodb, self.customer.customer_id)
        assert sum(int(i.get("dr", {}).get("N", 0)) for i in items) == self.requests
        quota = sum(int(i.get("mq", {}).get("N", 0)) for i in items)
        assert quota == self.exact_tokens + HOLD * len(self.in_flight)
        assert quota <= QUOTA + SHARDS * (HOLD + 200)  # each shard over by one call at most
        assert self.requests <= DAILY and self.token_requests <= TOKEN_DAILY
        token_counted = sum(
            int(i.get(f"T#{self.token_item.token_id}#dr", {}).get("N", 0)) for i in items
        )
        assert token_counted == self.token_requests


ShardedLimiterMachine.TestCase.settings = settings(
    max_examples=20,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_sharded_limiter_against_a_reference_model = ShardedLimiterMachine.TestCase
