"""OpenAI chat messages, tools and images -> Converse, and Converse tool use -> OpenAI.

- `tools` [{"type": "function", "function": {name, description, parameters}}] ->
  toolConfig.tools [{"toolSpec": {name, description, inputSchema: {"json": parameters}}}]
- `tool_choice` "auto" -> {"auto": {}}, "required" -> {"any": {}}, a named function ->
  {"tool": {"name"}}; "none" sends no tools (unless the conversation already holds tool calls,
  which Converse only accepts with a toolConfig: then the tools are sent with "auto").
- An assistant message's `tool_calls` -> toolUse blocks; `tool` messages -> toolResult blocks
  in the next user turn (consecutive ones merged: Converse wants user/assistant turns).
- Image parts `{"type": "image_url", "image_url": {"url": "data:image/png;base64,..."}}` ->
  image blocks (png, jpeg, gif, webp; data: URLs only, at most MAX_IMAGE_BYTES each).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from .errors import ProxyError

MAX_IMAGE_BYTES = 3_750_000  # Bedrock's limit for one image in Converse
MAX_TOOLS = 128
_DATA_URL = re.compile(r"^data:image/(?P<format>png|jpeg|jpg|gif|webp);base64,(?P<data>.*)$", re.S)
_TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_SCHEMA_KEYWORDS = {"type", "properties", "$ref", "anyOf", "oneOf", "allOf", "enum", "items"}


def _bad(message: str) -> ProxyError:
    return ProxyError("invalid_request", message)


# --- request: messages --------------------------------------------------------------------


def converse_messages(messages: object) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(system blocks, Converse messages) from OpenAI chat messages."""
    if not isinstance(messages, list) or not messages:
        raise _bad("'messages' must be a non-empty list.")
    system: list[dict[str, Any]] = []
    converted: list[dict[str, Any]] = []

    def add(role: str, blocks: list[dict[str, Any]]) -> None:
        if converted and converted[-1]["role"] == role:  # Converse wants alternation
            converted[-1]["content"].extend(blocks)
        else:
            converted.append({"role": role, "content": blocks})

    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _bad(f"messages[{index}] must be an object.")
        role = message.get("role")
        where = f"messages[{index}]"
        if role in ("system", "developer"):
            system.append({"text": _text_only(message.get("content"), where)})
        elif role == "user":
            add("user", _user_blocks(message.get("content"), where))
        elif role == "assistant":
            add("assistant", _assistant_blocks(message, where))
        elif role == "tool":
            add("user", [_tool_result(message, where)])
        else:
            raise _bad(f"{where}: unsupported role {str(role)[:20]!r}.")
    if not converted:
        raise _bad("At least one user message is required.")
    return system, converted


def _text_only(content: object, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts: list[str] = []
        for part in content:
            if not isinstance(part, dict) or part.get("type") != "text":
                raise _bad(f"{where}: only text parts are allowed here.")
            texts.append(str(part.get("text", "")))
        return "".join(texts)
    raise _bad(f"{where}: content must be a string or a list of parts.")


def _user_blocks(content: object, where: str) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"text": content}]
    if not isinstance(content, list) or not content:
        raise _bad(f"{where}: content must be a string or a non-empty list of parts.")
    blocks: list[dict[str, Any]] = []
    for number, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text":
            blocks.append({"text": str(part.get("text", ""))})
        elif kind == "image_url":
            blocks.append(_image(part.get("image_url"), f"{where}.content[{number}]"))
        else:
            raise _bad(
                f"{where}.content[{number}]: part type {str(kind)[:20]!r} is not supported "
                "(use text or image_url)."
            )
    return blocks


def _image(image_url: object, where: str) -> dict[str, Any]:
    url = image_url.get("url") if isinstance(image_url, dict) else image_url
    if not isinstance(url, str):
        raise _bad(f"{where}: image_url.url must be a string.")
    found = _DATA_URL.match(url[:100]) and _DATA_URL.match(url)
    if not found:
        raise _bad(
            f"{where}: only data: URLs of png, jpeg, gif or webp images are accepted "
            "(data:image/png;base64,...); the proxy does not fetch URLs."
        )
    if len(found["data"]) > MAX_IMAGE_BYTES * 4 // 3 + 4:
        raise _bad(f"{where}: the image is larger than {MAX_IMAGE_BYTES} bytes.")
    try:
        data = base64.b64decode(found["data"], validate=True)
    except (binascii.Error, ValueError):
        raise _bad(f"{where}: the image data is not valid base64.") from None
    image_format = "jpeg" if found["format"] == "jpg" else found["format"]
    return {"image": {"format": image_format, "source": {"bytes": data}}}


def _assistant_blocks(message: dict[str, Any], where: str) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    content = message.get("content")
    if content:
        blocks.append({"text": _text_only(content, where)})
    calls = message.get("tool_calls")
    if calls is not None:
        if not isinstance(calls, list):
            raise _bad(f"{where}.tool_calls must be a list.")
        for number, tool_call in enumerate(calls):
            blocks.append(_tool_use(tool_call, f"{where}.tool_calls[{number}]"))
    if not blocks:
        raise _bad(f"{where}: an assistant message needs content or tool_calls.")
    return blocks


