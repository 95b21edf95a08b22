"""Per-token limits and tokens per minute, in the one admission transaction.

A token may carry its own daily request limit, requests per minute, monthly token quota, tokens
per minute and models, inside its customer's: a request must pass both scopes. Token counters
live under pk TOKEN#<token_id> with the customer's sort keys; tokens per minute are held on the
MIN# item (`tokens`) like the monthly quota on MONTH#, and settled on the same item.
"""

from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from proxy import contract, formats, openai_format

from .conftest import body_of, chat, converse_response, event, put_customer, put_token
from .test_limits import count_calls

TODAY = datetime.now(UTC).date


def counter(dynamodb, pk, sk) -> dict:
    item = dynamodb.get_item(
        TableName=contract.table_names().usage_counters,
        Key={contract.COUNTER_PK: {"S": pk}, contract.COUNTER_SK: {"S": sk}},
        ConsistentRead=True,
    ).get("Item", {})
    return {name: int(value["N"]) for name, value in item.items() if "N" in value}


def minute_of(response) -> str:
    """The MIN# sort key of the minute a response was admitted in (its reset minus 60 s)."""
    reset = int(response["headers"]["X-RateLimit-Reset-Tokens-Minute"]) - 60
    return contract.minute_sk(datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%dT%H:%M"))


def hold_of(body: dict, headers=None) -> int:
    """What admission holds for this chat body (formats.quota_hold on the parsed call)."""
    return formats.quota_hold(openai_format.parse(body, headers or {}, {}))


@pytest.fixture(autouse=True)
def _not_at_the_end_of_a_minute():
    """Tests that read one minute's counter must not straddle two minutes."""
    import time

    second = datetime.now(UTC).second
    if second >= 55:
        time.sleep(61 - second)


# --- requests per day and per minute of a token ---------------------------------------------


def test_token_daily_limit_inside_the_customers_refuses_with_the_token_scope(app, dynamodb):
    customer = put_customer(dynamodb, daily_request_limit=10)
    limited, limited_item = put_token(dynamodb, customer, daily_request_limit=3)
    other, _ = put_token(dynamodb, customer)
    statuses = [app.handle(event(chat(), token=limited))["statusCode"] for _ in range(3)]
    assert statuses == [200, 200, 200]
    refused = app.handle(event(chat(), token=limited))
    assert refused["statusCode"] == 429
    error = body_of(refused)["error"]
    assert error["code"] == "daily_limit_exceeded"
    assert error["message"].startswith("Token daily request limit of 3 reached")
    headers = refused["headers"]
    assert headers["X-RateLimit-Scope"] == "token"
    assert headers["X-RateLimit-Limit"] == "3" and headers["X-RateLimit-Remaining"] == "0"
    assert headers["X-RateLimit-Limit-Requests-Day"] == "3"
    assert 0 < int(headers["Retry-After"]) <= 86400
    # another token of the same customer is still admitted: the customer's 10 are not used up
    assert app.handle(event(chat(), token=other))["statusCode"] == 200
    day = contract.day_sk(TODAY())
    token_pk = contract.token_counter_pk(limited_item.token_id)
    assert counter(dynamodb, token_pk, day)["requests"] == 3  # the refusal is not counted
    assert (
        contract.get_usage_snapshot(dynamodb, customer.customer_id, TODAY())["day"]["requests"] == 4
    )


def test_a_token_limit_above_the_customers_changes_nothing_the_customer_refuses_first(
    app, dynamodb
):
    customer = put_customer(dynamodb, daily_request_limit=2)
    token, _ = put_token(dynamodb, customer, daily_request_limit=50)
    assert [app.handle(event(chat(), token=token))["statusCode"] for _ in range(2)] == [200, 200]
    refused = app.handle(event(chat(), token=token))
    assert refused["headers"]["X-RateLimit-Scope"] == "customer"
    assert body_of(refused)["error"]["message"].startswith("Daily request limit of 2 reached")
    # admitted responses name the tighter of the two limits
    customer = put_customer(dynamodb, daily_request_limit=100)
    token, _ = put_token(dynamodb, customer, daily_request_limit=7)
    admitted = app.handle(event(chat(), token=token))
    assert admitted["headers"]["X-RateLimit-Limit-Requests-Day"] == "7"


def test_token_rpm_limit_and_its_warning(app, dynamodb):
    customer = put_customer(dynamodb, rpm_limit=100)
    token, _ = put_token(dynamodb, customer, rpm_limit=5)
    responses = [app.handle(event(chat(), token=token)) for _ in range(6)]
    assert [r["statusCode"] for r in responses] == [200] * 5 + [429]
    assert responses[4]["headers"]["X-RateLimit-Warning"] == "token rpm usage above 80% of 5"
    assert responses[4]["headers"]["X-RateLimit-Limit-Requests-Minute"] == "5"
    error = body_of(responses[5])["error"]
    assert error["code"] == "rpm_limit_exceeded"
    assert error["message"].startswith("Token requests-per-minute limit of 5 reached")
    assert responses[5]["headers"]["X-RateLimit-Scope"] == "token"
    assert 1 <= int(responses[5]["headers"]["Retry-After"]) <= 60


def test_customer_refusals_name_their_scope_too(app, dynamodb):
    customer = put_customer(dynamodb, rpm_limit=1)
    token, _ = put_token(dynamodb, customer)
    assert app.handle(event(chat(), token=token))["statusCode"] == 200
    refused = app.handle(event(chat(), token=token))
    assert refused["headers"]["X-RateLimit-Scope"] == "customer"
    assert body_of(refused)["error"]["message"].startswith("Requests-per-minute limit of 1")


# --- tokens per minute ------------------------------------------------------------------------


def test_customer_tpm_holds_then_settles_exactly_on_the_same_minute_item(app, dynamodb, bedrock):
    customer = put_customer(dynamodb, tpm_limit=300)
    token, _ = put_token(dynamodb, customer)
    body = chat(model="nova-micro", max_tokens=100)
    hold = hold_of(body)
    assert hold == 102  # "Hello!": 2 input tokens at 4 characters a token, + max_tokens
    for _ in range(4):
        bedrock.stubber.add_response(
            "converse", converse_response(input_tokens=70, output_tokens=20)
        )
    first = app.handle(event(body, token=token))
    assert first["statusCode"] == 200
    assert first["headers"]["X-RateLimit-Limit-Tokens-Minute"] == "300"
    minute = minute_of(first)
    pk = contract.counter_pk(customer.customer_id)
    assert counter(dynamodb, pk, minute)["tokens"] == 90  # the hold replaced by 70 + 20
    assert counter(dynamodb, pk, minute)["requests"] == 1
    for _ in range(2):  # 90, then 180: under the warning threshold (80 %: 240)
        response = app.handle(event(body, token=token))
        assert response["statusCode"] == 200 and "X-RateLimit-Warning" not in response["headers"]
    fourth = app.handle(event(body, token=token))  # 270: past 240, under 300
    assert fourth["statusCode"] == 200
    assert fourth["headers"]["X-RateLimit-Warning"] == "tokens-per-minute usage above 80% of 300"
    assert counter(dynamodb, pk, minute)["tokens"] == 360
    refused = app.handle(event(body, token=token))  # 360 >= 300
    assert refused["statusCode"] == 429
    error = body_of(refused)["error"]
    assert error["code"] == "tpm_limit_exceeded" and error["type"] == "rate_limit_error"
    assert error["message"].startswith("Tokens-per-minute limit of 300 reached; retry in")
    headers = refused["headers"]
    assert headers["X-RateLimit-Scope"] == "customer"
    assert headers["X-RateLimit-Limit"] == "300" and headers["X-RateLimit-Remaining"] == "0"
    assert headers["X-RateLimit-Limit-Tokens-Minute"] == "300"
    assert 1 <= int(headers["Retry-After"]) <= 60
    assert int(headers["X-RateLimit-Reset"]) % 60 == 0  # the next minute
    assert counter(dynamodb, pk, minute)["tokens"] == 360  # a refusal holds nothing


def test_token_tpm_and_monthly_quota_settle_on_the_tokens_items(app, dynamodb, bedrock):
    customer = put_customer(dynamodb)
    token, item = put_token(dynamodb, customer, tpm_limit=1000, monthly_token_quota=5000)
    bedrock.stubber.add_response("converse", converse_response(input_tokens=30, output_tokens=12))
    response = app.handle(event(chat(model="nova-micro", max_tokens=100), token=token))
    assert response["statusCode"] == 200
    pk = contract.token_counter_pk(item.token_id)
    assert counter(dynamodb, pk, minute_of(response))["tokens"] == 42
    month = counter(dynamodb, pk, contract.month_sk(TODAY()))
    assert month[contract.QUOTA_TOKENS] == 42
    assert month["ttl"] > 0
    # the customer has neither limit: its MIN# item is not written, its MONTH# counts as ever
    customer_pk = contract.counter_pk(customer.customer_id)
    assert counter(dynamodb, customer_pk, minute_of(response)) == {}
    snapshot = contract.get_usage_snapshot(dynamodb, customer.customer_id, TODAY())
    assert snapshot["month"][contract.QUOTA_TOKENS] == 42


def test_token_monthly_quota_refuses_with_the_token_scope(app, dynamodb, bedrock):
    customer = put_customer(dynamodb, monthly_token_quota=10_000)
    token, _ = put_token(dynamodb, customer, monthly_token_quota=100)
    bedrock.stubber.add_response("converse", converse_response(input_tokens=80, output_tokens=30))
    assert (
        app.handle(event(chat(model="nova-micro", max_tokens=50), token=token))["statusCode"] == 200
    )
    refused = app.handle(event(chat(model="nova-micro", max_tokens=50), token=token))
    assert body_of(refused)["error"]["code"] == "monthly_quota_exceeded"
    assert body_of(refused)["error"]["message"].startswith("Token monthly token quota of 100")
    assert refused["headers"]["X-RateLimit-Scope"] == "token"


def test_rpm_and_tpm_on_one_minute_item_tell_which_refused(app, dynamodb, bedrock):
    """Both limits are conditions of the one MIN# update; the item as it was (returned with
    the cancellation) says which of them refused."""
    customer = put_customer(dynamodb, rpm_limit=2, tpm_limit=100_000)
    token, _ = put_token(dynamodb, customer)
    assert [app.handle(event(chat(), token=token))["statusCode"] for _ in range(2)] == [200, 200]
    refused = app.handle(event(chat(), token=token))
    assert body_of(refused)["error"]["code"] == "rpm_limit_exceeded"

    customer = put_customer(dynamodb, rpm_limit=1000, tpm_limit=50)
    token, _ = put_token(dynamodb, customer)
    bedrock.stubber.add_response("converse", converse_response(input_tokens=40, output_tokens=20))
    assert (
        app.handle(event(chat(model="nova-micro", max_tokens=10), token=token))["statusCode"] == 200
    )
    refused = app.handle(event(chat(model="nova-micro", max_tokens=10), token=token))
    assert body_of(refused)["error"]["code"] == "tpm_limit_exceeded"


class WithoutOldItems:
    """A DynamoDB client whose cancellations carry no item (as if the store ignored ALL_OLD)."""

    def __init__(self, client):
        self.client = client

    def __getattr__(self, name):
        return getattr(self.client, name)

    def transact_write_items(self, **kwargs):
        try:
            return self.client.transact_write_items(**kwargs)
        except ClientError as exc:
            for reason in exc.response.get("CancellationReasons", []):
                reason.pop("Item", None)
            raise


def test_without_the_old_item_the_request_is_still_refused_and_nothing_is_read(dynamodb, bedrock):
    """The proxy may not read the counters table: with no item in the cancellation, the
    warning caps are passed and the hard cap refuses (naming the item's first limit)."""
    from .conftest import make_app

    app = make_app(WithoutOldItems(dynamodb), bedrock)
    customer = put_customer(dynamodb, rpm_limit=1000, tpm_limit=50)
    token, _ = put_token(dynamodb, customer)
    bedrock.stubber.add_response("converse", converse_response(input_tokens=40, output_tokens=20))
    body = chat(model="nova-micro", max_tokens=10)
    assert app.handle(event(body, token=token))["statusCode"] == 200
    calls = count_calls(dynamodb)
    refused = app.handle(event(body, token=token))
    assert refused["statusCode"] == 429
    assert body_of(refused)["error"]["code"] in ("rpm_limit_exceeded", "tpm_limit_exceeded")
    assert set(calls) == {"TransactWriteItems"}  # no read of the counters
    minute = contract.minute_sk(datetime.now(UTC).strftime("%Y-%m-%dT%H:%M"))
    assert counter(dynamodb, contract.counter_pk(customer.customer_id), minute)["requests"] == 1


def test_free_models_are_neither_held_nor_refused_by_tokens_per_minute(app, dynamodb):
    customer = put_customer(dynamodb, tpm_limit=1)
    token, item = put_token(dynamodb, customer, tpm_limit=1, monthly_token_quota=1)
    for _ in range(5):
        response = app.handle(event(chat(), token=token))  # sandbox.echo-v1, free
        assert response["statusCode"] == 200
    minute = minute_of(response)
    assert counter(dynamodb, contract.counter_pk(customer.customer_id), minute) == {}
    assert counter(dynamodb, contract.token_counter_pk(item.token_id), minute) == {}


def test_a_failed_call_gives_every_hold_back(app, dynamodb, bedrock):
    customer = put_customer(dynamodb, tpm_limit=10_000, monthly_token_quota=10_000)
    token, item = put_token(
        dynamodb, customer, tpm_limit=5000, monthly_token_quota=5000, daily_request_limit=10
    )
    bedrock.stubber.add_client_error(
        "converse", service_error_code="ValidationException", http_status_code=400
    )
    response = app.handle(event(chat(model="nova-micro", max_tokens=100), token=token))
    assert response["statusCode"] == 400
    now = datetime.now(UTC)
    minute = contract.minute_sk(now.strftime("%Y-%m-%dT%H:%M"))
    customer_pk = contract.counter_pk(customer.customer_id)
    token_pk = contract.token_counter_pk(item.token_id)
    assert counter(dynamodb, customer_pk, minute) == {
        "requests": 1,  # the minute keeps the request: it protects Bedrock
        "tokens": 0,
        "ttl": counter(dynamodb, customer_pk, minute)["ttl"],
    }
    assert counter(dynamodb, token_pk, minute)["tokens"] == 0
    assert counter(dynamodb, token_pk, contract.day_sk(now.date()))["requests"] == 0
    assert counter(dynamodb, token_pk, contract.month_sk(now.date()))[contract.QUOTA_TOKENS] == 0
    month = counter(dynamodb, customer_pk, contract.month_sk(now.date()))
    assert month[contract.QUOTA_TOKENS] == 0 and month["requests"] == 0


def test_tpm_refusal_on_the_bedrock_runtime_path_is_a_throttling_exception(app, dynamodb, bedrock):
    import json

    customer = put_customer(dynamodb, tpm_limit=10)
    token, _ = put_token(dynamodb, customer)
    bedrock.stubber.add_response("converse", converse_response(input_tokens=40, output_tokens=20))
    body = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
    path = "/model/amazon.nova-micro-v1:0/converse"
    assert app.handle(event(body, token=token, path=path))["statusCode"] == 200
    refused = app.handle(event(body, token=token, path=path))
    assert refused["statusCode"] == 429
    assert refused["headers"]["x-amzn-ErrorType"] == "ThrottlingException"
    assert refused["headers"]["X-RateLimit-Scope"] == "customer"
    assert "Retry-After" in refused["headers"]
    assert "Tokens-per-minute limit of 10" in json.loads(refused["body"])["message"]


# --- the token's models -----------------------------------------------------------------------


def test_a_tokens_models_narrow_the_customers(app, dynamodb, bedrock):
    customer = put_customer(dynamodb, allowed_models=["nova-micro", "nova-lite"])
    token, _ = put_token(dynamodb, customer, allowed_models=["nova-micro"])
    other, _ = put_token(dynamodb, customer)
    refused = app.handle(event(chat(model="nova-lite"), token=token))
    assert refused["statusCode"] == 403
    error = body_of(refused)["error"]
    assert error["code"] == "model_not_allowed"
    assert error["message"] == "Model amazon.nova-lite-v1:0 is not enabled for this token."
    bedrock.stubber.add_response("converse", converse_response())
    assert app.handle(event(chat(model="nova-micro"), token=token))["statusCode"] == 200
    assert app.handle(event(chat(), token=token))["statusCode"] == 200  # sandboxes: always
    bedrock.stubber.add_response("converse", converse_response())
    assert app.handle(event(chat(model="nova-lite"), token=other))["statusCode"] == 200
    listed = body_of(app.handle(event(token=token, path="/v1/models", method="GET")))
    ids = {model["id"] for model in listed["data"]}
    assert ids == {"amazon.nova-micro-v1:0", "sandbox.echo-v1", "sandbox.embed-v1"}


def test_a_token_model_the_customer_no_longer_allows_is_refused(app, dynamodb):
    """The customer's list narrowed after the token's was set: both must allow the model."""
    customer = put_customer(dynamodb, allowed_models=["nova-lite"])
    token, _ = put_token(dynamodb, customer, allowed_models=["claude-3-haiku"])
    refused = app.handle(event(chat(model="claude-3-haiku"), token=token))
    assert body_of(refused)["error"]["message"].endswith("not enabled for this account.")
    listed = body_of(app.handle(event(token=token, path="/v1/models", method="GET")))
    assert {model["id"] for model in listed["data"]} == {"sandbox.echo-v1", "sandbox.embed-v1"}


# --- compatibility and cost ---------------------------------------------------------------------


def test_items_written_before_schema_2_are_read(app, dynamodb):
    """A customer and a token item as the first schema wrote them (no tpm_limit, no token
    limits): read with no limit of their own, counted as before."""
    customer = put_customer(dynamodb, daily_request_limit=5)
    token = contract.generate_token()
    names = contract.table_names()
    raw_customer = dynamodb.get_item(
        TableName=names.customers, Key={"customer_id": {"S": customer.customer_id}}
    )["Item"]
    raw_customer.pop("tpm_limit")
    raw_customer["schema_version"] = {"N": "1"}
    dynamodb.put_item(TableName=names.customers, Item=raw_customer)
    dynamodb.put_item(
        TableName=names.tokens,
        Item={
            "token_hash": {"S": contract.hash_token(token)},
            "version": {"N": "1"},
            "token_id": {"S": "0f0e0d0c-0000-4000-8000-000000000001"},
            "customer_id": {"S": customer.customer_id},
            "display_prefix": {"S": token[:8]},
            "status": {"S": "active"},
            "expires_at": {"NULL": True},
            "created_at": {"N": "1700000000"},
            "grace_ends_at": {"NULL": True},
            "schema_version": {"N": "1"},
        },
    )
    item = contract.get_token(dynamodb, contract.hash_token(token))
    assert item.daily_request_limit is None and item.allowed_models == []
    assert not item.has_limits
    assert contract.get_customer(dynamodb, customer.customer_id).tpm_limit is None
    statuses = [app.handle(event(chat(), token=token))["statusCode"] for _ in range(6)]
    assert statuses == [200] * 5 + [429]


def test_items_carry_the_current_schema_version(dynamodb):
    customer = put_customer(dynamodb, tpm_limit=9)
    _, item = put_token(dynamodb, customer, tpm_limit=3, allowed_models=["nova-lite"])
    raw = dynamodb.get_item(
        TableName=contract.table_names().tokens, Key={"token_hash": {"S": item.token_hash}}
    )["Item"]
    assert raw["schema_version"] == {"N": "4"} and contract.SCHEMA_VERSION == 4
    assert contract.get_token(dynamodb, item.token_hash) == item
    assert contract.get_customer(dynamodb, customer.customer_id).tpm_limit == 9


def test_two_dynamodb_calls_per_warm_request_with_everything_on(app, dynamodb, bedrock):
    customer = put_customer(
        dynamodb,
        daily_request_limit=1000,
        rpm_limit=1000,
        monthly_token_quota=10**9,
        tpm_limit=10**6,
        allowed_models=["nova-micro", "nova-lite"],
    )
    token, _ = put_token(
        dynamodb,
        customer,
        daily_request_limit=500,
        rpm_limit=500,
        monthly_token_quota=10**8,
        tpm_limit=10**5,
        allowed_models=["nova-micro"],
    )
    for _ in range(4):
        bedrock.stubber.add_response("converse", converse_response())
    body = chat(model="nova-micro", max_tokens=100)
    assert app.handle(event(body, token=token))["statusCode"] == 200  # cold: two reads
    calls = count_calls(dynamodb)
    sent = []
    dynamodb.meta.events.register(
        "provide-client-params.dynamodb.TransactWriteItems",
        lambda params, **kw: sent.append(len(params["TransactItems"])),
    )
    for _ in range(3):
        response = app.handle(event(body, token=token))
        assert response["statusCode"] == 200
    assert calls == ["TransactWriteItems", "TransactWriteItems"] * 3
    # admission: 2 checks + the customer's MIN/DAY/MONTH + the token's MIN/DAY/MONTH; usage:
    # the customer's DAY/MONTH and per-model DAY/MONTH + the two MIN# holds + the token's MONTH#
    # (the token's last-use item was written by the cold request: once a minute per container)
    assert sent == [8, 7] * 3
    headers = response["headers"]
    assert headers["X-RateLimit-Limit-Requests-Day"] == "500"
    assert headers["X-RateLimit-Limit-Tokens-Minute"] == str(10**5)


def test_a_wider_token_model_list_is_seen_though_the_customer_was_read_since(dynamodb, bedrock):
    """A refusal is as fresh as the older of the two cached items: the token read long ago is
    read again even when the customer item was read a moment ago."""
    import dataclasses

    from .conftest import make_app

    app = make_app(dynamodb, bedrock, refusal_recheck_seconds=30)
    clock = [1000.0]
    app.auth.clock = app.auth.tokens.clock = app.auth.customers.clock = lambda: clock[0]
    customer = put_customer(dynamodb)
    token, item = put_token(dynamodb, customer, allowed_models=["nova-lite"])
    assert app.handle(event(chat(), token=token))["statusCode"] == 200  # both read at 1000
    wider = dataclasses.replace(item, version=2, allowed_models=["nova-lite", "nova-micro"])
    assert contract.put_token(dynamodb, wider)
    clock[0] = 1040.0
    app.auth.customers.drop(customer.customer_id)  # the customer is read again at 1040
    bedrock.stubber.add_response("converse", converse_response())
    assert app.handle(event(chat(model="nova-micro"), token=token))["statusCode"] == 200
