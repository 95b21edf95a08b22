"""Output caps above the model's maximum are refused (400 naming the parameter and the maximum)
and every number written to DynamoDB stays far below its 38 digits; DynamoDB unreachable or
throttled gives a retryable 503; free models are not refused by the monthly token quota."""

import json
from datetime import UTC, datetime
from urllib.parse import quote

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from proxy import contract, formats, limits, models, openai_format

from .conftest import body_of, chat, converse_response, event, make_app, put_customer, put_token

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
HUGE = 10**200


def error_of(response) -> dict:
    return body_of(response)["error"]


def month_item(dynamodb, customer) -> dict:
    return dynamodb.get_item(
        TableName=contract.table_names().usage_counters,
        Key={
            contract.COUNTER_PK: {"S": contract.counter_pk(customer.customer_id)},
            contract.COUNTER_SK: {"S": contract.month_sk(datetime.now(UTC).date())},
        },
    ).get("Item", {})


# --- maximum output -------------------------------------------------------------------------


def test_the_maximum_output_table():
    assert models.max_output_tokens(HAIKU) == 4096
    assert models.max_output_tokens("us." + HAIKU) == 4096  # an inference profile
    assert models.max_output_tokens("anthropic.claude-3-5-sonnet-20240620-v1:0") == 8192
    assert models.max_output_tokens("anthropic.claude-3-opus-20240229-v1:0") == 4096
    assert models.max_output_tokens("amazon.titan-text-express-v1") == 8192
    assert models.max_output_tokens("amazon.titan-text-premier-v1:0") == 3072
    assert models.max_output_tokens("meta.llama3-1-8b-instruct-v1:0") == 2048
    assert models.max_output_tokens("mistral.mistral-large-2402-v1:0") == 8192
    assert models.max_output_tokens("amazon.nova-lite-v1:0") == 10_000
    assert models.max_output_tokens("sandbox.echo-v1") == 100_000
    assert models.max_output_tokens("cohere.command-r-v1:0") == models.DEFAULT_MAX_OUTPUT_TOKENS
    # every alias's model has an entry of its own (embeddings produce no output)
    for model_id in set(models.KNOWN_IDS) - set(models.EMBEDDING_MODELS):
        assert model_id.startswith(tuple(models.MAX_OUTPUT_TOKENS)), model_id


@pytest.mark.parametrize("name", ["max_tokens", "max_completion_tokens"])
def test_openai_output_cap_above_the_model_maximum_is_a_400(app, dynamodb, principal, name):
    token, customer, _ = principal
    response = app.handle(event(chat(model="claude-3-haiku", **{name: HUGE}), token=token))
    assert response["statusCode"] == 400
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert f"'{name}'" in error["message"] and "4096" in error["message"]
    assert month_item(dynamodb, customer) == {}  # refused before anything was counted


def test_the_model_maximum_itself_is_accepted_and_held(app, dynamodb, bedrock):
    customer = put_customer(dynamodb, monthly_token_quota=1_000_000)
    token, _ = put_token(dynamodb, customer)
    bedrock.stubber.add_response("converse", converse_response())
    response = app.handle(event(chat(model="claude-3-haiku", max_tokens=4096), token=token))
    assert response["statusCode"] == 200
    refused = app.handle(event(chat(model="claude-3-haiku", max_tokens=4097), token=token))
    assert refused["statusCode"] == 400 and "at most 4096" in error_of(refused)["message"]
    sandbox = app.handle(event(chat(max_tokens=100_000), token=token))
    assert sandbox["statusCode"] == 200
    assert app.handle(event(chat(max_tokens=100_001), token=token))["statusCode"] == 400


def test_a_customer_default_above_the_maximum_is_lowered_to_it():
    call = openai_format.parse(chat(model="claude-3-haiku"), {}, {"max_tokens": 50_000})
    assert call.params["inferenceConfig"]["maxTokens"] == 4096
    sent = openai_format.parse(chat(model="claude-3-haiku", max_tokens=10), {}, {"max_tokens": 9})
    assert sent.params["inferenceConfig"]["maxTokens"] == 10


def test_tagged_format_parameters_are_capped(app, principal):
    body = {
        "model": "claude-3-haiku",
        "prompt": {
            "messages": [{"role": "user", "content": "Hi"}],
            "parameters": {"max_tokens": HUGE},
        },
    }
    response = app.handle(event(body, token=principal[0], path="/bedrock"))
    assert response["statusCode"] == 400 and "'max_tokens'" in error_of(response)["message"]


