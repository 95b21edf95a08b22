"""Printable text: what the portal stores and writes out of text it did not type itself.

Control characters (Unicode category Cc: U+0000-U+001F, U+007F-U+009F) and lone surrogates
(U+D800-U+DFFF, which Python's json.loads makes of "\\ud800") can reach the portal in usage
events. PostgreSQL text cannot hold NUL, UTF-8 cannot encode a lone surrogate, and neither
belongs in a CSV cell. The proxy refuses them in tags (proxy/formats.py has its own copy of the
pattern: the Lambda package does not import the portal).
"""

import re

UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
REPLACEMENT = "\ufffd"


def unprintable(text: str) -> str | None:
    """The first character that makes `text` unfit to store, described, or None:
    "a control character (U+0000)", "a lone surrogate (U+D800)"."""
    found = UNPRINTABLE.search(text)
    if found is None:
        return None
    code = ord(found.group())
    kind = "a lone surrogate" if 0xD800 <= code <= 0xDFFF else "a control character"
    return f"{kind} (U+{code:04X})"


def printable(text: str) -> str:
    """`text` with every control character and lone surrogate replaced by U+FFFD."""
    return UNPRINTABLE.sub(REPLACEMENT, text)
