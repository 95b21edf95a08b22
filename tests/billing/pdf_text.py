"""The text of a PDF as a reader gets it: pypdf when it is installed; otherwise the page content
streams themselves, inflated with zlib, every string shown with Tj / TJ decoded (PDF literal
strings with their escapes; fpdf2 writes the core fonts' text that way, in Latin-1). Either way
the test reads what the file says, not what the code meant to write."""

import contextlib
import io
import re
import zlib

STREAM = re.compile(rb"stream\r?\n(.*?)\r?\nendstream", re.S)
TEXT_BLOCK = re.compile(rb"BT(.*?)ET", re.S)
SHOWN = re.compile(rb"\((?:\\.|[^\\()])*\)\s*Tj|\[(?:[^\]\\]|\\.)*\]\s*TJ", re.S)
LITERAL = re.compile(rb"\((?:\\.|[^\\()])*\)", re.S)
ESCAPES = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}


def _unescape(literal: bytes) -> bytes:
    body = literal[1:-1]
    out, i = bytearray(), 0
    while i < len(body):
        char = body[i : i + 1]
        if char != b"\\":
            out += char
            i += 1
            continue
        following = body[i + 1 : i + 2]
        octal = re.match(rb"[0-7]{1,3}", body[i + 1 : i + 4])
        if octal:
            out.append(int(octal.group(), 8))
            i += 1 + len(octal.group())
        else:
            out += ESCAPES.get(following, following)
            i += 2
    return bytes(out)


def _from_streams(data: bytes) -> str:
    lines = []
    for match in STREAM.finditer(data):
        content = match.group(1)
        # Not compressed, or not a content stream (then it has no BT ... ET): read as it is.
        with contextlib.suppress(zlib.error):
            content = zlib.decompress(content)
        for block in TEXT_BLOCK.finditer(content):
            shown = [
                b"".join(_unescape(literal) for literal in LITERAL.findall(run.group()))
                for run in SHOWN.finditer(block.group(1))
            ]
            if shown:
                lines.append(b"".join(shown).decode("latin-1"))
    return "\n".join(lines)


def pdf_text(data: bytes) -> str:
    assert data.startswith(b"%PDF"), data[:20]
    try:
        from pypdf import PdfReader
    except ImportError:
        return _from_streams(data)
    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
