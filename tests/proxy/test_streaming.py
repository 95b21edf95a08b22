"""Streamed answers leave the proxy as the model produces them, in each client's format, and
are metered from the stream's own counts; a client that goes away or an upstream that breaks
mid-stream is billed for what was produced, with exactly one usage event."""

import io
import json
import threading
from datetime import UTC, datetime

import botocore.session
import pytest
from botocore.eventstream import EventStream
from botocore.parsers import EventStreamJSONParser

from proxy import contract

from .conftest import chat, event, make_app, put_customer, put_token
from .fake_bedrock import FakeBedrock, converse_stream_frames

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def _month(dynamodb, customer_id) -> dict:
    item = dynamodb.get_item(
        TableName=contract.table_names().usage_counters,
        Key={
            contract.COUNTER_PK: {"S": contract.counter_pk(customer_id)},
            contract.COUNTER_SK: {"S": contract.month_sk(datetime.now(UTC).date())},
        },
    ).get("Item", {})
    return {k: int(v["N"]) for k, v in item.items() if "N" in v}


def _sse(data: bytes) -> list:
    out = []
    for block in data.decode().split("\n\n"):
        if block.startswith("data: "):
            payload = block[len("data: ") :]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def _events(app):
    return [e for e in app.sink.stream.events() if e["request_id"]]


@pytest.fixture
def customer_token(dynamodb):
    customer = put_customer(dynamodb, monthly_token_quota=100_000)
    token, _ = put_token(dynamodb, customer)
    return customer, token


def test_openai_stream_first_chunk_arrives_before_the_upstream_produces_the_last(
    dynamodb, customer_token
):
    customer, token = customer_token
    gate = threading.Event()
    with FakeBedrock() as fake:
        converse_stream_frames(fake, ["Par", "is", "."], usage=(12, 3), gates={1: gate})
        app = make_app(dynamodb, fake.client())
        body = chat(model=MODEL, stream=True, stream_options={"include_usage": True})
        response = app.handle_streaming(event(body, token=token))
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        chunks = iter(response)
        first = next(chunks) + next(chunks)  # role chunk, then "Par"
        assert not fake.finished.is_set()  # the upstream has not produced the rest yet
        assert [c["choices"][0]["delta"] for c in _sse(first)] == [
            {"role": "assistant", "content": ""},
            {"content": "Par"},
        ]
        gate.set()
        rest = b"".join(chunks)
        response.close()
    parsed = _sse(first + rest)
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in parsed[:-2] if c["choices"])
    assert text == "Paris."
    assert parsed[-3]["choices"][0]["finish_reason"] == "stop"
    assert parsed[-2]["usage"] == {
        "prompt_tokens": 12,
        "completion_tokens": 3,
        "total_tokens": 15,
        "prompt_tokens_details": {"cached_tokens": 0},
    }
    assert parsed[-1] == "[DONE]"
    (usage_event,) = _events(app)
    assert usage_event["stream"] is True and usage_event["completed"] is True
    assert (usage_event["input_tokens"], usage_event["output_tokens"]) == (12, 3)
    month = _month(dynamodb, customer.customer_id)
    assert month["quota_tokens"] == 15  # the hold was replaced by the exact count


def test_client_disconnect_bills_what_was_produced_and_settles_the_hold(dynamodb, customer_token):
    customer, token = customer_token
    gate = threading.Event()
    with FakeBedrock() as fake:
        converse_stream_frames(fake, ["Hello there", " more"], gates={1: gate})
        app = make_app(dynamodb, fake.client())
        prompt = "x" * 400  # about 100 input tokens by the documented estimate
        body = chat(model=MODEL, text=prompt, stream=True, max_tokens=500)
        response = app.handle_streaming(event(body, token=token))
        chunks = iter(response)
        next(chunks), next(chunks)  # role chunk, "Hello there"
        response.close()  # the client went away
        gate.set()
    (usage_event,) = _events(app)
    assert usage_event["stream"] is True and usage_event["completed"] is False
    assert usage_event["status"] == "success"
    assert usage_event["output_tokens"] == 3  # "Hello there": 11 characters, 4 a token
    assert usage_event["input_tokens"] == 100
    month = _month(dynamodb, customer.customer_id)
    assert month["quota_tokens"] == 103  # the 600-token hold settled to what was produced