@pytest.mark.parametrize(
    ("model", "native", "name"),
    [
        (HAIKU, {"anthropic_version": "bedrock-2023-05-31", "max_tokens": HUGE}, "max_tokens"),
        (
            "anthropic.claude-v2:0",
            {"prompt": "x", "max_tokens_to_sample": HUGE},
            "max_tokens_to_sample",
        ),
        ("meta.llama3-1-8b-instruct-v1:0", {"prompt": "x", "max_gen_len": 2049}, "max_gen_len"),
        (
            "amazon.titan-text-express-v1",
            {"inputText": "x", "textGenerationConfig": {"maxTokenCount": HUGE}},
            "textGenerationConfig.maxTokenCount",
        ),
        (
            "amazon.nova-lite-v1:0",
            {"messages": [], "inferenceConfig": {"max_new_tokens": HUGE}},
            "inferenceConfig.max_new_tokens",
        ),
    ],
)
def test_native_output_caps_are_capped(app, principal, model, native, name):
    response = app.handle(event({"modelId": model, **native}, token=principal[0], path="/bedrock"))
    assert response["statusCode"] == 400
    message = error_of(response)["message"]
    assert f"'{name}'" in message and str(models.max_output_tokens(model)) in message


def test_bedrock_runtime_paths_are_capped(app, principal):
    token = principal[0]
    converse = {
        "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
        "inferenceConfig": {"maxTokens": HUGE},
    }
    path = f"/model/{quote(HAIKU, safe='')}/converse"
    response = app.handle(event(converse, token=token, path=path))
    assert response["statusCode"] == 400
    assert response["headers"]["x-amzn-ErrorType"] == "ValidationException"
    assert "inferenceConfig.maxTokens" in json.loads(response["body"])["message"]
    invoke = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": HUGE, "messages": []}
    path = f"/model/{quote(HAIKU, safe='')}/invoke"
    response = app.handle(event(invoke, token=token, path=path))
    assert (
        response["statusCode"] == 400 and "'max_tokens'" in json.loads(response["body"])["message"]
    )


def test_quota_holds_and_counter_additions_are_bounded(app, dynamodb):
    quota = put_customer(dynamodb, monthly_token_quota=10**30)
    _, quota_token = put_token(dynamodb, quota)
    from proxy.auth import Principal

    admission = app.limiter.admit(
        Principal(token=quota_token, customer=quota), lambda p: None, quota_hold=HUGE
    )
    assert admission.quota_held == limits.MAX_QUOTA_HOLD
    assert month_item(dynamodb, quota)[contract.QUOTA_TOKENS]["N"] == str(limits.MAX_QUOTA_HOLD)
    from proxy import usage

    update = usage._update("t", "pk", "sk", {"input_tokens": HUGE, "output_tokens": -HUGE})
    numbers = [v["N"] for v in update["Update"]["ExpressionAttributeValues"].values()]
    assert numbers == [str(limits.MAX_COUNTER_ADD), str(-limits.MAX_COUNTER_ADD)]
    # the hold of the largest body the proxy takes, with the largest output, is far below it
    call = openai_format.parse(chat(text="x" * 6_000_000, max_tokens=100_000), {}, {})
    assert formats.quota_hold(call) < limits.MAX_QUOTA_HOLD


# --- DynamoDB unavailable -------------------------------------------------------------------


