"""The official OpenAI SDK, unchanged, against the local runner over a real socket: a
streamed chat (chunks as produced, the usage chunk last), and a tool call round trip."""

import json

import openai
import pytest

from .conftest import put_customer, put_token
from .test_local_server import proxy, serve  # noqa: F401 (fixtures)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


@pytest.fixture
def client(proxy):  # noqa: F811
    customer = put_customer(proxy["dynamodb"])
    token, _ = put_token(proxy["dynamodb"], customer)
    return openai.OpenAI(
        base_url=f"http://127.0.0.1:{proxy['http']}/v1", api_key=token, max_retries=0
    )


def test_streamed_chat_with_the_usage_chunk(client):
    stream = client.chat.completions.create(
        model="sandbox.echo-v1",
        messages=[{"role": "user", "content": "one two three four"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: one two three four"
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) >= 3
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens >= 1


def test_tool_call_round_trip_streamed_and_not(client):
    messages = [{"role": "user", "content": "Paris"}]
    first = client.chat.completions.create(
        model="sandbox.echo-v1", messages=messages, tools=[WEATHER]
    )
    (call,) = first.choices[0].message.tool_calls
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}

    streamed = client.chat.completions.create(
        model="sandbox.echo-v1", messages=messages, tools=[WEATHER], stream=True
    )
    pieces = [
        c.choices[0].delta.tool_calls[0]
        for c in streamed
        if c.choices and c.choices[0].delta.tool_calls
    ]
    assert pieces[0].id == call.id
    assert "".join(p.function.arguments or "" for p in pieces) == call.function.arguments

    messages += [
        {"role": "assistant", "content": None, "tool_calls": [call.model_dump()]},
        {"role": "tool", "tool_call_id": call.id, "content": "18 C"},
    ]
    answer = client.chat.completions.create(
        model="sandbox.echo-v1", messages=messages, tools=[WEATHER]
    )
    assert answer.choices[0].message.content == "Echo: 18 C"
