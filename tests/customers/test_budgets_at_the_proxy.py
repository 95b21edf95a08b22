"""Budgets and the prepaid flag set through the portal's services reach the real proxy handler
(outbox -> moto) and apply on the very next request: the item's newer version is what makes
the proxy read it again."""

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from decimal import Decimal

import boto3
import pytest
from botocore.stub import Stubber

from customers import services
from proxy import contract
from tests.proxy.conftest import (  # noqa: F401 (moto_server and its fixtures are used)
    atomic_moto,
    aws_env,
    body_of,
    chat,
    converse_response,
    event,
    make_app,
    moto_server,
)
from tests.proxy.test_concurrency import HeldBedrock

pytestmark = pytest.mark.django_db(transaction=True)

NOVA_MICRO = "amazon.nova-micro-v1:0"


@pytest.fixture
def bedrock(aws):
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        client.stubber = stubber
        yield client


@pytest.fixture
def proxy_app(aws, bedrock):
    dynamodb = aws.client("dynamodb")
    # 1.00 per 1,000 input tokens, 2.00 per 1,000 output tokens: a call of 60 in and 40 out
    # costs 0.14.
    rates = contract.PriceRates(
        effective_from=0,
        input_per_1k=1_000_000,
        output_per_1k=2_000_000,
        cache_read_per_1k=1_000_000,
        cache_write_per_1k=1_000_000,
    )
    assert contract.put_price(
        dynamodb, contract.PriceItem(model_id=NOVA_MICRO, version=1, currency="USD", current=rates)
    )
    return make_app(dynamodb, bedrock)


def call(app, bedrock, token, *, admitted=True):
    """One call of 60 input and 40 output tokens; Bedrock answers only an admitted one."""
    if admitted:
        answer = converse_response(input_tokens=60, output_tokens=40)
        bedrock.stubber.add_response("converse", answer)
    return app.handle(event(chat(model="nova-micro", max_tokens=100), token=token))


def test_a_lowered_budget_applies_on_the_next_request(aws, proxy_app, bedrock, staff_user):
    customer = services.customer_create(
        name="Acme", contact_email="a@acme.example", actor=staff_user, monthly_budget="10.00"
    )
    issued = services.token_create(customer=customer, actor=staff_user)
    assert call(proxy_app, bedrock, issued.plaintext)["statusCode"] == 200

    services.customer_update_limits(customer=customer, actor=staff_user, monthly_budget="0.10")
    refused = call(proxy_app, bedrock, issued.plaintext, admitted=False)
    assert refused["statusCode"] == 429
    assert body_of(refused)["error"]["code"] == "budget_exceeded"
    assert refused["headers"]["X-RateLimit-Scope"] == "customer"

    services.customer_update_limits(customer=customer, actor=staff_user, monthly_budget=None)
    assert call(proxy_app, bedrock, issued.plaintext)["statusCode"] == 200

    # The token's own budget counts from when it has one: 0, then 0.14, then refused at 0.28.
    services.token_update_limits(token=issued.token, actor=staff_user, monthly_budget="0.20")
    assert call(proxy_app, bedrock, issued.plaintext)["statusCode"] == 200
    assert call(proxy_app, bedrock, issued.plaintext)["statusCode"] == 200
    refused = call(proxy_app, bedrock, issued.plaintext, admitted=False)
    assert refused["statusCode"] == 429 and refused["headers"]["X-RateLimit-Scope"] == "token"
    bedrock.stubber.assert_no_pending_responses()

    today = datetime.now(UTC).date()
    month = contract.get_usage_snapshot(aws.client("dynamodb"), str(customer.pk), today)["month"]
    assert month[contract.SPEND_MICROS] == 4 * 140_000  # every admitted call, settled exactly


def test_prepaid_turned_on_applies_on_the_next_request(aws, proxy_app, bedrock, staff_user):
    customer = services.customer_create(
        name="Acme", contact_email="a@acme.example", actor=staff_user
    )
    issued = services.token_create(customer=customer, actor=staff_user)
    assert call(proxy_app, bedrock, issued.plaintext)["statusCode"] == 200
    # Credit used up in an earlier prepaid period, and none granted since (an empty wallet).
    aws.client("dynamodb").update_item(
        TableName=contract.table_names().usage_counters,
        Key={"pk": {"S": contract.counter_pk(str(customer.pk))}, "sk": {"S": contract.CREDIT_SK}},
        UpdateExpression="ADD #u :u",
        ExpressionAttributeNames={"#u": contract.CREDIT_USED},
        ExpressionAttributeValues={":u": {"N": "1000"}},
    )
    services.customer_update_limits(customer=customer, actor=staff_user, prepaid=True)
    refused = call(proxy_app, bedrock, issued.plaintext, admitted=False)
    assert refused["statusCode"] == 402, refused
    assert body_of(refused)["error"]["code"] == "insufficient_credit"
    services.customer_update_limits(customer=customer, actor=staff_user, prepaid=False)
    assert call(proxy_app, bedrock, issued.plaintext)["statusCode"] == 200


# --- fifty calls at once, against budgets the portal set ----------------------------------------

