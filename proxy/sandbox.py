"""The free sandbox model: deterministic answers without any AWS call, buffered or streamed
like Bedrock's own, with a deterministic tool call when tools are offered (docs/proxy.md)."""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from collections.abc import Iterator
from typing import Any

from . import models, upstream
from .formats import ModelCall


def sandbox_tokens(text: str) -> int:
    """About four characters per token, at least one: deterministic for customers' tests."""
    return max(1, math.ceil(len(text) / 4))


def _block_text(block: dict[str, Any]) -> str:
    if "toolResult" in block:
        return "".join(_block_text(b) for b in block["toolResult"].get("content") or [])
    text = block.get("text", "")
    return text if isinstance(text, str) else ""


def sandbox_tool_use(model_call: ModelCall) -> dict[str, Any] | None:
    """The sandbox's deterministic tool call: when tools are offered and the conversation does
    not already end with a tool result, it calls the chosen tool (else the first) with each
    required parameter filled in: strings with the last user text, numbers with 1, booleans
    with true."""
    config = model_call.params.get("toolConfig") if model_call.operation == "converse" else None
    if not config or not config.get("tools"):
        return None
    last = model_call.params["messages"][-1]
    if any("toolResult" in block for block in last["content"]):
        return None
    specs = [tool["toolSpec"] for tool in config["tools"] if "toolSpec" in tool]
    chosen = (config.get("toolChoice") or {}).get("tool", {}).get("name")
    spec = next((s for s in specs if s["name"] == chosen), specs[0] if specs else None)
    if spec is None:
        return None
    schema = (spec.get("inputSchema") or {}).get("json") or {}
    found = schema.get("properties")
    properties: dict[str, Any] = found if isinstance(found, dict) else {}
    text = _prompt_text(model_call)[1]
    samples = {"string": text, "integer": 1, "number": 1, "boolean": True}
    arguments: dict[str, Any] = {}
    for name in schema.get("required") or []:
        kind = (properties.get(name) or {}).get("type") if isinstance(name, str) else None
        if isinstance(name, str):
            arguments[name] = samples.get(kind) if isinstance(kind, str) else None
    digest = hashlib.sha256(f"{spec['name']}|{text}".encode()).hexdigest()[:16]
    return {"toolUseId": f"tooluse_sandbox_{digest}", "name": spec["name"], "input": arguments}


def _prompt_text(model_call: ModelCall) -> tuple[str, str]:
    """(all input text, last user text)."""
    if model_call.operation == "converse":
        params = model_call.params
        texts: list[str] = [b["text"] for b in params.get("system", [])]
        last = ""
        for message in params["messages"]:
            joined = "".join(_block_text(b) for b in message["content"])
            texts.append(joined)
            if message["role"] == "user":
                last = joined
        return "\n".join(texts), last
    try:
        body = json.loads(model_call.params["body"])
    except (ValueError, RecursionError):
        body = None
    if not isinstance(body, dict):
        text = bytes(model_call.params["body"]).decode("utf-8", "replace")
        return text, text
    texts, last = [], ""
    for message in body.get("messages") or []:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        texts.append(str(content))
        if message.get("role") == "user":
            last = str(content)
    if not texts:
        sent = body.get("inputText") or body.get("prompt")
        if isinstance(sent, str):
            last = sent
            texts.append(last)
    return "\n".join(texts), last