def client_error(code: str, operation: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"}}, operation)


FAILURES = [
    EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
    ConnectTimeoutError(endpoint_url="http://127.0.0.1:9"),
    ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
]
THROTTLED = [
    "ProvisionedThroughputExceededException",
    "ThrottlingException",
    "RequestLimitExceeded",
]


@pytest.mark.parametrize("failure", FAILURES + [client_error(c, "GetItem") for c in THROTTLED])
def test_dynamodb_failing_during_auth_is_a_retryable_503(
    app, dynamodb, principal, monkeypatch, failure
):
    def fail(**kwargs):
        raise failure

    monkeypatch.setattr(dynamodb, "get_item", fail)
    response = app.handle(event(chat(), token=principal[0]))
    assert response["statusCode"] == 503
    error = error_of(response)
    assert error["code"] == "service_unavailable" and error["type"] == "api_error"
    assert int(response["headers"]["Retry-After"]) >= 1
    (logged,) = app.sink.stream.events()
    assert logged["error_code"] == "service_unavailable" and logged["http_status"] == 503


@pytest.mark.parametrize(
    "failure", FAILURES + [client_error(c, "TransactWriteItems") for c in THROTTLED]
)
def test_dynamodb_failing_during_admission_is_a_retryable_503(
    dynamodb, principal, monkeypatch, failure
):
    app = make_app(dynamodb)
    token = principal[0]
    assert app.handle(event(chat(), token=token))["statusCode"] == 200  # warm: no reads

    def fail(**kwargs):
        raise failure

    monkeypatch.setattr(dynamodb, "transact_write_items", fail)
    response = app.handle(event(chat(), token=token))
    assert response["statusCode"] == 503 and error_of(response)["code"] == "service_unavailable"
    assert "Retry-After" in response["headers"]


@pytest.mark.parametrize("failure", FAILURES)
def test_counters_failing_after_the_call_still_answer_it(dynamodb, principal, monkeypatch, failure):
    """The call was made: the counters are provisional (the events are billed), so a store
    that times out on the usage transaction does not turn the answer into an error."""
    app = make_app(dynamodb)
    token = principal[0]
    real = dynamodb.transact_write_items
    calls = []

    def second_fails(**kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise failure
        return real(**kwargs)

    monkeypatch.setattr(dynamodb, "transact_write_items", second_fails)
    response = app.handle(event(chat(), token=token))
    assert response["statusCode"] == 200 and len(calls) == 2


def test_a_throttled_transaction_is_a_503(dynamodb, principal, monkeypatch):
    app = make_app(dynamodb)

    def throttled(**kwargs):
        error = client_error("TransactionCanceledException", "TransactWriteItems")
        error.response["CancellationReasons"] = [{"Code": "None"}, {"Code": "ThrottlingError"}]
        raise error

    monkeypatch.setattr(dynamodb, "transact_write_items", throttled)
    response = app.handle(event(chat(), token=principal[0]))
    assert response["statusCode"] == 503 and error_of(response)["code"] == "service_unavailable"


def test_on_the_bedrock_runtime_paths_it_is_service_unavailable(
    app, dynamodb, principal, monkeypatch
):
    def fail(**kwargs):
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")

    monkeypatch.setattr(dynamodb, "get_item", fail)
    body = {"messages": [{"role": "user", "content": [{"text": "Hi"}]}]}
    path = f"/model/{quote(HAIKU, safe='')}/converse"
    response = app.handle(event(body, token=principal[0], path=path))
    assert response["statusCode"] == 503
    assert response["headers"]["x-amzn-ErrorType"] == "ServiceUnavailableException"
    assert "Retry-After" in response["headers"]


def test_other_dynamodb_errors_stay_internal_errors(app, dynamodb, principal, monkeypatch):
    def fail(**kwargs):
        raise client_error("ValidationException", "GetItem")

    monkeypatch.setattr(dynamodb, "get_item", fail)
    response = app.handle(event(chat(), token=principal[0]))
    assert response["statusCode"] == 500 and error_of(response)["code"] == "internal_error"


# --- free models and the monthly quota ------------------------------------------------------


def test_free_models_are_not_refused_by_a_used_up_monthly_quota(app, dynamodb, bedrock):
    customer = put_customer(dynamodb, monthly_token_quota=100, daily_request_limit=4)
    token, _ = put_token(dynamodb, customer)
    bedrock.stubber.add_response("converse", converse_response(input_tokens=70, output_tokens=40))
    assert (
        app.handle(event(chat(model="nova-lite", max_tokens=10), token=token))["statusCode"] == 200
    )
    refused = app.handle(event(chat(model="nova-lite", max_tokens=10), token=token))
    assert refused["statusCode"] == 429 and error_of(refused)["code"] == "monthly_quota_exceeded"
    # the sandboxes keep working: integration tests go on once the quota is used up
    assert app.handle(event(chat(), token=token))["statusCode"] == 200
    embed = {"model": "sandbox-embed", "input": "hello"}
    assert app.handle(event(embed, token=token, path="/v1/embeddings"))["statusCode"] == 200
    month = month_item(dynamodb, customer)
    assert int(month[contract.QUOTA_TOKENS]["N"]) == 110  # the free calls added nothing
    assert int(month["requests"]["N"]) == 3  # but they are counted as requests
    # ... and the daily request limit still applies to them
    assert app.handle(event(chat(), token=token))["statusCode"] == 200
    daily = app.handle(event(chat(), token=token))
    assert daily["statusCode"] == 429 and error_of(daily)["code"] == "daily_limit_exceeded"


def test_a_zero_quota_refuses_priced_calls_only(app, dynamodb):
    customer = put_customer(dynamodb, monthly_token_quota=0)
    token, _ = put_token(dynamodb, customer)
    refused = app.handle(event(chat(model="nova-lite"), token=token))
    assert refused["statusCode"] == 429 and error_of(refused)["code"] == "monthly_quota_exceeded"
    assert app.handle(event(chat(), token=token))["statusCode"] == 200