def test_upstream_error_mid_stream_ends_with_an_error_event_and_bills_what_was_produced(
    dynamodb, customer_token
):
    _customer, token = customer_token
    with FakeBedrock() as fake:
        fake.add("messageStart", {"role": "assistant"})
        fake.add("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Partial answ"}})
        fake.add_error("throttlingException", "Too many tokens")
        app = make_app(dynamodb, fake.client())
        response = app.handle_streaming(event(chat(model=MODEL, stream=True), token=token))
        data = b"".join(response)
        response.close()
    parsed = _sse(data)
    assert parsed[-2]["error"]["code"] == "bedrock_throttled"
    assert parsed[-1] == "[DONE]"
    (usage_event,) = _events(app)
    assert usage_event["completed"] is False and usage_event["error_code"] == "bedrock_throttled"
    assert usage_event["output_tokens"] == 3 and usage_event["status"] == "success"


def test_an_error_before_any_output_is_not_billed(dynamodb, customer_token):
    customer, token = customer_token
    with FakeBedrock() as fake:
        fake.add_error("modelStreamErrorException", "The model failed")
        app = make_app(dynamodb, fake.client())
        response = app.handle_streaming(event(chat(model=MODEL, stream=True), token=token))
        parsed = _sse(b"".join(response))
        response.close()
    assert parsed[0]["error"]["code"] == "bedrock_error"
    (usage_event,) = _events(app)
    assert usage_event["status"] == "upstream_error"
    assert _month(dynamodb, customer.customer_id).get("quota_tokens", 0) == 0


def test_a_stream_closed_before_it_started_still_writes_its_one_event(dynamodb, customer_token):
    _customer, token = customer_token
    app = make_app(dynamodb)
    response = app.handle_streaming(event(chat(stream=True), token=token))
    response.close()
    (usage_event,) = _events(app)
    assert usage_event["completed"] is False


def test_the_sandbox_streams_several_chunks_and_buffered_mode_joins_them(dynamodb, customer_token):
    _customer, token = customer_token
    app = make_app(dynamodb)
    body = chat(text="one two three four five", stream=True)
    chunks = list(app.handle_streaming(event(body, token=token)))
    assert len(chunks) >= 5
    buffered = app.handle(event(body, token=token))
    parsed = _sse(buffered["body"].encode())
    text = "".join(c["choices"][0]["delta"].get("content", "") for c in parsed[:-1])
    assert text == "Echo: one two three four five"


def _decode_frames(data: bytes, operation: str) -> list[dict]:
    model = botocore.session.get_session().get_service_model("bedrock-runtime")
    shape = model.operation_model(operation).output_shape
    member = "stream" if operation == "ConverseStream" else "body"

    class Raw:
        def stream(self):
            buffer = io.BytesIO(data)
            while piece := buffer.read(5):
                yield piece

        def close(self):
            pass

    return list(EventStream(Raw(), shape.members[member], EventStreamJSONParser(), operation))


def test_converse_stream_path_answers_bedrock_frames_botocore_decodes(dynamodb, customer_token):
    _customer, token = customer_token
    app = make_app(dynamodb)
    body = {"messages": [{"role": "user", "content": [{"text": "hi there"}]}]}
    response = app.handle_streaming(
        event(body, token=token, path="/model/sandbox.echo-v1/converse-stream")
    )
    assert response.headers["Content-Type"] == "application/vnd.amazon.eventstream"
    frames = _decode_frames(b"".join(response), "ConverseStream")
    assert frames[0] == {"messageStart": {"role": "assistant"}}
    text = "".join(
        f["contentBlockDelta"]["delta"]["text"] for f in frames if "contentBlockDelta" in f
    )
    assert text == "Echo: hi there"
    assert frames[-1]["metadata"]["usage"]["outputTokens"] >= 1


