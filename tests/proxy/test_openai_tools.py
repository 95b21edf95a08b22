"""Tools and images on the OpenAI endpoint map to Converse and back (buffered and streamed);
parameters Bedrock cannot honour are refused, naming them."""

import base64
import json

import pytest

from .conftest import body_of, chat, event

MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    },
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32


def _converse_answer(content, stop="end_turn"):
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": stop,
        "usage": {"inputTokens": 30, "outputTokens": 9, "totalTokens": 39},
        "metrics": {"latencyMs": 100},
    }


def test_tools_and_tool_choice_map_to_tool_config_and_tool_use_comes_back(app, bedrock, principal):
    token, _, _ = principal
    expected = {
        "modelId": MODEL,
        "messages": [{"role": "user", "content": [{"text": "Weather in Paris?"}]}],
        "toolConfig": {
            "tools": [
                {
                    "toolSpec": {
                        "name": "get_weather",
                        "description": "Weather in a city",
                        "inputSchema": {"json": WEATHER["function"]["parameters"]},
                    }
                }
            ],
            "toolChoice": {"tool": {"name": "get_weather"}},
        },
    }
    tool_use = {"toolUseId": "tooluse_1", "name": "get_weather", "input": {"city": "Paris"}}
    bedrock.stubber.add_response(
        "converse", _converse_answer([{"toolUse": tool_use}], "tool_use"), expected
    )
    body = chat(model=MODEL, text="Weather in Paris?", tools=[WEATHER])
    body["tool_choice"] = {"type": "function", "function": {"name": "get_weather"}}
    response = app.handle(event(body, token=token))
    assert response["statusCode"] == 200, response["body"]
    choice = body_of(response)["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["content"] is None
    assert choice["message"]["tool_calls"] == [
        {
            "id": "tooluse_1",
            "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": "Paris"})},
        }
    ]


def test_tool_calls_and_tool_results_round_trip_to_tool_use_and_tool_result(
    app, bedrock, principal
):
    token, _, _ = principal
    messages = [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "tooluse_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "tooluse_1", "content": "18 C, sunny"},
    ]
    expected_messages = [
        {"role": "user", "content": [{"text": "Weather in Paris?"}]},
        {
            "role": "assistant",
            "content": [
                {
                    "toolUse": {
                        "toolUseId": "tooluse_1",
                        "name": "get_weather",
                        "input": {"city": "Paris"},
                    }
                }
            ],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "tooluse_1", "content": [{"text": "18 C, sunny"}]}}
            ],
        },
    ]
    bedrock.stubber.add_response(
        "converse",
        _converse_answer([{"text": "It is sunny."}]),
        {
            "modelId": MODEL,
            "messages": expected_messages,
            "toolConfig": {
                "tools": [
                    {
                        "toolSpec": {
                            "name": "get_weather",
                            "description": "Weather in a city",
                            "inputSchema": {"json": WEATHER["function"]["parameters"]},
                        }
                    }
                ],
                "toolChoice": {"auto": {}},
            },
        },
    )
    body = {"model": MODEL, "messages": messages, "tools": [WEATHER]}
    response = app.handle(event(body, token=token))
    assert response["statusCode"] == 200, response["body"]
    assert body_of(response)["choices"][0]["message"]["content"] == "It is sunny."


