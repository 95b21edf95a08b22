"""Every refusal has its own code in the one error shape, and never a stack trace."""

import base64
import json
import time

import pytest
from botocore.exceptions import ClientError

from proxy import contract

from .conftest import body_of, chat, event, make_app, put_customer, put_token


def error_of(response) -> dict:
    body = body_of(response)
    assert set(body) == {"error"}
    assert set(body["error"]) == {"type", "code", "message", "request_id"}
    assert "Traceback" not in response["body"]
    assert response["headers"]["X-Request-Id"] == body["error"]["request_id"]
    return body["error"]


def test_missing_token(app):
    response = app.handle(event(chat()))
    assert response["statusCode"] == 401
    assert error_of(response)["code"] == "missing_token"


@pytest.mark.parametrize("header", ["Basic abc", "Bearer", "Token bup_x"])
def test_wrong_scheme_is_missing(app, header):
    response = app.handle(event(chat(), headers={"authorization": header}))
    assert error_of(response)["code"] == "missing_token"


def test_malformed_token_never_reads_dynamodb(app, dynamodb):
    good = contract.generate_token()
    typo = good[:-1] + ("A" if good[-1] != "A" else "B")
    calls = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda **kw: calls.append(kw))
    response = app.handle(event(chat(), token=typo))
    assert error_of(response)["code"] == "malformed_token" and response["statusCode"] == 401
    assert calls == []


def test_unknown_token(app, dynamodb):
    response = app.handle(event(chat(), token=contract.generate_token()))
    assert error_of(response)["code"] == "unknown_token"


def test_expired_token(app, dynamodb):
    customer = put_customer(dynamodb)
    token, _ = put_token(dynamodb, customer, expires_at=int(time.time()) - 1)
    assert error_of(app.handle(event(chat(), token=token)))["code"] == "token_expired"


def test_rotated_token_past_its_grace(app, dynamodb):
    customer = put_customer(dynamodb)
    ended = int(time.time()) - 1
    token, _ = put_token(dynamodb, customer, expires_at=ended, grace_ends_at=ended)
    response = app.handle(event(chat(), token=token))
    assert response["statusCode"] == 401
    assert error_of(response)["code"] == "token_grace_ended"


def test_a_cached_token_stops_when_its_grace_ends_without_a_read(app, dynamodb, monkeypatch):
    from proxy import auth

    customer = put_customer(dynamodb)
    grace_end = int(time.time()) + 3600
    token, _ = put_token(dynamodb, customer, expires_at=grace_end, grace_ends_at=grace_end)
    assert app.handle(event(chat(), token=token))["statusCode"] == 200  # cached now
    reads = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda **kw: reads.append(kw))
    monkeypatch.setattr(auth.time, "time", lambda: grace_end + 1)
    response = app.handle(event(chat(), token=token))
    assert error_of(response)["code"] == "token_grace_ended"
    assert reads == []  # refused from the cached item's own end, before any DynamoDB call


def test_revoked_token(app, dynamodb):
    customer = put_customer(dynamodb)
    token, _ = put_token(dynamodb, customer, status="revoked")
    response = app.handle(event(chat(), token=token))
    assert response["statusCode"] == 401
    assert error_of(response)["code"] == "token_revoked"


@pytest.mark.parametrize(
    ("status", "code"), [("suspended", "customer_suspended"), ("closed", "customer_closed")]
)
def test_inactive_customer(app, dynamodb, status, code):
    customer = put_customer(dynamodb, status=status)
    token, _ = put_token(dynamodb, customer)
    response = app.handle(event(chat(), token=token))
    assert response["statusCode"] == 403
    assert error_of(response)["code"] == code


