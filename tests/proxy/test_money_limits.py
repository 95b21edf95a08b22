"""Money at admission: monthly budgets (customer and token) and prepaid credit.

The price used throughout: 1.00 per 1,000 input tokens and 2.00 per 1,000 output tokens
(1,000,000 and 2,000,000 micro-units), so a call of 60 input and 40 output tokens costs
60 x 1,000 + 40 x 2,000 = 140,000 micro-units: 0.14 USD. Each call asks for at most 100
output tokens; "Hello!" is 2 input tokens at four characters a token, so admission holds
(2 + 100) x 2,000 (the highest of the prices) = 204,000 micro-units until the call reports.
"""

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import boto3
import pytest

from proxy import contract, formats, openai_format, prices

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
from .test_limits import count_calls

NOVA_MICRO = "amazon.nova-micro-v1:0"
COST = 140_000  # one call: 60 in, 40 out
UNIT = contract.MICROS_PER_UNIT


def put_price(dynamodb, model_id=NOVA_MICRO, inp=1_000_000, out=2_000_000, version=1):
    rates = contract.PriceRates(
        effective_from=0,
        input_per_1k=inp,
        output_per_1k=out,
        cache_read_per_1k=inp,
        cache_write_per_1k=inp,
        per_request=0,
    )
    item = contract.PriceItem(model_id=model_id, version=version, currency="USD", current=rates)
    assert contract.put_price(dynamodb, item)


def counter(dynamodb, pk, sk) -> dict:
    item = dynamodb.get_item(
        TableName=contract.table_names().usage_counters,
        Key={contract.COUNTER_PK: {"S": pk}, contract.COUNTER_SK: {"S": sk}},
        ConsistentRead=True,
    ).get("Item", {})
    return {name: int(value["N"]) for name, value in item.items() if "N" in value}


def month_sk() -> str:
    return contract.month_sk(datetime.now(UTC).date())


def this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def nova(**extra):
    return chat(model="nova-micro", max_tokens=100, **extra)


def hold() -> int:
    price = prices.Price(NOVA_MICRO, "USD", 1_000_000, 2_000_000, 1_000_000, 1_000_000)
    tokens = formats.quota_hold(openai_format.parse(nova(), {}, {}))
    return prices.hold_micros(price, tokens)


def answer(stubber, times=1):
    for _ in range(times):
        stubber.add_response("converse", converse_response(input_tokens=60, output_tokens=40))


@pytest.fixture
def priced(dynamodb):
    put_price(dynamodb)
    return dynamodb


# --- monthly budgets --------------------------------------------------------------------------


def test_the_hold_is_the_most_the_call_can_cost():
    assert hold() == 204_000 and hold() > COST


def test_customer_budget_warns_then_refuses_with_the_cap_the_spend_and_the_reset(
    app, priced, bedrock
):
    """Budget 1.00: calls are admitted while the month's spend is under it (at 80 % they
    carry a warning); the 8th starts at 0.98 and ends at 1.12; the 9th is refused."""
    customer = put_customer(priced, monthly_budget_micros=1 * UNIT)
    token, _ = put_token(priced, customer)
    answer(bedrock.stubber, 8)
    responses = [app.handle(event(nova(), token=token)) for _ in range(8)]
    assert [r["statusCode"] for r in responses] == [200] * 8
    assert responses[0]["headers"]["X-RateLimit-Limit-Budget-Month"] == "1.00 USD"
    warned = ["X-RateLimit-Warning" in r["headers"] for r in responses]
    # 0.84 after six calls: the 7th is the first past 80 % of 1.00
    assert warned == [False] * 6 + [True, True]
    assert "budget usage above 80% of 1.00 USD" in responses[6]["headers"]["X-RateLimit-Warning"]
    refused = app.handle(event(nova(), token=token))
    error = body_of(refused)["error"]
    assert refused["statusCode"] == 429 and error["code"] == "budget_exceeded"
    first_of_next = datetime.fromtimestamp(int(refused["headers"]["X-RateLimit-Reset"]), UTC)
    assert first_of_next.day == 1 and first_of_next > datetime.now(UTC)
    assert error["message"] == (
        f"Monthly budget of 1.00 USD reached (spent 1.12 USD); it resets on "
        f"{first_of_next:%Y-%m-%d} at 00:00 UTC."
    )
    assert refused["headers"]["X-Budget-Spent"] == "1.12 USD"
    assert int(refused["headers"]["Retry-After"]) > 0
    month = counter(priced, contract.counter_pk(customer.customer_id), month_sk())
    assert month[contract.SPEND_MICROS] == 8 * COST  # holds settled to the exact costs
    assert month["requests"] == 8