def _tool_use(tool_call: Any, where: str) -> dict[str, Any]:
    function = tool_call.get("function") if isinstance(tool_call, dict) else None
    if not isinstance(function, dict) or not isinstance(tool_call.get("id"), str):
        raise _bad(f"{where} must have an id and a function.")
    arguments = function.get("arguments") or "{}"
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
    except ValueError:
        raise _bad(f"{where}.function.arguments is not valid JSON.") from None
    if not isinstance(parsed, dict):
        raise _bad(f"{where}.function.arguments must be a JSON object.")
    return {
        "toolUse": {
            "toolUseId": tool_call["id"],
            "name": _tool_name(function.get("name"), where),
            "input": parsed,
        }
    }


def _tool_result(message: dict[str, Any], where: str) -> dict[str, Any]:
    tool_call_id = message.get("tool_call_id")
    if not isinstance(tool_call_id, str) or not tool_call_id:
        raise _bad(f"{where}: a tool message needs tool_call_id.")
    return {
        "toolResult": {
            "toolUseId": tool_call_id,
            "content": [{"text": _text_only(message.get("content") or "", where)}],
        }
    }


def _tool_name(name: object, where: str) -> str:
    if not isinstance(name, str) or not _TOOL_NAME.match(name):
        raise _bad(f"{where}: a tool name must be 1-64 letters, digits, '_' or '-'.")
    return name


# --- request: tools -----------------------------------------------------------------------


def tool_config(
    tools: object, tool_choice: object, messages: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """Converse's toolConfig, or None when no tools are to be sent."""
    if tools is None or tools == []:
        if tool_choice not in (None, "none", "auto"):
            raise _bad("'tool_choice' needs 'tools'.")
        return _history_tools(messages)
    if not isinstance(tools, list) or len(tools) > MAX_TOOLS:
        raise _bad(f"'tools' must be a list of at most {MAX_TOOLS} tools.")
    specs = [_tool_spec(tool, f"tools[{number}]") for number, tool in enumerate(tools)]
    if tool_choice == "none":
        return _history_tools(messages, specs)
    config: dict[str, Any] = {"tools": specs}
    if tool_choice in (None, "auto"):
        config["toolChoice"] = {"auto": {}}
    elif tool_choice == "required":
        config["toolChoice"] = {"any": {}}
    elif isinstance(tool_choice, dict) and tool_choice.get("type") == "function":
        name = _tool_name((tool_choice.get("function") or {}).get("name"), "tool_choice")
        if name not in {spec["toolSpec"]["name"] for spec in specs}:
            raise _bad(f"tool_choice names {name!r}, which is not in 'tools'.")
        config["toolChoice"] = {"tool": {"name": name}}
    else:
        raise _bad("'tool_choice' must be 'auto', 'required', 'none' or a named function.")
    return config


def _history_tools(
    messages: list[dict[str, Any]], specs: list[dict[str, Any]] | None = None
) -> dict[str, Any] | None:
    used = any("toolUse" in b or "toolResult" in b for m in messages for b in m["content"])
    if not used:
        return None
    if not specs:
        raise _bad("The conversation holds tool calls: send the 'tools' they used.")
    return {"tools": specs, "toolChoice": {"auto": {}}}


def _tool_spec(tool: object, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict) or tool.get("type") != "function":
        raise _bad(f"{where}: only tools of type 'function' are supported.")
    function = tool.get("function")
    if not isinstance(function, dict):
        raise _bad(f"{where}.function must be an object.")
    spec: dict[str, Any] = {"name": _tool_name(function.get("name"), where)}
    description = function.get("description")
    if description is not None:
        if not isinstance(description, str):
            raise _bad(f"{where}.function.description must be a string.")
        spec["description"] = description
    parameters = function.get("parameters", {"type": "object", "properties": {}})
    if not isinstance(parameters, dict) or (parameters and not _SCHEMA_KEYWORDS & set(parameters)):
        raise _bad(
            f"{where}.function.parameters must be a JSON Schema object "
            '(e.g. {"type": "object", "properties": {...}}).'
        )
    if parameters.get("type", "object") != "object":
        raise _bad(f"{where}.function.parameters must describe an object (type 'object').")
    spec["inputSchema"] = {"json": parameters}
    return {"toolSpec": spec}


# --- answer -------------------------------------------------------------------------------


def tool_calls(response: dict[str, Any]) -> list[dict[str, Any]]:
    content = response.get("output", {}).get("message", {}).get("content", [])
    return [
        {
            "id": block["toolUse"].get("toolUseId"),
            "type": "function",
            "function": {
                "name": block["toolUse"].get("name"),
                "arguments": json.dumps(block["toolUse"].get("input") or {}),
            },
        }
        for block in content
        if "toolUse" in block
    ]