def test_ip_allowlist(app, dynamodb):
    customer = put_customer(dynamodb, ip_allowlist=["198.51.100.0/24", "2001:db8::/32"])
    token, _ = put_token(dynamodb, customer)
    assert app.handle(event(chat(), token=token, ip="198.51.100.9"))["statusCode"] == 200
    assert app.handle(event(chat(), token=token, ip="2001:db8::1"))["statusCode"] == 200
    refused = app.handle(event(chat(), token=token, ip="203.0.113.7"))
    assert refused["statusCode"] == 403 and error_of(refused)["code"] == "ip_not_allowed"


def test_model_outside_allowed_list(app, dynamodb):
    customer = put_customer(dynamodb, allowed_models=["nova-lite"])
    token, _ = put_token(dynamodb, customer)
    refused = app.handle(event(chat(model="anthropic.claude-3-haiku-20240307-v1:0"), token=token))
    assert refused["statusCode"] == 403
    error = error_of(refused)
    assert error["code"] == "model_not_allowed" and error["type"] == "model_access_error"
    # the sandbox stays usable for integration tests
    assert app.handle(event(chat(), token=token))["statusCode"] == 200


def test_unknown_model(app, principal):
    response = app.handle(event(chat(model="gpt-4o"), token=principal[0]))
    assert response["statusCode"] == 400 and error_of(response)["code"] == "unknown_model"


@pytest.mark.parametrize(
    ("raw", "headers", "status", "code"),
    [
        ("{not json", {}, 400, "invalid_json"),
        ("[1, 2]", {}, 400, "invalid_json"),
        ('{"model": "sandbox.echo-v1"}', {}, 400, "invalid_request"),
        ('{"model": "sandbox.echo-v1", "messages": "hi"}', {}, 400, "invalid_request"),
        (
            '{"model": "sandbox.echo-v1", "messages": [{"role": "tool", "content": "x"}]}',
            {},
            400,
            "invalid_request",
        ),
        ('{"model": 5, "messages": []}', {}, 400, "invalid_request"),
        (
            "a=b",
            {"content-type": "application/x-www-form-urlencoded"},
            415,
            "unsupported_content_type",
        ),
        ("x" * 2_000, {}, 413, "body_too_large"),
    ],
)
def test_bad_requests(dynamodb, principal, raw, headers, status, code):
    app = make_app(dynamodb, max_body_bytes=1_000)
    response = app.handle(event(token=principal[0], raw=raw, headers=headers))
    assert response["statusCode"] == status, response["body"]
    assert error_of(response)["code"] == code


def test_deeply_nested_json_is_a_400_not_a_500(app, principal):
    """json.loads raises RecursionError (not ValueError) past the interpreter's depth limit."""
    response = app.handle(event(token=principal[0], raw="[" * 100_000))
    assert response["statusCode"] == 400, response["body"]
    assert error_of(response)["code"] == "invalid_json"


def test_base64_body(app, principal):
    raw = base64.b64encode(json.dumps(chat()).encode()).decode()
    request = event(token=principal[0], raw=raw)
    request["isBase64Encoded"] = True
    assert app.handle(request)["statusCode"] == 200


def test_routes_and_methods(app, principal):
    assert (
        error_of(app.handle(event(chat(), token=principal[0], path="/nope")))["code"] == "not_found"
    )
    wrong = app.handle(event(chat(), token=principal[0], method="GET"))
    assert wrong["statusCode"] == 405 and error_of(wrong)["code"] == "method_not_allowed"


def test_rest_api_v1_event(app, principal):
    response = app.handle(event(chat(), token=principal[0], path="/bedrock", version=1))
    assert response["statusCode"] == 200, response["body"]


