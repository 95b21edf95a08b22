"""The API's one body parser: JSON, with a depth limit.

Python's JSON decoder recurses once per nesting level, so a body of 100,000 `[` raises
RecursionError (DRF's JSONParser only turns ValueError into a 400). Nothing the API accepts
nests deeper than a few levels, so anything past MAX_DEPTH is refused before it reaches a
serializer, a validator that walks it, or a JSON column.
"""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

MAX_DEPTH = 32


def nesting_depth(value) -> int:
    """The deepest level of lists/objects in a decoded JSON value, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


class DepthLimitedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError(
                f"JSON parse error - the body is nested too deeply (at most {MAX_DEPTH} levels)."
            ) from None
        if nesting_depth(data) > MAX_DEPTH:
            raise ParseError(
                f"JSON parse error - the body is nested too deeply (at most {MAX_DEPTH} levels)."
            )
        return data
