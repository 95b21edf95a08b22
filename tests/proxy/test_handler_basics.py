"""The handler end to end against moto DynamoDB, with items written through proxy.contract."""

from datetime import UTC, datetime

from proxy import contract

from .conftest import body_of, chat, converse_response, event


def test_sandbox_chat_completion_counts_and_logs(app, dynamodb, principal):
    token, customer, item = principal
    response = app.handle(event(chat(text="What is the capital of France?"), token=token))
    assert response["statusCode"] == 200, response["body"]
    body = body_of(response)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"] == "Echo: What is the capital of France?"
    assert body["usage"]["prompt_tokens"] == 8 and body["usage"]["completion_tokens"] == 9
    snapshot = contract.get_usage_snapshot(dynamodb, customer.customer_id, datetime.now(UTC).date())
    assert snapshot["day"]["requests"] == 1
    assert snapshot["day"]["input_tokens"] == 8
    assert snapshot["month_by_model"]["sandbox.echo-v1"]["output_tokens"] == 9
    (logged,) = app.sink.stream.events()
    assert logged["status"] == "success" and logged["token_id"] == item.token_id
    assert logged["customer_id"] == customer.customer_id


def test_converse_through_stubber_records_exact_counts(app, dynamodb, bedrock, principal):
    token, customer, _ = principal
    bedrock.stubber.add_response(
        "converse",
        converse_response(input_tokens=40, output_tokens=7, cache_read=100, cache_write=5),
        {
            "modelId": "amazon.nova-lite-v1:0",
            "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
            "inferenceConfig": {"maxTokens": 50},
        },
    )
    payload = {
        "model": "nova-lite",
        "prompt": {
            "messages": [{"role": "user", "content": "Hi"}],
            "parameters": {"max_tokens": 50},
        },
        "tags": {"applicationId": "app1", "costCenter": "sales", "environment": "prod"},
    }
    response = app.handle(event(payload, token=token, path="/bedrock"))
    assert response["statusCode"] == 200, response["body"]
    body = body_of(response)
    assert body["output"]["content"] == "Paris."
    assert body["usage"] == {
        "input_tokens": 40,
        "output_tokens": 7,
        "cache_read_tokens": 100,
        "cache_write_tokens": 5,
    }
    bedrock.stubber.assert_no_pending_responses()
    day = datetime.now(UTC).date()
    snapshot = contract.get_usage_snapshot(dynamodb, customer.customer_id, day)
    assert snapshot["month"]["cache_read_tokens"] == 100
    assert snapshot["day_by_model"]["amazon.nova-lite-v1:0"]["requests"] == 1
    (logged,) = app.sink.stream.events()
    assert logged["tags"]["costCenter"] == "sales" and logged["model_alias"] == "nova-lite"


def test_counter_transactions_carry_idempotency_tokens(app, dynamodb, principal):
    """A botocore retry of a transaction whose first try landed must not count twice."""
    token, _, _ = principal
    sent = []

    def capture(params, **kwargs):
        sent.append(params.get("ClientRequestToken"))

    dynamodb.meta.events.register("provide-client-params.dynamodb.TransactWriteItems", capture)
    try:
        for _ in range(2):
            assert app.handle(event(chat(), token=token))["statusCode"] == 200
    finally:
        dynamodb.meta.events.unregister(
            "provide-client-params.dynamodb.TransactWriteItems", capture
        )
    assert len(sent) == 4  # admission + usage, twice
    assert all(t and len(t) <= 36 for t in sent)
    assert len(set(sent)) == 4  # per request and per purpose