def test_image_parts_become_image_blocks(app, bedrock, principal):
    token, _, _ = principal
    url = "data:image/png;base64," + base64.b64encode(PNG).decode()
    expected = {
        "modelId": MODEL,
        "messages": [
            {
                "role": "user",
                "content": [
                    {"text": "What is this?"},
                    {"image": {"format": "png", "source": {"bytes": PNG}}},
                ],
            }
        ],
    }
    bedrock.stubber.add_response("converse", _converse_answer([{"text": "A PNG."}]), expected)
    content = [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    response = app.handle(
        event({"model": MODEL, "messages": [{"role": "user", "content": content}]}, token=token)
    )
    assert response["statusCode"] == 200, response["body"]


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"logprobs": True}, "'logprobs' is not supported"),
        ({"n": 2}, "'n' is not supported"),
        ({"presence_penalty": 0.5}, "'presence_penalty' is not supported"),
        ({"frequency_penalty": 1}, "'frequency_penalty' is not supported"),
        ({"logit_bias": {"50256": -100}}, "'logit_bias' is not supported"),
        ({"functions": [{"name": "f"}]}, "use 'tools'"),
        ({"response_format": {"type": "json_schema"}}, "'response_format' is not supported"),
        ({"audio": {"voice": "alloy"}}, "'audio' is not supported"),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": "x"}}]},
            "must be a JSON Schema object",
        ),
        (
            {"tools": [{"type": "function", "function": {"name": "f", "parameters": {"a": 1}}}]},
            "must be a JSON Schema object",
        ),
        ({"tools": [{"type": "function", "function": {"name": "bad name!"}}]}, "tool name"),
        ({"tools": [{"type": "code_interpreter"}]}, "only tools of type 'function'"),
        (
            {"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "x"}}},
            "not in 'tools'",
        ),
        ({"tool_choice": "required"}, "'tool_choice' needs 'tools'"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "https://127.0.0.1/cat.png"}}
                        ],
                    }
                ]
            },
            "only data: URLs",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "image_url", "image_url": {"url": "data:image/png;base64,***"}}
                        ],
                    }
                ]
            },
            "not valid base64",
        ),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {
                                "type": "image_url",
                                "image_url": {"url": "data:image/png;base64," + "A" * 5_100_000},
                            }
                        ],
                    }
                ]
            },
            "larger than",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "part type 'input_audio'",
        ),
        ({"messages": [{"role": "tool", "content": "x"}]}, "needs tool_call_id"),
    ],
)
def test_bad_or_unhonourable_input_is_a_400_naming_it(app, principal, change, says):
    token, _, _ = principal
    response = app.handle(event({**chat(), **change}, token=token))
    assert response["statusCode"] == 400, response["body"]
    assert says in body_of(response)["error"]["message"]


def test_defaults_of_unhonourable_parameters_are_accepted(app, principal):
    token, _, _ = principal
    body = chat(
        n=1,
        logprobs=False,
        presence_penalty=0,
        frequency_penalty=0.0,
        response_format={"type": "text"},
        logit_bias={},
    )
    assert app.handle(event(body, token=token))["statusCode"] == 200


def test_the_sandbox_calls_the_tool_deterministically_then_answers_the_result(app, principal):
    token, _, _ = principal
    body = chat(text="Paris", tools=[WEATHER])
    first = body_of(app.handle(event(body, token=token)))
    again = body_of(app.handle(event(body, token=token)))
    (tool_call,) = first["choices"][0]["message"]["tool_calls"]
    assert tool_call == again["choices"][0]["message"]["tool_calls"][0]
    assert json.loads(tool_call["function"]["arguments"]) == {"city": "Paris", "days": 1}
    assert first["choices"][0]["finish_reason"] == "tool_calls"
    follow_up = {
        **body,
        "messages": [
            *body["messages"],
            {"role": "assistant", "content": None, "tool_calls": [tool_call]},
            {"role": "tool", "tool_call_id": tool_call["id"], "content": "18 C"},
        ],
    }
    answer = body_of(app.handle(event(follow_up, token=token)))
    assert answer["choices"][0]["message"]["content"] == "Echo: 18 C"


def test_streamed_tool_call_deltas(app, principal):
    token, _, _ = principal
    body = chat(text="Paris", tools=[WEATHER], stream=True)
    response = app.handle_streaming(event(body, token=token))
    chunks = [
        json.loads(block[len("data: ") :])
        for block in b"".join(response).decode().split("\n\n")
        if block.startswith("data: {")
    ]
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    calls = [d["tool_calls"][0] for d in deltas if "tool_calls" in d]
    assert calls[0]["id"].startswith("tooluse_sandbox_") and calls[0]["index"] == 0
    assert calls[0]["function"]["name"] == "get_weather"
    arguments = "".join(c["function"]["arguments"] for c in calls)
    assert json.loads(arguments) == {"city": "Paris", "days": 1}
    assert len(calls) >= 3  # the start, then the arguments in pieces
    assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
