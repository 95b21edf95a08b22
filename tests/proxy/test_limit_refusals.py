"""What a refused client is told, and the limits whose refusals are decided by one scope:

- a money refusal carries its numbers in the error body (`error.limit`: cap, spent, currency,
  reset; decimal strings), besides the message and headers; the Bedrock Runtime paths keep
  their AWS error shape;
- a token's own tokens-per-minute limit refuses with 429, Retry-After and its scope;
- 50 calls in flight against a token's budget overshoot it by at most one call's hold;
- an admission whose customer item changes on every attempt ends in a retryable 503.

Prices and amounts as in test_money_limits: a call costs 0.14 and holds 0.204 while in flight.
"""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import boto3
import pytest

from proxy import contract, limits

from .conftest import (
    REGION,
    body_of,
    chat,
    converse_response,
    event,
    make_app,
    put_customer,
    put_token,
)
from .test_concurrency import HeldBedrock
from .test_money_limits import (
    COST,
    NOVA_MICRO,
    UNIT,
    answer,
    counter,
    hold,
    month_sk,
    nova,
    put_price,
)


@pytest.fixture
def priced(dynamodb):
    put_price(dynamodb)
    return dynamodb


def first_of_next_month() -> datetime:
    today = datetime.now(UTC).date()
    return datetime(today.year + (today.month == 12), today.month % 12 + 1, 1, tzinfo=UTC)


# --- structured fields of money refusals -----------------------------------------------------


