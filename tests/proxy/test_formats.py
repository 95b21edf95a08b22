"""The three request formats: the native body (InvokeModel), the tagged alias + prompt +
tags (Converse) and the OpenAI chat completions surface (Converse), Bedrock via the Stubber."""

import io
import json

import pytest
from botocore.response import StreamingBody

from .conftest import body_of, chat, converse_response, event, put_customer, put_token

NATIVE_BODY = {
    "modelId": "anthropic.claude-3-sonnet-20240229-v1:0",
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 1000,
    "messages": [
        {"role": "user", "content": [{"type": "text", "text": "What is the capital of France?"}]}
    ],
}
ANTHROPIC_ANSWER = {
    "id": "msg_bdrk_01",
    "type": "message",
    "role": "assistant",
    "model": "claude-3-sonnet-20240229",
    "content": [{"type": "text", "text": "Paris."}],
    "stop_reason": "end_turn",
    "stop_sequence": None,
    "usage": {"input_tokens": 14, "output_tokens": 4},
}


def invoke_response(payload: dict, headers: dict | None = None) -> dict:
    """bedrock-runtime InvokeModel output: a streaming body, its content type, and the HTTP
    headers where Bedrock reports token counts."""
    data = json.dumps(payload).encode()
    response = {
        "body": StreamingBody(io.BytesIO(data), len(data)),
        "contentType": "application/json",
    }
    if headers is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": 200, "HTTPHeaders": headers}
    return response


def test_the_native_body_goes_to_invoke_model_with_header_counts(app, bedrock, principal):
    native = {k: v for k, v in NATIVE_BODY.items() if k != "modelId"}
    bedrock.stubber.add_response(
        "invoke_model",
        invoke_response(
            ANTHROPIC_ANSWER,
            {
                "x-amzn-bedrock-input-token-count": "15",
                "x-amzn-bedrock-output-token-count": "5",
                "x-amzn-bedrock-invocation-latency": "420",
            },
        ),
        {
            "modelId": NATIVE_BODY["modelId"],
            "body": json.dumps(native).encode(),
            "contentType": "application/json",
            "accept": "application/json",
        },
    )
    response = app.handle(event(NATIVE_BODY, token=principal[0], path="/prod/bedrock"))
    assert response["statusCode"] == 200, response["body"]
    assert body_of(response) == ANTHROPIC_ANSWER  # the native answer, untouched
    (logged,) = app.sink.stream.events()
    # the headers win over the body's own usage
    assert (logged["input_tokens"], logged["output_tokens"]) == (15, 5)
    assert logged["model_id"] == NATIVE_BODY["modelId"] and logged["api_format"] == "native"


def test_invoke_model_cache_token_headers(app, dynamodb, bedrock, principal):
    """Prompt caching: Bedrock reports cache reads and writes in their own headers (lower-case,
    as botocore gives HTTPHeaders); they reach the event and the counters."""
    answer = {
        **ANTHROPIC_ANSWER,
        "usage": {
            "input_tokens": 1,
            "output_tokens": 4,
            "cache_read_input_tokens": 999,
            "cache_creation_input_tokens": 999,
        },
    }
    headers = {
        "x-amzn-requestid": "5b5e0a4c-0000-4000-8000-000000000000",
        "content-type": "application/json",
        "x-amzn-bedrock-invocation-latency": "812",
        "x-amzn-bedrock-input-token-count": "21",
        "x-amzn-bedrock-output-token-count": "4",
        "x-amzn-bedrock-cache-read-input-token-count": "2048",
        "x-amzn-bedrock-cache-write-input-token-count": "512",
    }
    bedrock.stubber.add_response("invoke_model", invoke_response(answer, headers))
    response = app.handle(event(NATIVE_BODY, token=principal[0], path="/bedrock"))
    assert response["statusCode"] == 200, response["body"]
    (logged,) = app.sink.stream.events()
    assert [logged[k] for k in ("input_tokens", "output_tokens")] == [21, 4]
    assert [logged["cache_read_tokens"], logged["cache_write_tokens"]] == [2048, 512]
    from datetime import UTC, datetime

    from proxy import contract

    customer_id = principal[1].customer_id
    snapshot = contract.get_usage_snapshot(dynamodb, customer_id, datetime.now(UTC).date())
    assert snapshot["day"]["cache_read_tokens"] == 2048
    assert snapshot["month"]["cache_write_tokens"] == 512


def test_invoke_model_without_headers_uses_the_body_usage(app, bedrock, principal):
    answer = {
        **ANTHROPIC_ANSWER,
        "usage": {"input_tokens": 14, "output_tokens": 4, "cache_read_input_tokens": 100},
    }
    bedrock.stubber.add_response("invoke_model", invoke_response(answer))
    assert app.handle(event(NATIVE_BODY, token=principal[0], path="/bedrock"))["statusCode"] == 200
    (logged,) = app.sink.stream.events()
    assert (logged["input_tokens"], logged["output_tokens"], logged["cache_read_tokens"]) == (
        14,
        4,
        100,
    )


