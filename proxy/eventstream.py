"""AWS's event-stream framing (application/vnd.amazon.eventstream), as Bedrock Runtime streams.

A message is: total length (4 bytes), headers length (4), CRC32 of those 8 bytes, headers,
payload, CRC32 of everything before it; all big-endian. A header is its name's length (1 byte),
the name, a type (7 = string), the value's length (2 bytes) and the value. botocore's own
decoder (botocore.eventstream) reads what this writes; tests check that.
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

CONTENT_TYPE = "application/vnd.amazon.eventstream"
_STRING = 7


def _headers(headers: dict[str, str]) -> bytes:
    out = bytearray()
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        out += struct.pack(">B", len(raw_name)) + raw_name
        out += struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    return bytes(out)


def message(headers: dict[str, str], payload: bytes) -> bytes:
    encoded = _headers(headers)
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + encoded + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(event_type: str, payload: dict[str, Any]) -> bytes:
    """One event of an event stream, e.g. ("contentBlockDelta", {...}) or ("chunk", {...})."""
    return message(
        {
            ":event-type": event_type,
            ":content-type": "application/json",
            ":message-type": "event",
        },
        json.dumps(payload, separators=(",", ":")).encode(),
    )


def exception(exception_type: str, text: str) -> bytes:
    """An error inside a stream; botocore raises it as EventStreamError with this code, e.g.
    "throttlingException" (the stream member's name)."""
    return message(
        {
            ":exception-type": exception_type,
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        json.dumps({"message": text}, separators=(",", ":")).encode(),
    )
