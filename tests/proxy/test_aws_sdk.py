"""The official AWS SDK, unchanged, against the local runner over HTTPS: boto3's
bedrock-runtime client with the token as a Bedrock API key (AWS_BEARER_TOKEN_BEDROCK), for
InvokeModel, InvokeModelWithResponseStream, Converse and ConverseStream, streamed frames read
by botocore's own decoder, and refusals raised as the SDK's own exceptions."""

import json

import boto3
import pytest
from botocore.config import Config

from .conftest import REGION, put_customer, put_token
from .test_local_server import proxy, serve  # noqa: F401 (fixtures)

MESSAGES = [{"role": "user", "content": [{"text": "Hello there"}]}]
NATIVE = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": "Capital of France?"}],
}


@pytest.fixture
def sdk(proxy, monkeypatch):  # noqa: F811
    def client(token, **config):
        monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", token)
        return boto3.client(
            "bedrock-runtime",
            region_name=REGION,
            endpoint_url=f"https://127.0.0.1:{proxy['https']}",
            verify=str(proxy["cert"]),
            config=Config(retries={"total_max_attempts": 1}, **config),
        )

    return client


@pytest.fixture
def token(proxy):  # noqa: F811
    customer = put_customer(proxy["dynamodb"], daily_request_limit=100)
    plaintext, _ = put_token(proxy["dynamodb"], customer)
    return plaintext


def test_converse_and_converse_stream(sdk, token):
    client = sdk(token)
    answer = client.converse(modelId="sandbox.echo-v1", messages=MESSAGES)
    assert answer["output"]["message"]["content"] == [{"text": "Echo: Hello there"}]
    assert answer["usage"]["outputTokens"] >= 1 and answer["stopReason"] == "end_turn"

    events = list(client.converse_stream(modelId="sandbox.echo-v1", messages=MESSAGES)["stream"])
    text = "".join(
        e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e
    )
    assert text == "Echo: Hello there"
    assert sum("contentBlockDelta" in e for e in events) >= 2  # more than one piece
    assert events[-1]["metadata"]["usage"] == answer["usage"]


def test_invoke_model_and_its_stream(sdk, token):
    client = sdk(token)
    answer = client.invoke_model(modelId="sandbox.echo-v1", body=json.dumps(NATIVE))
    body = json.loads(answer["body"].read())
    assert body["content"][0]["text"] == "Echo: Capital of France?"
    headers = answer["ResponseMetadata"]["HTTPHeaders"]
    assert int(headers["x-amzn-bedrock-output-token-count"]) == body["usage"]["output_tokens"]

    streamed = client.invoke_model_with_response_stream(
        modelId="sandbox.echo-v1", body=json.dumps(NATIVE)
    )
    chunks = [json.loads(e["chunk"]["bytes"]) for e in streamed["body"]]
    text = "".join(c["delta"]["text"] for c in chunks if c["type"] == "content_block_delta")
    assert text == "Echo: Capital of France?"
    metrics = chunks[-1]["amazon-bedrock-invocationMetrics"]
    assert metrics["outputTokenCount"] == body["usage"]["output_tokens"]


def test_refusals_are_the_sdks_own_exceptions(sdk, token, proxy):  # noqa: F811
    with pytest.raises(sdk("bup_not_a_real_token").exceptions.AccessDeniedException):
        sdk("bup_not_a_real_token").converse(modelId="sandbox.echo-v1", messages=MESSAGES)
    client = sdk(token)
    with pytest.raises(client.exceptions.ValidationException) as invalid:
        client.converse(
            modelId="sandbox.echo-v1",
            messages=[{"role": "user", "content": []}],
            inferenceConfig={"maxTokens": 10},
        )
    assert invalid.value.response["Error"]["Code"] == "ValidationException"
    limited_customer = put_customer(proxy["dynamodb"], daily_request_limit=1)
    limited, _ = put_token(proxy["dynamodb"], limited_customer)
    limited_client = sdk(limited)
    limited_client.converse(modelId="sandbox.echo-v1", messages=MESSAGES)
    with pytest.raises(limited_client.exceptions.ThrottlingException) as throttled:
        limited_client.converse(modelId="sandbox.echo-v1", messages=MESSAGES)
    assert "limit" in throttled.value.response["Error"]["Message"].lower()
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