def test_the_native_body_with_the_sandbox(app, principal):
    body = {**NATIVE_BODY, "modelId": "sandbox.echo-v1"}
    response = app.handle(event(body, token=principal[0], path="/bedrock"))
    answer = body_of(response)
    assert answer["content"][0]["text"] == "Echo: What is the capital of France?"
    assert answer["usage"]["input_tokens"] >= 1


def test_a_prompt_with_system_parameters_and_header_tags(app, bedrock, principal):
    bedrock.stubber.add_response(
        "converse",
        converse_response("Hola", input_tokens=9, output_tokens=2),
        {
            "modelId": "anthropic.claude-v2:0",
            "system": [{"text": "Answer in Spanish."}],
            "messages": [{"role": "user", "content": [{"text": "Hello"}]}],
            "inferenceConfig": {"maxTokens": 20, "temperature": 0.2, "topP": 0.9},
            "additionalModelRequestFields": {"top_k": 5},
        },
    )
    payload = {
        "model": "claude-2",
        "prompt": {
            "messages": [
                {"role": "system", "content": "Answer in Spanish."},
                {"role": "user", "content": "Hello"},
            ],
            "parameters": {"max_tokens": 20, "temperature": 0.2, "top_p": 0.9, "top_k": 5},
        },
        "tags": {"applicationId": "aws-documentation-helper", "costCenter": "support"},
    }
    headers = {"x-environment": "production", "x-user-id": "alice", "x-cost-center": "ignored"}
    response = app.handle(event(payload, token=principal[0], path="/bedrock", headers=headers))
    assert response["statusCode"] == 200, response["body"]
    answer = body_of(response)
    assert answer["model"] == "claude-2" and answer["model_id"] == "anthropic.claude-v2:0"
    assert answer["output"] == {"role": "assistant", "content": "Hola"}
    (logged,) = app.sink.stream.events()
    assert logged["tags"] == {
        "applicationId": "aws-documentation-helper",
        "costCenter": "support",
        "environment": "production",
        "userId": "alice",
    }


def test_customer_default_model_params_fill_gaps(app, dynamodb, bedrock):
    customer = put_customer(dynamodb, default_model_params={"temperature": 0.1, "max_tokens": 64})
    token, _ = put_token(dynamodb, customer)
    bedrock.stubber.add_response(
        "converse",
        converse_response(),
        {
            "modelId": "amazon.nova-pro-v1:0",
            "messages": [{"role": "user", "content": [{"text": "Hi"}]}],
            "inferenceConfig": {"temperature": 0.1, "maxTokens": 10},
        },
    )
    assert (
        app.handle(event(chat(model="nova-pro", text="Hi", max_tokens=10), token=token))[
            "statusCode"
        ]
        == 200
    )


def test_openai_chat_completion_shape(app, bedrock, principal):
    bedrock.stubber.add_response("converse", converse_response("Paris.", 20, 3, cache_read=6))
    response = app.handle(event(chat(model="claude-3-haiku", user="bob"), token=principal[0]))
    body = body_of(response)
    assert body["object"] == "chat.completion" and body["model"] == "claude-3-haiku"
    assert body["choices"][0]["finish_reason"] == "stop"
    assert body["usage"] == {
        "prompt_tokens": 26,
        "completion_tokens": 3,
        "total_tokens": 29,
        "prompt_tokens_details": {"cached_tokens": 6},
    }
    (logged,) = app.sink.stream.events()
    assert logged["tags"]["userId"] == "bob" and logged["cache_read_tokens"] == 6


def test_openai_stream_is_a_buffered_event_stream(app, principal):
    body = chat(stream=True, stream_options={"include_usage": True})
    response = app.handle(event(body, token=principal[0]))
    assert response["headers"]["Content-Type"] == "text/event-stream"
    lines = [line for line in response["body"].split("\n\n") if line]
    assert lines[-1] == "data: [DONE]"
    chunks = [json.loads(line.removeprefix("data: ")) for line in lines[:-1]]
    assert (
        "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])
        == "Echo: Hello!"
    )
    assert chunks[-1]["usage"]["completion_tokens"] >= 1


def test_models_lists_what_the_token_may_use(app, dynamodb):
    customer = put_customer(
        dynamodb, allowed_models=["nova-lite", "anthropic.claude-3-haiku-20240307-v1:0"]
    )
    token, _ = put_token(dynamodb, customer)
    response = app.handle(event(token=token, path="/v1/models", method="GET"))
    ids = [m["id"] for m in body_of(response)["data"]]
    assert ids == [
        "amazon.nova-lite-v1:0",
        "anthropic.claude-3-haiku-20240307-v1:0",
        "sandbox.echo-v1",
        "sandbox.embed-v1",
    ]


@pytest.mark.parametrize("field", ["tools", "functions"])
def test_unsupported_openai_features_are_refused(app, principal, field):
    response = app.handle(event(chat(**{field: [{"x": 1}]}), token=principal[0]))
    assert response["statusCode"] == 400
