"""Bedrock Runtime's own REST paths through the real handler: bodies and answers in Bedrock's
shapes, errors with the type header botocore maps to its exceptions."""

import base64
import io
import json
from urllib.parse import quote

import pytest
from botocore.response import StreamingBody

from .conftest import converse_response, event, put_customer, put_token

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def _post(app, path, body, token, raw=None, headers=None):
    return app.handle(event(body, token=token, path=path, raw=raw, headers=headers))


def _error_type(response) -> str:
    return response["headers"]["x-amzn-ErrorType"]


def test_converse_path_decodes_blobs_and_answers_converse_json(app, bedrock, principal):
    token, _, _ = principal
    png = b"\x89PNG-bytes"
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "What is it?"},
                    {
                        "image": {
                            "format": "png",
                            "source": {"bytes": base64.b64encode(png).decode()},
                        }
                    },
                ],
            }
        ],
        "inferenceConfig": {"maxTokens": 50},
    }
    expected = {**body, "modelId": MODEL}
    expected["messages"] = [
        {
            "role": "user",
            "content": [
                {"text": "What is it?"},
                {"image": {"format": "png", "source": {"bytes": png}}},
            ],
        }
    ]
    bedrock.stubber.add_response("converse", converse_response("A logo."), expected)
    response = _post(app, f"/model/{quote(MODEL, safe='')}/converse", body, token)
    assert response["statusCode"] == 200, response["body"]
    answer = json.loads(response["body"])
    assert answer["output"]["message"]["content"] == [{"text": "A logo."}]
    assert answer["usage"]["inputTokens"] == 12 and "ResponseMetadata" not in answer


def test_invoke_path_passes_the_body_and_answers_the_models_bytes_with_counts(
    app, bedrock, principal
):
    token, _, _ = principal
    native = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 20,
        "messages": [{"role": "user", "content": "hi"}],
    }
    raw = json.dumps(native)
    answer = (
        b'{"content":[{"type":"text","text":"Hello"}],"usage":{"input_tokens":5,"output_tokens":2}}'
    )
    bedrock.stubber.add_response(
        "invoke_model",
        {
            "body": StreamingBody(io.BytesIO(answer), len(answer)),
            "contentType": "application/json",
            "ResponseMetadata": {
                "HTTPStatusCode": 200,
                "HTTPHeaders": {
                    "x-amzn-bedrock-input-token-count": "5",
                    "x-amzn-bedrock-output-token-count": "2",
                },
            },
        },
        {
            "modelId": MODEL,
            "body": raw.encode(),
            "contentType": "application/json",
            "accept": "application/json",
        },
    )
    response = _post(app, f"/model/{MODEL}/invoke", None, token, raw=raw)
    assert response["statusCode"] == 200, response["body"]
    assert response["body"].encode() == answer
    assert response["headers"]["X-Amzn-Bedrock-Input-Token-Count"] == "5"
    assert response["headers"]["X-Amzn-Bedrock-Output-Token-Count"] == "2"
    (logged,) = [e for e in app.sink.stream.events() if e["status"] == "success"]
    assert (logged["input_tokens"], logged["output_tokens"], logged["api_format"]) == (
        5,
        2,
        "bedrock",
    )


@pytest.mark.parametrize(
    "model",
    [
        "arn:aws:bedrock:us-east-1::foundation-model/sandbox.echo-v1",
        "sandbox.echo-v1",
        quote("sandbox.echo-v1", safe=""),
    ],
)
def test_model_ids_arns_and_encodings(app, principal, model):
    token, _, _ = principal
    body = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    response = _post(app, f"/model/{quote(model, safe='')}/converse", body, token)
    assert response["statusCode"] == 200, response["body"]


@pytest.mark.parametrize(
    ("path", "body", "raw", "status", "kind", "says"),
    [
        (
            "/model/sandbox.echo-v1/converse",
            {"messages": []},
            None,
            400,
            "ValidationException",
            "non-empty",
        ),
        (
            "/model/sandbox.echo-v1/converse",
            {"messages": [{"role": "user", "content": []}], "bogus": 1},
            None,
            400,
            "ValidationException",
            "Unknown field bogus",
        ),
        (
            "/model/sandbox.echo-v1/converse",
            None,
            "{not json",
            400,
            "ValidationException",
            "not valid JSON",
        ),
        (
            "/model/sandbox.echo-v1/converse-stream",
            None,
            '{"messages": [',
            400,
            "ValidationException",
            "not valid JSON",
        ),
        (
            "/model/sandbox.echo-v1/converse",
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [{"image": {"format": "png", "source": {"bytes": "***"}}}],
                    }
                ]
            },
            None,
            400,
            "ValidationException",
            "not base64",
        ),
        (
            "/model/sandbox.echo-v1/converse",
            {"messages": [{"role": "robot", "content": [{"text": "x"}]}]},
            None,
            400,
            "ValidationException",
            "role",
        ),
        (
            "/model/sandbox.echo-v1/explode",
            {},
            None,
            404,
            "UnknownOperationException",
            "Unknown operation",
        ),
        ("/model/%FF%FE/converse", {}, None, 400, "ValidationException", "UTF-8"),
        ("/model/no%00pe/converse", {}, None, 400, "ValidationException", "not valid"),
        (
            "/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Aapplication-inference-profile"
            "%2Fabc/converse",
            {},
            None,
            400,
            "ValidationException",
            "not served",
        ),
        ("/model/gpt-99-imaginary/converse", {}, None, 400, "ValidationException", "Unknown model"),
        ("/model/sandbox.echo-v1/invoke", None, "", 400, "ValidationException", "empty"),
    ],
)
def test_bad_input_gets_a_bedrock_error(app, principal, path, body, raw, status, kind, says):
    token, _, _ = principal
    response = _post(app, path, body, token, raw=raw)
    assert response["statusCode"] == status, response["body"]
    assert _error_type(response) == kind
    assert says in json.loads(response["body"])["message"]


def test_token_problems_are_access_denied_and_limits_are_throttling(app, dynamodb):
    body = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
    missing = _post(app, "/model/sandbox.echo-v1/converse", body, None)
    assert missing["statusCode"] == 401 and _error_type(missing) == "AccessDeniedException"
    customer = put_customer(dynamodb, daily_request_limit=1)
    token, _ = put_token(dynamodb, customer)
    assert _post(app, "/model/sandbox.echo-v1/converse", body, token)["statusCode"] == 200
    limited = _post(app, "/model/sandbox.echo-v1/converse", body, token)
    assert limited["statusCode"] == 429 and _error_type(limited) == "ThrottlingException"
    assert "Retry-After" in limited["headers"] and "X-RateLimit-Limit" in limited["headers"]
    assert "limit" in json.loads(limited["body"])["message"].lower()


def test_existing_paths_keep_their_error_bodies(app):
    response = app.handle(event({"model": "x"}, path="/v1/chat/completions"))
    assert json.loads(response["body"])["error"]["code"] == "missing_token"
    assert "x-amzn-ErrorType" not in response["headers"]
