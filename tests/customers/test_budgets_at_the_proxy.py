"""Budgets and the prepaid flag set through the portal's services reach the real proxy handler
(outbox -> moto) and apply on the very next request: the item's newer version is what makes
the proxy read it again."""

from datetime import UTC, datetime

import boto3
import pytest
from botocore.stub import Stubber

from customers import services
from proxy import contract
from tests.proxy.conftest import body_of, chat, converse_response, event, make_app

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
