"""Prepaid credit end to end: the portal's real services write the items, the real proxy
handler admits or refuses against them (moto DynamoDB, Bedrock stubbed).

The price is set at the proxy as in tests/proxy/test_money_limits.py: 1.00 per 1,000 input and
2.00 per 1,000 output tokens, so each call (60 in, 40 out) costs 0.14, and admission holds at
most 0.204 until the call reports.
"""

from datetime import date
from decimal import Decimal as D

import boto3
import pytest
from botocore.stub import Stubber

from billing.credit_sync import credit_live
from billing.models import Invoice
from billing.services import credit_grant, invoice_issue, invoice_line_add, invoice_void
from core.aws import aws_client
from customers import services
from proxy import contract
from tests.proxy.conftest import body_of, chat, converse_response, event, make_app

pytestmark = pytest.mark.django_db(transaction=True)
COST = 140_000  # one call: 60 x 1,000 + 40 x 2,000 micro-units
UNIT = contract.MICROS_PER_UNIT


def put_price(dynamodb, model_id="amazon.nova-micro-v1:0"):
    rates = contract.PriceRates(
        effective_from=0,
        input_per_1k=1_000_000,
        output_per_1k=2_000_000,
        cache_read_per_1k=1_000_000,
        cache_write_per_1k=1_000_000,
        per_request=0,
    )
    item = contract.PriceItem(model_id=model_id, version=1, currency="USD", current=rates)
    assert contract.put_price(dynamodb, item)


@pytest.fixture
def bedrock(aws):
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    with Stubber(client) as stubber:
        client.stubber = stubber
        yield client


@pytest.fixture
def dynamodb(aws):
    client = aws_client("dynamodb")
    put_price(client)  # the proxy's price of amazon.nova-micro-v1:0
    return client


def call(app, bedrock, token) -> dict:
    # One answer queued per call; a refused call leaves it to the next (they are all alike).
    bedrock.stubber.add_response("converse", converse_response(input_tokens=60, output_tokens=40))
    return app.handle(event(chat(model="nova-micro", max_tokens=100), token=token))


def refused_for_credit(response) -> bool:
    return (
        response["statusCode"] == 402
        and body_of(response)["error"]["code"] == "insufficient_credit"
    )


def test_top_up_invoice_and_void_reach_the_proxy_on_the_next_request(dynamodb, bedrock, staff_user):
    customer = services.customer_create(
        name="Prepaid Co", contact_email="ops@prepaid.example", actor=staff_user
    )
    customer = services.customer_update_limits(customer=customer, prepaid=True, actor=staff_user)
    token = services.token_create(customer=customer, actor=staff_user).plaintext
    app = make_app(dynamodb, bedrock)
    assert contract.get_credit(dynamodb, str(customer.pk)).version == 1  # pushed at the switch

    # A top-up in the portal: the very next request is admitted.
    credit_grant(customer=customer, amount=D("1.00"), by=staff_user)
    assert call(app, bedrock, token)["statusCode"] == 200

    # Used up: 0.14 a call, admitted while some credit is left (8 calls, 1.12 used).
    codes = [call(app, bedrock, token)["statusCode"] for _ in range(8)]
    assert codes == [200] * 7 + [402]
    state = contract.get_credit(dynamodb, str(customer.pk))
    assert state.used_micros == 8 * COST and state.available_micros == UNIT - 8 * COST
    live = credit_live(customer)
    assert live.available == D("-0.12") and live.not_invoiced == D("1.12")
    assert live.wallet == D("1.00")

    # Another top-up: the next request passes again.
    credit_grant(customer=customer, amount=D("1.00"), by=staff_user)
    assert call(app, bedrock, token)["statusCode"] == 200  # 1.26 used of 2.00

    # An invoice paid from the wallet (a month with no calls) leaves nothing available...
    invoice = Invoice.objects.create(
        customer=customer, period_start=date(2020, 1, 1), period_end=date(2020, 1, 31)
    )
    invoice_line_add(invoice=invoice, description="Support", amount=D("0.74"))
    invoice = invoice_issue(invoice=invoice)
    assert invoice.credits_applied == D("0.74")
    assert contract.get_credit(dynamodb, str(customer.pk)).available_micros == 0
    assert refused_for_credit(call(app, bedrock, token))

    # ... and voiding it gives the credit back at once.
    invoice_void(invoice=invoice, reason="Charged by mistake")
    assert call(app, bedrock, token)["statusCode"] == 200
    state = contract.get_credit(dynamodb, str(customer.pk))
    assert state.granted_micros == 2 * UNIT and state.used_micros == 10 * COST


def test_prepaid_without_credit_is_refused_from_the_first_call(dynamodb, bedrock, staff_user):
    customer = services.customer_create(
        name="Prepaid Co", contact_email="ops@prepaid.example", actor=staff_user
    )
    customer = services.customer_update_limits(customer=customer, prepaid=True, actor=staff_user)
    token = services.token_create(customer=customer, actor=staff_user).plaintext
    app = make_app(dynamodb, bedrock)
    assert contract.get_credit(dynamodb, str(customer.pk)).granted_micros == 0
    assert refused_for_credit(call(app, bedrock, token))
