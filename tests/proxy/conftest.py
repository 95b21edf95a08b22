"""Fixtures for the proxy: moto DynamoDB/S3, items written through the contract, API GW events."""

from __future__ import annotations

import io
import json
import socket
import time
import uuid

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from portal import emulator
from proxy import contract, handler
from proxy.config import Settings

REGION = "us-east-1"
BUCKET = "test-usage-events"


@pytest.fixture
def aws_env(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def moto(aws_env):
    with mock_aws():
        yield


@pytest.fixture
def dynamodb(moto):
    client = boto3.client("dynamodb", region_name=REGION)
    contract.create_tables(client)
    return client


@pytest.fixture
def s3(moto):
    client = boto3.client("s3", region_name=REGION)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture
def bedrock(aws_env):
    """A real bedrock-runtime client whose answers come from botocore's Stubber."""
    client = boto3.client("bedrock-runtime", region_name=REGION)
    with Stubber(client) as stubber:
        client.stubber = stubber
        yield client


class Output(io.StringIO):
    """The proxy's stdout: one usage event and one metrics line (proxy/metrics.py) a request."""

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.getvalue().splitlines() if line.strip()]

    def events(self) -> list[dict]:
        return [line for line in self.lines() if "_aws" not in line]

    def metrics(self) -> list[dict]:
        return [line for line in self.lines() if "_aws" in line]


def make_app(dynamodb, bedrock=None, s3=None, **overrides) -> handler.ProxyApp:
    settings = Settings(tables=contract.table_names(), **overrides)
    return handler.ProxyApp(settings, dynamodb=dynamodb, bedrock=bedrock, s3=s3, stream=Output())


@pytest.fixture
def app(dynamodb, bedrock):
    return make_app(dynamodb, bedrock)


def put_customer(dynamodb, customer_id=None, version=1, **fields) -> contract.CustomerItem:
    item = contract.CustomerItem(
        customer_id=customer_id or str(uuid.uuid4()),
        version=version,
        status=fields.pop("status", "active"),
        name=fields.pop("name", "Acme"),
        **fields,
    )
    assert contract.put_customer(dynamodb, item)
    return item


def put_token(
    dynamodb, customer, token=None, version=1, **fields
) -> tuple[str, contract.TokenItem]:
    token = token or contract.generate_token()
    item = contract.TokenItem(
        token_hash=contract.hash_token(token),
        version=version,
        token_id=fields.pop("token_id", str(uuid.uuid4())),
        customer_id=customer.customer_id,
        display_prefix=token[:8],
        status=fields.pop("status", "active"),
        expires_at=fields.pop("expires_at", int(time.time()) + 3600),
        **fields,
    )
    assert contract.put_token(dynamodb, item)
    return token, item


@pytest.fixture
def principal(dynamodb):
    customer = put_customer(dynamodb)
    token, item = put_token(dynamodb, customer)
    return token, customer, item


def event(
    body=None,
    *,
    token=None,
    path="/v1/chat/completions",
    method="POST",
    headers=None,
    version=2,
    ip="203.0.113.7",
    raw=None,
):
    all_headers = {"content-type": "application/json"}
    if token:
        all_headers["authorization"] = f"Bearer {token}"
    all_headers.update(headers or {})
    text = raw if raw is not None else (json.dumps(body) if body is not None else None)
    request_id = str(uuid.uuid4())
    if version == 2:
        return {
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": path,
            "rawQueryString": "",
            "headers": all_headers,
            "requestContext": {
                "http": {"method": method, "path": path, "sourceIp": ip},
                "requestId": request_id,
            },
            "body": text,
            "isBase64Encoded": False,
        }
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {k.title(): v for k, v in all_headers.items()},
        "requestContext": {"identity": {"sourceIp": ip}, "requestId": request_id},
        "body": text,
        "isBase64Encoded": False,
    }


def chat(model="sandbox.echo-v1", text="Hello!", **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": text}], **extra}


def converse_response(text="Paris.", input_tokens=12, output_tokens=3, cache_read=0, cache_write=0):
    """The real shape of bedrock-runtime Converse output (service-2.json ConverseResponse)."""
    usage = {
        "inputTokens": input_tokens,
        "outputTokens": output_tokens,
        "totalTokens": input_tokens + output_tokens + cache_read + cache_write,
    }
    if cache_read or cache_write:
        usage["cacheReadInputTokens"] = cache_read
        usage["cacheWriteInputTokens"] = cache_write
    return {
        "output": {"message": {"role": "assistant", "content": [{"text": text}]}},
        "stopReason": "end_turn",
        "usage": usage,
        "metrics": {"latencyMs": 321},
    }


def body_of(response) -> dict:
    return json.loads(response["body"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def atomic_moto():
    """moto applies a DynamoDB request as read-modify-write without a lock, so two threads can
    lose an ADD; DynamoDB applies each request atomically. `make run` restores that with one
    lock per request (portal/emulator.py), and so do these tests: it does not serialise our
    read-then-decide logic (there is none, the conditions decide)."""
    emulator.make_dynamodb_atomic()


@pytest.fixture
def moto_server(aws_env, atomic_moto):
    """moto's threaded server on a free loopback port, started as `make run` starts it."""
    server = emulator.start(free_port())
    try:
        yield "http://{}:{}".format(*server.get_host_and_port())
    finally:
        server.stop()