def test_spend_is_counted_for_every_customer_even_without_a_budget(app, priced, bedrock):
    customer = put_customer(priced)
    token, _ = put_token(priced, customer)
    answer(bedrock.stubber, 3)
    for _ in range(3):
        assert app.handle(event(nova(), token=token))["statusCode"] == 200
    month = counter(priced, contract.counter_pk(customer.customer_id), month_sk())
    assert month[contract.SPEND_MICROS] == 3 * COST


def test_token_budget_inside_the_customers_refuses_with_the_token_scope(app, priced, bedrock):
    customer = put_customer(priced, monthly_budget_micros=100 * UNIT)
    limited, item = put_token(priced, customer, monthly_budget_micros=UNIT // 2)
    other, _ = put_token(priced, customer)
    answer(bedrock.stubber, 5)
    # 0.42 after three calls: the 4th is admitted (0.56), the 5th refused
    statuses = [app.handle(event(nova(), token=limited))["statusCode"] for _ in range(4)]
    assert statuses == [200] * 4
    refused = app.handle(event(nova(), token=limited))
    error = body_of(refused)["error"]
    assert error["code"] == "budget_exceeded" and refused["headers"]["X-RateLimit-Scope"] == "token"
    assert error["message"].startswith("Token monthly budget of 0.50 USD reached (spent 0.56 USD)")
    assert app.handle(event(nova(), token=other))["statusCode"] == 200
    token_month = counter(priced, contract.token_counter_pk(item.token_id), month_sk())
    assert token_month[contract.SPEND_MICROS] == 4 * COST
    customer_month = counter(priced, contract.counter_pk(customer.customer_id), month_sk())
    assert customer_month[contract.SPEND_MICROS] == 5 * COST


def test_a_failed_call_gives_its_money_hold_back(app, priced, bedrock):
    customer = put_customer(priced, monthly_budget_micros=UNIT, prepaid=True)
    contract.put_credit(priced, customer.customer_id, granted_micros=UNIT, version=1)
    token, _ = put_token(priced, customer)
    bedrock.stubber.add_client_error(
        "converse", service_error_code="ValidationException", http_status_code=400
    )
    assert app.handle(event(nova(), token=token))["statusCode"] == 400
    month = counter(priced, contract.counter_pk(customer.customer_id), month_sk())
    assert month.get(contract.SPEND_MICROS, 0) == 0
    credit = contract.get_credit(priced, customer.customer_id)
    assert credit.used_micros == 0 and credit.used_by_month == {this_month(): 0}


def test_free_models_are_never_refused_for_money(app, priced):
    customer = put_customer(priced, monthly_budget_micros=UNIT, prepaid=True)
    token, _ = put_token(priced, customer)  # no credit item at all: nothing granted
    for _ in range(3):
        assert app.handle(event(chat(), token=token))["statusCode"] == 200
    assert contract.get_credit(priced, customer.customer_id).used_micros == 0


def test_an_unpriced_model_is_refused_only_where_money_is_counted(app, dynamodb, bedrock):
    """No price item for Nova Micro: a customer with a budget cannot use it; one without
    money limits can, and its spend is not counted."""
    capped = put_customer(dynamodb, monthly_budget_micros=UNIT)
    token, _ = put_token(dynamodb, capped)
    refused = app.handle(event(nova(), token=token))
    assert refused["statusCode"] == 403
    assert body_of(refused)["error"]["code"] == "model_not_priced"
    plain = put_customer(dynamodb)
    token, _ = put_token(dynamodb, plain)
    answer(bedrock.stubber)
    assert app.handle(event(nova(), token=token))["statusCode"] == 200
    month = counter(dynamodb, contract.counter_pk(plain.customer_id), month_sk())
    assert month["requests"] == 1 and contract.SPEND_MICROS not in month


def test_bedrock_runtime_callers_get_a_quota_error_they_do_not_retry(app, priced, bedrock):
    customer = put_customer(priced, monthly_budget_micros=1)
    token, _ = put_token(priced, customer)
    answer(bedrock.stubber)
    body = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
    path = f"/model/{NOVA_MICRO}/converse"
    assert app.handle(event(body, token=token, path=path))["statusCode"] == 200
    refused = app.handle(event(body, token=token, path=path))
    assert refused["statusCode"] == 400
    assert refused["headers"]["x-amzn-ErrorType"] == "ServiceQuotaExceededException"


def test_two_dynamodb_calls_per_warm_request_with_money_limits_on(priced, bedrock):
    app = make_app(priced, bedrock)
    customer = put_customer(priced, monthly_budget_micros=100 * UNIT, prepaid=True)
    contract.put_credit(priced, customer.customer_id, granted_micros=100 * UNIT, version=1)
    token, _ = put_token(priced, customer, monthly_budget_micros=50 * UNIT)
    answer(bedrock.stubber, 3)
    assert app.handle(event(nova(), token=token))["statusCode"] == 200  # warms both caches
    calls = count_calls(priced)
    for _ in range(2):
        assert app.handle(event(nova(), token=token))["statusCode"] == 200
    assert calls == ["TransactWriteItems"] * 4


# --- prepaid credit ---------------------------------------------------------------------------


def test_prepaid_credit_refuses_when_used_up_and_a_top_up_reopens_on_the_next_request(
    app, priced, bedrock
):
    customer = put_customer(priced, prepaid=True)
    token, _ = put_token(priced, customer)
    refused = app.handle(event(nova(), token=token))  # nothing granted yet
    assert refused["statusCode"] == 402
    assert body_of(refused)["error"]["code"] == "insufficient_credit"
    contract.put_credit(priced, customer.customer_id, granted_micros=0, version=1)
    refused = app.handle(event(nova(), token=token))  # granted, but nothing: still refused
    assert body_of(refused)["error"]["code"] == "insufficient_credit"
    contract.put_credit(priced, customer.customer_id, granted_micros=UNIT, version=2)
    answer(bedrock.stubber, 9)
    # 0.98 used after seven calls: the 8th is admitted (1.12), the 9th refused
    assert [app.handle(event(nova(), token=token))["statusCode"] for _ in range(8)] == [200] * 8
    refused = app.handle(event(nova(), token=token))
    error = body_of(refused)["error"]
    assert refused["statusCode"] == 402 and error["code"] == "insufficient_credit"
    assert "available: 0.00 USD" in error["message"]
    assert error["type"] == "billing_error"
    credit = contract.get_credit(priced, customer.customer_id)
    assert credit.used_micros == 8 * COST and credit.used_by_month == {this_month(): 8 * COST}
    assert credit.available_micros == UNIT - 8 * COST
    # A top-up (the portal sets what is granted, at a newer version): the next request passes.
    contract.put_credit(priced, customer.customer_id, granted_micros=2 * UNIT, version=3)
    assert app.handle(event(nova(), token=token))["statusCode"] == 200
    # A stale delivery of the old amount does not take the top-up back.
    assert not contract.put_credit(priced, customer.customer_id, granted_micros=UNIT, version=2)
    assert contract.get_credit(priced, customer.customer_id).granted_micros == 2 * UNIT


# --- fifty calls in flight --------------------------------------------------------------------


@pytest.mark.parametrize("limit", ["budget", "credit"])
def test_fifty_calls_in_flight_overshoot_by_at_most_one_call(moto_server, limit):
    """Budget (or credit) 1.00 and 50 calls at once in 50 containers. Each call holds 0.204
    while in flight, so at most 1.00 / 0.204 + 1 = 5 are admitted (0, 0.204, ..., 0.816 are
    under 1.00; 1.02 is not): the holds exceed the money by less than one call's hold, and
    once the calls report, the spend is exactly 5 x 0.14 = 0.70."""

    def client():
        return boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_server)

    setup = client()
    contract.create_tables(setup)
    put_price(setup, version=time.time_ns())  # the server may hold an earlier test's item
    if limit == "budget":
        customer = put_customer(setup, monthly_budget_micros=UNIT)
    else:
        customer = put_customer(setup, prepaid=True)
        contract.put_credit(setup, customer.customer_id, granted_micros=UNIT, version=1)
    token, _ = put_token(setup, customer)
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

    with ThreadPoolExecutor(max_workers=50) as pool:
        futures = [pool.submit(one_container, i) for i in range(50)]
        deadline = time.monotonic() + 60
        while bedrock.in_flight + len(refused) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        if limit == "budget":
            month = counter(setup, contract.counter_pk(customer.customer_id), month_sk())
            held = month[contract.SPEND_MICROS]
        else:
            held = contract.get_credit(setup, customer.customer_id).used_micros
        bedrock.release.set()
        statuses = [f.result() for f in futures]
    admitted = statuses.count(200)
    assert admitted == 5 and len(refused) == 45
    assert held == admitted * hold() and held - UNIT < hold()  # over by less than one hold
    codes = {json.loads(r["body"])["error"]["code"] for r in refused}
    assert codes == ({"budget_exceeded"} if limit == "budget" else {"insufficient_credit"})
    month = counter(setup, contract.counter_pk(customer.customer_id), month_sk())
    assert month[contract.SPEND_MICROS] == admitted * COST  # settled exactly
    if limit == "credit":
        assert contract.get_credit(setup, customer.customer_id).used_micros == admitted * COST