def test_invoke_with_response_stream_path_carries_invocation_metrics(dynamodb, customer_token):
    _customer, token = customer_token
    app = make_app(dynamodb)
    native = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 50,
        "messages": [{"role": "user", "content": "hello"}],
    }
    response = app.handle_streaming(
        event(native, token=token, path="/model/sandbox.echo-v1/invoke-with-response-stream")
    )
    frames = _decode_frames(b"".join(response), "InvokeModelWithResponseStream")
    payloads = [json.loads(f["chunk"]["bytes"]) for f in frames]
    assert payloads[0]["type"] == "message_start"
    metrics = payloads[-1]["amazon-bedrock-invocationMetrics"]
    (usage_event,) = _events(app)
    assert usage_event["output_tokens"] == metrics["outputTokenCount"]
    assert usage_event["api_format"] == "bedrock" and usage_event["completed"] is True


def test_an_upstream_stream_without_close_is_relayed_whole(dynamodb, customer_token):
    _customer, token = customer_token

    class PlainIteratorBedrock:
        def converse_stream(self, **kwargs):
            events = [
                {"messageStart": {"role": "assistant"}},
                {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": "ok"}}},
                {"messageStop": {"stopReason": "end_turn"}},
                {"metadata": {"usage": {"inputTokens": 1, "outputTokens": 1, "totalTokens": 2}}},
            ]
            return {"stream": iter(events)}

    app = make_app(dynamodb, PlainIteratorBedrock())
    response = app.handle_streaming(event(chat(model=MODEL, stream=True), token=token))
    parsed = _sse(b"".join(response))
    response.close()
    assert all("error" not in chunk for chunk in parsed[:-1]) and parsed[-1] == "[DONE]"
    (usage_event,) = _events(app)
    assert usage_event["completed"] is True and usage_event["error_code"] is None


NATIVE = {
    "modelId": "sandbox.echo-v1",
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "one two three"}],
}


def test_the_native_body_streams_the_models_own_chunks(dynamodb, customer_token):
    _customer, token = customer_token
    app = make_app(dynamodb)
    response = app.handle_streaming(event({**NATIVE, "stream": True}, token=token, path="/bedrock"))
    assert response.headers["Content-Type"] == "text/event-stream"
    parsed = _sse(b"".join(response))
    assert parsed[0]["type"] == "message_start" and parsed[-1] == "[DONE]"
    text = "".join(p["delta"]["text"] for p in parsed[:-1] if p["type"] == "content_block_delta")
    assert text == "Echo: one two three"
    (usage_event,) = _events(app)
    assert usage_event["stream"] is True and usage_event["api_format"] == "native"


def test_the_tagged_body_streams_deltas_then_done_with_usage_and_tags(dynamodb, customer_token):
    _customer, token = customer_token
    app = make_app(dynamodb)
    body = {
        "model": "sandbox",
        "prompt": {"messages": [{"role": "user", "content": "one two three"}]},
        "tags": {"applicationId": "helper"},
        "stream": True,
    }
    parsed = _sse(b"".join(app.handle_streaming(event(body, token=token, path="/bedrock"))))
    deltas = [p["text"] for p in parsed if isinstance(p, dict) and p.get("type") == "delta"]
    assert "".join(deltas) == "Echo: one two three" and len(deltas) >= 2
    done = parsed[-2]
    assert done["type"] == "done" and done["tags"] == {"applicationId": "helper"}
    assert done["usage"]["output_tokens"] >= 1 and done["stop_reason"] == "end_turn"


@pytest.mark.parametrize("value", ["yes", 1, {"a": 1}])
def test_stream_must_be_a_boolean(dynamodb, customer_token, value):
    _customer, token = customer_token
    app = make_app(dynamodb)
    for body in ({**NATIVE, "stream": value}, chat(stream=value)):
        response = app.handle(event(body, token=token, path="/bedrock"))
        assert response["statusCode"] == 400, response["body"]
        assert "'stream' must be a boolean" in response["body"]
