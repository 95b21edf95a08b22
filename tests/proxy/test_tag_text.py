"""Tags are printable text: the handler refuses control characters and lone surrogates in every
place a tag comes from (body tags, OpenAI metadata and `user`, X-* headers) with a 400 naming the
tag, before anything is counted or written; ordinary Unicode tags pass unchanged."""

import json
from datetime import UTC, datetime

import pytest

from core.text import UNPRINTABLE
from proxy import contract, formats

from .conftest import body_of, chat, event, make_app

NATIVE = {
    "modelId": "sandbox.echo-v1",
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 100,
    "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
}
PROMPT = {"model": "sandbox", "prompt": {"messages": [{"role": "user", "content": "Hi"}]}}

# (text, what the message must name)
BAD = [
    ("evil\u0000app", "a control character (U+0000)"),
    ("tab\there", "a control character (U+0009)"),
    ("line\nbreak", "a control character (U+000A)"),
    ("del\u007f", "a control character (U+007F)"),
    ("c1\u0085", "a control character (U+0085)"),
    ("c1\u009f", "a control character (U+009F)"),
    ("lone\ud800", "a lone surrogate (U+D800)"),
    ("\udfffback", "a lone surrogate (U+DFFF)"),
]
GOOD = ["café", "日本", "🚀 launch", "a" * 128, "<script>x</script>"]


@pytest.fixture
def app_with_events(dynamodb, tmp_path):
    return make_app(dynamodb, usage_events_dir=str(tmp_path)), tmp_path


def _requests(tag: str, text: str):
    """(label, path, body, headers): the one tag `tag` set to `text` through each route."""
    header = {
        "applicationId": "x-application-id",
        "costCenter": "x-cost-center",
        "environment": "x-environment",
        "userId": "x-user-id",
    }[tag]
    yield "native tags", "/bedrock", {**NATIVE, "tags": {tag: text}}, {}
    yield "prompt tags", "/bedrock", {**PROMPT, "tags": {tag: text}}, {}
    yield "openai metadata", "/v1/chat/completions", chat(metadata={tag: text}), {}
    yield "native header", "/bedrock", NATIVE, {header: text}
    yield "prompt header", "/bedrock", PROMPT, {header: text}
    yield "openai header", "/v1/chat/completions", chat(), {header: text}


def _send(app, token, path, body, headers):
    # json.dumps escapes NUL as \u0000 and a lone surrogate as \ud800, as a client would send.
    return app.handle(event(raw=json.dumps(body), token=token, path=path, headers=headers))


def _refusal(response) -> str:
    assert response["statusCode"] == 400, response["body"]
    error = body_of(response)["error"]
    assert (error["code"], error["type"]) == ("invalid_request", "validation_error")
    return error["message"]


@pytest.mark.parametrize("text,problem", BAD, ids=[repr(t) for t, _ in BAD])
@pytest.mark.parametrize("tag", ["applicationId", "costCenter", "environment", "userId"])
def test_unprintable_tags_are_refused_everywhere(app_with_events, principal, tag, text, problem):
    app, events_dir = app_with_events
    token, customer, _ = principal
    for label, path, body, headers in _requests(tag, text):
        message = _refusal(_send(app, token, path, body, headers))
        if "header" in label:
            assert message.startswith("Header X-") and f"(tag {tag}) contains" in message
        else:
            assert message.startswith(f"Tag {tag} contains"), (label, message)
        assert message.endswith(f"contains {problem}; use printable text."), (label, message)
    # Nothing was admitted, counted or written as a usage event.
    assert not list(events_dir.rglob("*.jsonl"))
    assert all(e["status"] == "rejected" for e in app.sink.stream.events())
    today = datetime.now(UTC).date()
    snapshot = contract.get_usage_snapshot(app.dynamodb, customer.customer_id, today)
    assert snapshot["day"]["requests"] == 0


@pytest.mark.parametrize("text,problem", BAD, ids=[repr(t) for t, _ in BAD])
def test_openai_user_field_is_refused_with_the_tag_named(app_with_events, principal, text, problem):
    app, _ = app_with_events
    message = _refusal(_send(app, principal[0], "/v1/chat/completions", chat(user=text), {}))
    assert message == f"'user' (tag userId) contains {problem}; use printable text."


def test_the_message_says_what_to_fix(app_with_events, principal):
    app, _ = app_with_events
    body = {**PROMPT, "tags": {"applicationId": "evil\u0000app"}}
    message = _refusal(_send(app, principal[0], "/bedrock", body, {}))
    assert message == "Tag applicationId contains a control character (U+0000); use printable text."
    header = _send(app, principal[0], "/bedrock", PROMPT, {"x-cost-center": "cc\u00071"})
    assert _refusal(header) == (
        "Header X-Cost-Center (tag costCenter) contains a control character (U+0007); "
        "use printable text."
    )


def test_the_length_limit_still_applies(app_with_events, principal):
    app, _ = app_with_events
    body = {**PROMPT, "tags": {"environment": "e" * 129}}
    assert "<= 128" in _refusal(_send(app, principal[0], "/bedrock", body, {}))


@pytest.mark.parametrize("text", GOOD)
def test_unicode_tags_pass_unchanged(app_with_events, principal, text):
    app, events_dir = app_with_events
    token = principal[0]
    sent = [
        ("/bedrock", {**NATIVE, "tags": {"applicationId": text}}, {}),
        ("/bedrock", {**PROMPT, "tags": {"applicationId": text}}, {}),
        ("/v1/chat/completions", chat(metadata={"applicationId": text}, user=text), {}),
        ("/v1/chat/completions", chat(), {"x-application-id": text, "x-user-id": text}),
    ]
    for path, body, headers in sent:
        response = _send(app, token, path, body, headers)
        assert response["statusCode"] == 200, response["body"]
    events = app.sink.stream.events()
    assert [e["tags"]["applicationId"] for e in events] == [text] * 4
    assert [e["tags"]["userId"] for e in events[2:]] == [text, text]
    stored = [
        json.loads(line)
        for path in events_dir.rglob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert [e["tags"]["applicationId"] for e in stored] == [text] * 4


def test_the_proxy_and_the_portal_refuse_the_same_characters():
    """The Lambda package keeps its own copy of the pattern (it does not import the portal)."""
    assert formats._UNPRINTABLE.pattern == UNPRINTABLE.pattern
    for code in (*range(0x20), *range(0x7F, 0xA0), 0xD800, 0xDBFF, 0xDC00, 0xDFFF):
        assert formats.tag_problem(f"a{chr(code)}b") is not None, hex(code)
    for text in ("café", "日本", "🚀", "\u00a0nbsp", "\u200bzero width", "\ufffd"):
        assert formats.tag_problem(text) is None, text