def answer(model_call: ModelCall) -> upstream.Result:
    prompt, last = _prompt_text(model_call)
    answer = f"Echo: {last}"
    usage = {
        **upstream.ZERO_USAGE,
        "input_tokens": sandbox_tokens(prompt),
        "output_tokens": sandbox_tokens(answer),
    }
    tool_use = sandbox_tool_use(model_call)
    if tool_use is not None:
        usage["output_tokens"] = sandbox_tokens(json.dumps(tool_use["input"]))
    response: dict[str, Any]
    if model_call.operation == "converse":
        content = [{"toolUse": tool_use}] if tool_use else [{"text": answer}]
        response = {
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": "tool_use" if tool_use else "end_turn",
            "usage": {
                "inputTokens": usage["input_tokens"],
                "outputTokens": usage["output_tokens"],
                "totalTokens": usage["input_tokens"] + usage["output_tokens"],
            },
            "metrics": {"latencyMs": 0},
        }
    else:  # Anthropic messages shape, what the native examples send
        response = {
            "id": "msg_sandbox",
            "type": "message",
            "role": "assistant",
            "model": models.SANDBOX_MODEL_ID,
            "content": [{"type": "text", "text": answer}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {
                "input_tokens": usage["input_tokens"],
                "output_tokens": usage["output_tokens"],
            },
        }
    return upstream.Result(response, usage)


SANDBOX_CHUNK_DELAY = float(os.environ.get("PROXY_SANDBOX_CHUNK_DELAY", "0.02"))


def _sandbox_pieces(answer: str) -> list[str]:
    words = answer.split(" ")
    pieces = [" ".join(words[i : i + 2]) for i in range(0, len(words), 2)]
    return [piece if i == 0 else " " + piece for i, piece in enumerate(pieces)]


def stream(model_call: ModelCall) -> Iterator[upstream.StreamEvent]:
    """The sandbox's answer in several chunks, a short delay apart, shaped like Bedrock's
    stream of the same operation (Converse events, or Anthropic-style InvokeModel chunks)."""
    result = answer(model_call)
    usage = result.usage
    pieces = _sandbox_pieces(f"Echo: {_prompt_text(model_call)[1]}")
    tool_use = sandbox_tool_use(model_call)
    if model_call.operation == "converse" and tool_use is not None:
        start = {"toolUse": {"toolUseId": tool_use["toolUseId"], "name": tool_use["name"]}}
        arguments = json.dumps(tool_use["input"])
        half = len(arguments) // 2
        yield {"messageStart": {"role": "assistant"}}
        yield {"contentBlockStart": {"contentBlockIndex": 0, "start": start}}
        for piece in (arguments[:half], arguments[half:]):
            time.sleep(SANDBOX_CHUNK_DELAY)
            yield {
                "contentBlockDelta": {
                    "contentBlockIndex": 0,
                    "delta": {"toolUse": {"input": piece}},
                }
            }
        yield {"contentBlockStop": {"contentBlockIndex": 0}}
        yield {"messageStop": {"stopReason": "tool_use"}}
        yield {"metadata": {"usage": result.response["usage"], "metrics": {"latencyMs": 0}}}
        return
    if model_call.operation == "converse":
        yield {"messageStart": {"role": "assistant"}}
        for piece in pieces:
            time.sleep(SANDBOX_CHUNK_DELAY)
            yield {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": piece}}}
        yield {"contentBlockStop": {"contentBlockIndex": 0}}
        yield {"messageStop": {"stopReason": "end_turn"}}
        yield {"metadata": {"usage": result.response["usage"], "metrics": {"latencyMs": 0}}}
        return
    chunks = [
        {
            "type": "message_start",
            "message": {
                "id": "msg_sandbox",
                "type": "message",
                "role": "assistant",
                "model": models.SANDBOX_MODEL_ID,
                "content": [],
                "usage": {"input_tokens": usage["input_tokens"], "output_tokens": 0},
            },
        },
        {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    ]
    for chunk in chunks:
        yield {"chunk": {"bytes": json.dumps(chunk).encode()}}
    for piece in pieces:
        time.sleep(SANDBOX_CHUNK_DELAY)
        delta = {
            "type": "content_block_delta",
            "index": 0,
            "delta": {"type": "text_delta", "text": piece},
        }
        yield {"chunk": {"bytes": json.dumps(delta).encode()}}
    closing = [
        {"type": "content_block_stop", "index": 0},
        {
            "type": "message_delta",
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": usage["output_tokens"]},
        },
        {
            "type": "message_stop",
            "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": usage["input_tokens"],
                "outputTokenCount": usage["output_tokens"],
                "invocationLatency": 0,
                "firstByteLatency": 0,
            },
        },
    ]
    for chunk in closing:
        yield {"chunk": {"bytes": json.dumps(chunk).encode()}}
