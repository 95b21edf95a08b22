"""Limits operators sell, on a customer spread over admission shards (proxy/sharded.py): money
budgets (the customer's and a token's) refuse with the price's currency and the spend summed
over the shards, tokens per minute refuse in both scopes, and a prepaid customer is admitted by
the transaction whatever its shards.

Prices as in test_money_limits: a call costs 0.14 and holds 0.204 in flight. A budget of 1.00
over 4 shards is 0.25 a shard: a shard admits a call at 0 and one at 0.14 (0.28 after), so
exactly 8 calls pass, 1.12 in all, and the 9th is refused.
"""

import json
import time
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from proxy import contract

from .conftest import body_of, converse_response, event, make_app, put_customer, put_token
from .test_hot_customer import admission_items
from .test_money_limits import COST, UNIT, answer, nova, put_price

SHARDS = 4


@pytest.fixture
def priced(dynamodb):
    put_price(dynamodb)
    return dynamodb


def first_of_next_month() -> datetime:
    today = datetime.now(UTC).date()
    return datetime(today.year + (today.month == 12), today.month % 12 + 1, 1, tzinfo=UTC)


def spend_on_shards(dynamodb, customer_id, counter_name="ms") -> int:
    return sum(
        int(item.get(counter_name, {}).get("N", 0))
        for item in admission_items(dynamodb, customer_id)
    )


def test_a_customer_budget_on_shards_refuses_with_currency_and_the_real_spend(priced, bedrock):
    customer = put_customer(priced, monthly_budget_micros=UNIT, counter_shards=SHARDS)
    token, _ = put_token(priced, customer)
    app = make_app(priced, bedrock)
    answer(bedrock.stubber, 8)
    assert [app.handle(event(nova(), token=token))["statusCode"] for _ in range(8)] == [200] * 8
    assert spend_on_shards(priced, customer.customer_id) == 8 * COST
    # A container that knows no shard full asks each of them: it saw them all, the sum is exact.
    refused = make_app(priced, bedrock).handle(event(nova(), token=token))
    assert refused["statusCode"] == 429
    error = body_of(refused)["error"]
    reset = first_of_next_month()
    assert error["code"] == "budget_exceeded"
    assert error["message"] == (
        f"Monthly budget of 1.00 USD reached (spent 1.12 USD); it resets on {reset:%Y-%m-%d} "
        "at 00:00 UTC."
    )
    assert error["limit"] == {
        "kind": "monthly_budget",
        "scope": "customer",
        "cap": "1.00",
        "spent": "1.12",
        "currency": "USD",
        "resets_at": reset.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    headers = refused["headers"]
    assert headers["X-RateLimit-Limit-Budget-Month"] == "1.00 USD"
    assert headers["X-Budget-Spent"] == "1.12 USD"
    assert headers["X-RateLimit-Scope"] == "customer"
    assert headers["X-RateLimit-Reset"] == str(int(reset.timestamp()))
    assert int(headers["Retry-After"]) > 0
    # The container that admitted the 8 calls knows every shard full: it asks one shard, and
    # says honestly that the spend it names is a lower bound.
    for _ in range(3):
        again = body_of(app.handle(event(nova(), token=token)))["error"]
        assert again["code"] == "budget_exceeded"
        if again["limit"].get("spent_is_minimum"):
            assert "(spent at least " in again["message"]
            assert Decimal("1.00") <= Decimal(again["limit"]["spent"]) <= Decimal("1.12")
        else:  # it happened to see every shard during the 8 calls' retries: exact
            assert again["limit"]["spent"] == "1.12"


def test_a_token_budget_on_shards_refuses_with_the_token_scope(priced, bedrock):
    customer = put_customer(priced, counter_shards=SHARDS)
    token, item = put_token(priced, customer, monthly_budget_micros=UNIT)
    app = make_app(priced, bedrock)
    answer(bedrock.stubber, 8)
    assert [app.handle(event(nova(), token=token))["statusCode"] for _ in range(8)] == [200] * 8
    assert spend_on_shards(priced, customer.customer_id, f"T#{item.token_id}#ms") == 8 * COST
    refused = make_app(priced, bedrock).handle(event(nova(), token=token))
    error = body_of(refused)["error"]
    assert refused["statusCode"] == 429 and error["code"] == "budget_exceeded"
    assert error["message"].startswith("Token monthly budget of 1.00 USD reached (spent 1.12 USD)")
    assert (error["limit"]["scope"], error["limit"]["spent"], error["limit"]["currency"]) == (
        "token",
        "1.12",
        "USD",
    )
    assert refused["headers"]["X-RateLimit-Scope"] == "token"
    assert refused["headers"]["X-Budget-Spent"] == "1.12 USD"
    other, _ = put_token(priced, customer)  # the customer's other tokens are not held back
    answer(bedrock.stubber)
    assert app.handle(event(nova(), token=other))["statusCode"] == 200


@pytest.mark.parametrize("scope", ["customer", "token"])
def test_tokens_per_minute_on_shards_refuse_in_both_scopes(dynamodb, bedrock, scope):
    """400 tokens a minute over 4 shards is 100 a shard: a shard admits one call (hold 102,
    settled to 100) and is then full, so 4 calls pass and the 5th is refused."""
    second = datetime.now(UTC).second
    if second >= 45:  # every call in one minute
        time.sleep(61 - second)
    if scope == "customer":
        customer = put_customer(dynamodb, tpm_limit=400, counter_shards=SHARDS)
        token, _ = put_token(dynamodb, customer)
    else:
        customer = put_customer(dynamodb, counter_shards=SHARDS)
        token, _ = put_token(dynamodb, customer, tpm_limit=400)
    app = make_app(dynamodb, bedrock)
    for _ in range(4):
        bedrock.stubber.add_response(
            "converse", converse_response(input_tokens=60, output_tokens=40)
        )
    assert [app.handle(event(nova(), token=token))["statusCode"] for _ in range(4)] == [200] * 4
    refused = app.handle(event(nova(), token=token))
    assert refused["statusCode"] == 429
    error = body_of(refused)["error"]
    assert error["code"] == "tpm_limit_exceeded"
    prefix = "Token tokens-per-minute" if scope == "token" else "Tokens-per-minute"
    assert error["message"].startswith(f"{prefix} limit of 400 reached; retry in")
    headers = refused["headers"]
    assert headers["X-RateLimit-Scope"] == scope
    assert headers["X-RateLimit-Limit-Tokens-Minute"] == "400"
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert "limit" not in error  # structured fields are for money refusals


def test_a_prepaid_customer_with_shards_is_admitted_by_the_transaction(priced, bedrock):
    customer = put_customer(priced, prepaid=True, counter_shards=SHARDS)
    contract.put_credit(priced, customer.customer_id, granted_micros=UNIT, version=1)
    token, _ = put_token(priced, customer)
    app = make_app(priced, bedrock)
    answer(bedrock.stubber, 8)
    assert [app.handle(event(nova(), token=token))["statusCode"] for _ in range(8)] == [200] * 8
    refused = app.handle(event(nova(), token=token))
    assert refused["statusCode"] == 402
    error = json.loads(refused["body"])["error"]
    assert error["code"] == "insufficient_credit" and error["limit"]["available"] == "0.00"
    assert admission_items(priced, customer.customer_id) == []  # no shard was written
    assert contract.get_credit(priced, customer.customer_id).used_micros == 8 * COST