# Each call asks for at most 100 output tokens of "Hello!" (2 input tokens at four characters a
# token): admission holds (2 + 100) x 2.00 / 1,000 = 0.204 until the call reports, the most one
# such call can cost; it then settles at its real cost, 0.14 (60 in, 40 out).
ONE_CALL_HOLD = 204_000
ONE_CALL_COST = 140_000


@pytest.fixture
def portal_on_moto_server(moto_server, settings):  # noqa: F811 (the proxy tests' fixture)
    """The portal's own AWS clients pointed at moto's threaded server (as `make run` does), so
    the outbox writes the items the fifty proxy containers read over HTTP."""
    from django.core.management import call_command

    settings.AWS_ENDPOINT_URL = moto_server
    call_command("create_aws_resources", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
    return moto_server


@pytest.mark.parametrize(
    ("customer_budget", "token_budget", "admitted", "scope"),
    [
        # 1.00 / 0.204: 0, 0.204, ..., 0.816 are under the budget, 1.02 is not: 5 admitted
        ("1.00", None, 5, "customer"),
        # the token's 0.50 inside the customer's 100.00: 0, 0.204, 0.408 are under it: 3
        ("100.00", "0.50", 3, "token"),
    ],
)
def test_fifty_calls_at_once_overshoot_a_portal_budget_by_at_most_one_call(
    portal_on_moto_server, staff_user, customer_budget, token_budget, admitted, scope
):
    """The bound: while the calls are in flight, the money held exceeds the budget by less than
    one call's hold (the most one call can cost), and once they report, the month's spend
    exceeds the budget by at most one call's cost (here it stays under it: holds are higher
    than real costs)."""
    dynamodb = boto3.client("dynamodb", region_name="us-east-1", endpoint_url=portal_on_moto_server)
    rates = contract.PriceRates(
        effective_from=0,
        input_per_1k=1_000_000,
        output_per_1k=2_000_000,
        cache_read_per_1k=1_000_000,
        cache_write_per_1k=1_000_000,
    )
    item = contract.PriceItem(
        model_id=NOVA_MICRO, version=time.time_ns(), currency="USD", current=rates
    )
    assert contract.put_price(dynamodb, item)  # the server may hold an earlier test's item

    customer = services.customer_create(
        name="Acme", contact_email="a@acme.example", actor=staff_user
    )
    services.customer_update_limits(
        customer=customer, actor=staff_user, monthly_budget=customer_budget
    )
    issued = services.token_create(customer=customer, actor=staff_user, label="batch")
    if token_budget:
        services.token_update_limits(
            token=issued.token, actor=staff_user, monthly_budget=token_budget
        )
    # what the outbox wrote is what the proxy will read
    budget = int(Decimal(token_budget or customer_budget) * contract.MICROS_PER_UNIT)
    customer_item = contract.get_customer(dynamodb, str(customer.pk))
    token_item = contract.get_token(dynamodb, contract.hash_token(issued.plaintext))
    assert customer_item.monthly_budget_micros == int(Decimal(customer_budget) * 1_000_000)
    assert token_item.monthly_budget_micros == (budget if token_budget else None)

    bedrock = HeldBedrock(converse_response(input_tokens=60, output_tokens=40))
    refused, barrier = [], threading.Barrier(50)

    def one_container(_):
        client = boto3.client(
            "dynamodb", region_name="us-east-1", endpoint_url=portal_on_moto_server
        )
        app = make_app(client, bedrock)
        barrier.wait()
        response = app.handle(
            event(chat(model="nova-micro", max_tokens=100), token=issued.plaintext)
        )
        if response["statusCode"] != 200:
            refused.append(response)
        return response["statusCode"]

    today = datetime.now(UTC).date()
    scope_pk = (
        contract.counter_pk(str(customer.pk))
        if scope == "customer"
        else contract.token_counter_pk(str(issued.token.pk))
    )

    def month_spend():
        found = dynamodb.get_item(
            TableName=contract.table_names().usage_counters,
            Key={
                contract.COUNTER_PK: {"S": scope_pk},
                contract.COUNTER_SK: {"S": contract.month_sk(today)},
            },
            ConsistentRead=True,
        ).get("Item", {})
        return int(found.get(contract.SPEND_MICROS, {}).get("N", 0))

    with ThreadPoolExecutor(max_workers=50) as pool:
        futures = [pool.submit(one_container, i) for i in range(50)]
        deadline = time.monotonic() + 60
        while bedrock.in_flight + len(refused) < 50 and time.monotonic() < deadline:
            time.sleep(0.05)
        held = month_spend()
        bedrock.release.set()
        statuses = [future.result() for future in futures]

    assert statuses.count(200) == admitted and len(refused) == 50 - admitted
    assert held == admitted * ONE_CALL_HOLD
    assert held - budget < ONE_CALL_HOLD  # in flight: over by less than one call's hold
    assert {body_of(r)["error"]["code"] for r in refused} == {"budget_exceeded"}
    assert {r["headers"]["X-RateLimit-Scope"] for r in refused} == {scope}
    settled = month_spend()
    assert settled == admitted * ONE_CALL_COST  # each call settled at its real cost
    assert settled - budget <= ONE_CALL_COST  # reported: over by at most one call's cost