def test_a_budget_refusal_carries_cap_spent_currency_and_reset_in_the_body(app, priced, bedrock):
    customer = put_customer(priced, monthly_budget_micros=UNIT)
    token, _ = put_token(priced, customer)
    answer(bedrock.stubber, 8)
    assert [app.handle(event(nova(), token=token))["statusCode"] for _ in range(8)] == [200] * 8
    refused = app.handle(event(nova(), token=token))
    assert refused["statusCode"] == 429
    error = json.loads(refused["body"])["error"]
    # The OpenAI-style envelope is unchanged; `limit` is one more field.
    assert set(error) == {"type", "code", "message", "request_id", "limit"}
    assert error["code"] == "budget_exceeded" and error["type"] == "rate_limit_error"
    assert error["limit"] == {
        "kind": "monthly_budget",
        "scope": "customer",
        "cap": "1.00",
        "spent": "1.12",
        "currency": "USD",
        "resets_at": first_of_next_month().strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    assert all(isinstance(value, str) for value in error["limit"].values())  # never floats
    assert int(refused["headers"]["X-RateLimit-Reset"]) == int(first_of_next_month().timestamp())


def test_a_token_budget_refusal_names_the_token_scope_in_the_body(app, priced, bedrock):
    customer = put_customer(priced)
    token, _ = put_token(priced, customer, monthly_budget_micros=UNIT // 2)
    answer(bedrock.stubber, 4)
    assert [app.handle(event(nova(), token=token))["statusCode"] for _ in range(4)] == [200] * 4
    limit = body_of(app.handle(event(nova(), token=token)))["error"]["limit"]
    assert (limit["kind"], limit["scope"], limit["cap"], limit["spent"]) == (
        "monthly_budget",
        "token",
        "0.50",
        "0.56",
    )


def test_a_budget_of_zero_is_refused_with_its_cap_and_no_spend(app, priced):
    customer = put_customer(priced, monthly_budget_micros=0)
    token, _ = put_token(priced, customer)
    refused = app.handle(event(nova(), token=token))
    error = body_of(refused)["error"]
    assert error["code"] == "budget_exceeded"
    assert error["message"].startswith("Monthly budget of 0.00 USD reached; it resets on")
    assert error["limit"]["cap"] == "0.00" and "spent" not in error["limit"]
    assert refused["headers"]["X-RateLimit-Limit-Budget-Month"] == "0.00 USD"


def test_an_insufficient_credit_refusal_carries_granted_used_and_available(app, priced, bedrock):
    customer = put_customer(priced, prepaid=True)
    contract.put_credit(priced, customer.customer_id, granted_micros=UNIT, version=1)
    token, _ = put_token(priced, customer)
    answer(bedrock.stubber, 8)
    assert [app.handle(event(nova(), token=token))["statusCode"] for _ in range(8)] == [200] * 8
    refused = app.handle(event(nova(), token=token))
    assert refused["statusCode"] == 402
    error = body_of(refused)["error"]
    assert error["code"] == "insufficient_credit"
    assert error["limit"] == {
        "kind": "prepaid_credit",
        "scope": "customer",
        "cap": "1.00",
        "spent": "1.12",
        "available": "0.00",
        "currency": "USD",
    }


def test_the_bedrock_runtime_paths_keep_the_aws_error_shape(app, priced, bedrock):
    customer = put_customer(priced, monthly_budget_micros=1)
    token, _ = put_token(priced, customer)
    answer(bedrock.stubber)
    body = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
    path = f"/model/{NOVA_MICRO}/converse"
    assert app.handle(event(body, token=token, path=path))["statusCode"] == 200
    refused = app.handle(event(body, token=token, path=path))
    assert refused["headers"]["x-amzn-ErrorType"] == "ServiceQuotaExceededException"
    assert set(json.loads(refused["body"])) == {"message"}


def test_amounts_are_exact_decimal_strings():
    assert limits.amount(10_120_000) == "10.12"
    assert limits.amount(204_000) == "0.204"
    assert limits.amount(1) == "0.000001"
    assert limits.amount(0) == "0.00"
    assert limits.amount(12 * UNIT) == "12.00"
    assert Decimal(limits.amount(10**15)) == Decimal(10**9)


# --- a token's tokens per minute -------------------------------------------------------------


def test_a_tokens_tokens_per_minute_limit_refuses_with_the_token_scope(app, dynamodb, bedrock):
    """Token limit 150 tokens a minute, the customer's 100,000: the first call (hold 102,
    settled to 100) passes, the second (100, under the warning threshold of 120) passes, the
    third (200 >= 150) is refused by the token."""
    second = datetime.now(UTC).second
    if second >= 50:  # the three calls must fall in one minute
        time.sleep(61 - second)
    customer = put_customer(dynamodb, tpm_limit=100_000)
    token, _ = put_token(dynamodb, customer, tpm_limit=150)
    for _ in range(2):
        bedrock.stubber.add_response(
            "converse", converse_response(input_tokens=60, output_tokens=40)
        )
    assert app.handle(event(nova(), token=token))["statusCode"] == 200
    assert app.handle(event(nova(), token=token))["statusCode"] == 200
    refused = app.handle(event(nova(), token=token))
    assert refused["statusCode"] == 429
    error = body_of(refused)["error"]
    assert error["code"] == "tpm_limit_exceeded"
    assert error["message"].startswith("Token tokens-per-minute limit of 150 reached; retry in")
    headers = refused["headers"]
    assert headers["X-RateLimit-Scope"] == "token"
    assert headers["X-RateLimit-Limit"] == "150" and headers["X-RateLimit-Remaining"] == "0"
    assert headers["X-RateLimit-Limit-Tokens-Minute"] == "150"
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert int(headers["X-RateLimit-Reset"]) % 60 == 0
    other, _ = put_token(dynamodb, customer)  # the customer's other tokens are not held back
    bedrock.stubber.add_response("converse", converse_response())
    assert app.handle(event(nova(), token=other))["statusCode"] == 200


# --- fifty calls in flight against a token's budget ------------------------------------------


def test_fifty_calls_in_flight_overshoot_a_tokens_budget_by_at_most_one_call(moto_server):
    """Token budget 1.00 (the customer has none) and 50 calls at once in 50 containers. Each
    holds 0.204 in flight on the token's MONTH#, so at most 1.00 / 0.204 + 1 = 5 are admitted
    (0, 0.204, ..., 0.816 are under 1.00; 1.02 is not): the holds exceed the budget by less
    than one call's hold (0.204), and once the calls report, the token's spend is exactly
    5 x 0.14 = 0.70."""

    def client():
        return boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_server)

    setup = client()
    contract.create_tables(setup)
    put_price(setup, version=time.time_ns())  # the server may hold an earlier test's item
    customer = put_customer(setup)
    token, item = put_token(setup, customer, monthly_budget_micros=UNIT)
    bedrock = HeldBedrock(converse_response(input_tokens=60, output_tokens=40))
    refused = []
    barrier = threading.Barrier(50)

    def one_container(_):
        app = make_app(client(), bedrock)
        barrier.wait()
        response = app.handle(event(nova(), token=token))
        if response["statusCode"] != 200:
            refused.append(response)
        return response["statusCode"]

    token_pk = contract.token_counter_pk(item.token_id)
    with ThreadPoolExecutor(max_workers=50) as pool:
        futures = [pool.submit(one_container, i) for i in range(50)]
        deadline = time.monotonic() + 60
        while bedrock.in_flight + len(refused) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        held = counter(setup, token_pk, month_sk())[contract.SPEND_MICROS]
        bedrock.release.set()
        statuses = [f.result() for f in futures]
    admitted = statuses.count(200)
    assert admitted == 5 and len(refused) == 45
    assert held == admitted * hold() and held - UNIT < hold()  # over by less than one hold
    bodies = [json.loads(r["body"])["error"] for r in refused]
    assert {b["code"] for b in bodies} == {"budget_exceeded"}
    assert {b["limit"]["scope"] for b in bodies} == {"token"}
    assert {r["headers"]["X-RateLimit-Scope"] for r in refused} == {"token"}
    assert counter(setup, token_pk, month_sk())[contract.SPEND_MICROS] == admitted * COST
    customer_month = counter(setup, contract.counter_pk(customer.customer_id), month_sk())
    assert customer_month[contract.SPEND_MICROS] == admitted * COST


# --- the account changing during the whole admission -----------------------------------------


class PortalKeepsChanging:
    """DynamoDB, with the portal writing the customer item (a newer version) right before every
    admission transaction: each attempt is refused on the version and read again."""

    def __init__(self, client, customer):
        self._client, self.customer, self.admissions = client, customer, 0

    def __getattr__(self, name):
        return getattr(self._client, name)

    def transact_write_items(self, **kwargs):
        self.admissions += 1
        self.customer = contract.CustomerItem(
            **{**self.customer.__dict__, "version": self.customer.version + 1}
        )
        assert contract.put_customer(self._client, self.customer)
        return self._client.transact_write_items(**kwargs)


def test_an_account_changing_on_every_attempt_is_a_retryable_503(dynamodb):
    customer = put_customer(dynamodb)
    token, _ = put_token(dynamodb, customer)
    changing = PortalKeepsChanging(dynamodb, customer)
    app = make_app(changing)
    refused = app.handle(event(chat(), token=token))
    assert refused["statusCode"] == 503
    error = body_of(refused)["error"]
    assert error["code"] == "service_unavailable" and error["type"] == "api_error"
    assert "retry" in error["message"]
    assert refused["headers"]["Retry-After"] == "1"
    assert changing.admissions == limits.MAX_ATTEMPTS
    # Once the portal stops, the next request is admitted.
    assert make_app(dynamodb).handle(event(chat(), token=token))["statusCode"] == 200