@pytest.mark.parametrize(
    ("code", "status", "ours", "retry"),
    [
        ("ThrottlingException", 503, "bedrock_throttled", True),
        ("ServiceUnavailableException", 503, "bedrock_unavailable", True),
        ("ModelTimeoutException", 504, "bedrock_timeout", False),
        ("ValidationException", 400, "bedrock_validation", False),
        ("AccessDeniedException", 502, "bedrock_error", False),
    ],
)
def test_bedrock_errors_are_mapped_and_not_billed(
    app, dynamodb, bedrock, principal, code, status, ours, retry
):
    from datetime import UTC, datetime

    token, customer, _ = principal
    bedrock.stubber.add_client_error(
        "converse", service_error_code=code, service_message="nope", http_status_code=400
    )
    response = app.handle(event(chat(model="nova-lite"), token=token))
    assert response["statusCode"] == status
    error = error_of(response)
    assert error["code"] == ours and error["type"] == "upstream_error"
    assert ("Retry-After" in response["headers"]) is retry
    snapshot = contract.get_usage_snapshot(dynamodb, customer.customer_id, datetime.now(UTC).date())
    assert snapshot["day"]["requests"] == 0  # the reserved request was taken back
    assert snapshot["day_by_model"] == {}
    (logged,) = app.sink.stream.events()
    assert logged["status"] == "upstream_error" and logged["error_code"] == ours


def test_a_bedrock_read_timeout_is_a_504_and_not_billed(dynamodb):
    from botocore.exceptions import ReadTimeoutError

    class SlowBedrock:
        def converse(self, **kwargs):
            raise ReadTimeoutError(endpoint_url="http://127.0.0.1:1/model/converse")

    customer = put_customer(dynamodb, monthly_token_quota=10_000)
    token, _ = put_token(dynamodb, customer)
    app = make_app(dynamodb, SlowBedrock())
    response = app.handle(event(chat(model="nova-lite", max_tokens=900), token=token))
    assert response["statusCode"] == 504 and error_of(response)["code"] == "bedrock_timeout"
    from datetime import UTC, datetime

    snapshot = contract.get_usage_snapshot(dynamodb, customer.customer_id, datetime.now(UTC).date())
    assert snapshot["month"]["requests"] == 0 and snapshot["month_by_model"] == {}
    (logged,) = app.sink.stream.events()
    assert logged["status"] == "upstream_error" and logged["error_code"] == "bedrock_timeout"


def test_internal_error_is_a_500_without_trace(app, dynamodb, principal, monkeypatch):
    def boom(**kwargs):
        raise ClientError(
            {"Error": {"Code": "InternalServerError", "Message": "x"}}, "TransactWriteItems"
        )

    monkeypatch.setattr(dynamodb, "transact_write_items", boom)
    response = app.handle(event(chat(), token=principal[0]))
    assert response["statusCode"] == 500 and error_of(response)["code"] == "internal_error"
    (logged,) = app.sink.stream.events()  # still exactly one event, not billable
    assert logged["status"] == "error" and logged["error_code"] == "internal_error"
    assert logged["http_status"] == 500 and logged["input_tokens"] == 0


def test_no_bedrock_configured(dynamodb, principal):
    app = make_app(dynamodb, bedrock_enabled=False)
    response = app.handle(event(chat(model="nova-lite"), token=principal[0]))
    assert response["statusCode"] == 502 and error_of(response)["code"] == "bedrock_not_configured"


def test_cors_only_for_configured_origins(dynamodb, principal):
    app = make_app(dynamodb, cors_origins=("https://app.example",))
    ok = app.handle(event(chat(), token=principal[0], headers={"origin": "https://app.example"}))
    assert ok["headers"]["Access-Control-Allow-Origin"] == "https://app.example"
    other = app.handle(
        event(chat(), token=principal[0], headers={"origin": "https://evil.example"})
    )
    assert "Access-Control-Allow-Origin" not in other["headers"]
    preflight = app.handle(event(method="OPTIONS", headers={"origin": "https://app.example"}))
    assert preflight["statusCode"] == 204
    assert "Authorization" in preflight["headers"]["Access-Control-Allow-Headers"]
    refused = app.handle(event(method="OPTIONS", headers={"origin": "https://evil.example"}))
    assert refused["statusCode"] == 403 and error_of(refused)["code"] == "origin_not_allowed"
