"""Loosening reaches a warm container within PROXY_REFUSAL_RECHECK_SECONDS: a request refused on
a cached customer item read that long ago or more is decided again on a fresh read; within the
bound, a repeated refusal costs no DynamoDB call. Tightening stays on the very next request."""

import dataclasses

from proxy import contract

from .conftest import body_of, chat, event, make_app, put_customer, put_token


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def with_clock(app):
    """The app's cache and refusal bound on a clock the test moves."""
    clock = Clock()
    app.auth.clock = app.auth.tokens.clock = app.auth.customers.clock = clock
    return clock


def count_calls(client) -> list[str]:
    calls = []
    client.meta.events.register(
        "before-call.dynamodb", lambda model, **kw: calls.append(model.name)
    )
    return calls


def code_of(response) -> str:
    return body_of(response)["error"]["code"]


def test_reactivation_is_seen_once_the_bound_has_passed(dynamodb):
    app = make_app(dynamodb, refusal_recheck_seconds=5)
    clock = with_clock(app)
    customer = put_customer(dynamodb)
    token, _ = put_token(dynamodb, customer)
    assert app.handle(event(chat(), token=token))["statusCode"] == 200  # warm
    suspended = dataclasses.replace(customer, version=2, status="suspended")
    assert contract.put_customer(dynamodb, suspended)
    assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"  # next request
    assert contract.put_customer(
        dynamodb, dataclasses.replace(suspended, version=3, status="active")
    )
    clock.now += 4.9  # within the bound: still the refusal the container read
    assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"
    clock.now += 0.1  # the bound has passed: read again, admitted
    assert app.handle(event(chat(), token=token))["statusCode"] == 200
    assert app.auth.customers.get(customer.customer_id).status == "active"  # cache refreshed


def test_a_repeated_refusal_reads_nothing_within_the_bound(dynamodb):
    app = make_app(dynamodb, refusal_recheck_seconds=2)
    clock = with_clock(app)
    customer = put_customer(dynamodb)
    token, _ = put_token(dynamodb, customer)
    assert app.handle(event(chat(), token=token))["statusCode"] == 200
    assert contract.put_customer(
        dynamodb, dataclasses.replace(customer, version=2, status="suspended")
    )
    calls = count_calls(dynamodb)
    assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"
    # the admission (refused on the version) and one read of each item
    assert calls == ["TransactWriteItems", "GetItem", "GetItem"]
    calls.clear()
    for _ in range(20):
        clock.now += 0.05
        assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"
    assert calls == []  # one second of a client hammering: not a single DynamoDB call
    clock.now += 2
    assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"
    assert calls == ["GetItem", "GetItem"]  # past the bound: read once more, still refused
    calls.clear()
    assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"
    assert calls == []


def test_a_cold_refusal_is_not_read_twice(dynamodb):
    app = make_app(dynamodb, refusal_recheck_seconds=0)
    customer = put_customer(dynamodb, status="suspended")
    token, _ = put_token(dynamodb, customer)
    calls = count_calls(dynamodb)
    assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"
    assert calls == ["GetItem", "GetItem"]  # read by this request: nothing fresher to read


def test_a_wider_ip_allowlist_and_an_allowed_model_are_seen(dynamodb, bedrock):
    from .conftest import converse_response

    app = make_app(dynamodb, bedrock, refusal_recheck_seconds=0)
    customer = put_customer(
        dynamodb, ip_allowlist=["198.51.100.0/24"], allowed_models=["nova-lite"]
    )
    token, _ = put_token(dynamodb, customer)
    assert app.handle(event(chat(), token=token, ip="198.51.100.7"))["statusCode"] == 200  # warm
    assert code_of(app.handle(event(chat(), token=token))) == "ip_not_allowed"
    wider = dataclasses.replace(
        customer, version=2, ip_allowlist=["198.51.100.0/24", "203.0.113.0/24"]
    )
    assert contract.put_customer(dynamodb, wider)
    assert app.handle(event(chat(), token=token))["statusCode"] == 200

    haiku = chat(model="claude-3-haiku")
    assert code_of(app.handle(event(haiku, token=token))) == "model_not_allowed"
    allowed = dataclasses.replace(wider, version=3, allowed_models=["nova-lite", "claude-3-haiku"])
    assert contract.put_customer(dynamodb, allowed)
    bedrock.stubber.add_response("converse", converse_response())
    assert app.handle(event(haiku, token=token))["statusCode"] == 200


def test_admitted_warm_requests_still_make_two_calls_with_the_recheck_on(dynamodb):
    app = make_app(dynamodb, refusal_recheck_seconds=0)
    customer = put_customer(dynamodb, ip_allowlist=["203.0.113.0/24"], allowed_models=["sandbox"])
    token, _ = put_token(dynamodb, customer)
    app.handle(event(chat(), token=token))
    calls = count_calls(dynamodb)
    for _ in range(3):
        assert app.handle(event(chat(), token=token))["statusCode"] == 200
    assert calls == ["TransactWriteItems", "TransactWriteItems"] * 3


def test_token_refusals_are_final_and_read_nothing(dynamodb):
    """The portal never makes a revoked token valid again: no re-read, whatever the bound."""
    app = make_app(dynamodb, refusal_recheck_seconds=0)
    customer = put_customer(dynamodb)
    token, item = put_token(dynamodb, customer)
    assert app.handle(event(chat(), token=token))["statusCode"] == 200
    assert contract.put_token(dynamodb, dataclasses.replace(item, status="revoked", version=2))
    assert code_of(app.handle(event(chat(), token=token))) == "token_revoked"
    calls = count_calls(dynamodb)
    for _ in range(5):
        assert code_of(app.handle(event(chat(), token=token))) == "token_revoked"
    assert calls == []


def test_tightening_is_still_seen_on_the_very_next_request(dynamodb):
    app = make_app(dynamodb, refusal_recheck_seconds=60)
    customer = put_customer(dynamodb)
    token, _ = put_token(dynamodb, customer)
    assert app.handle(event(chat(), token=token))["statusCode"] == 200
    narrowed = dataclasses.replace(customer, version=2, ip_allowlist=["198.51.100.0/24"])
    assert contract.put_customer(dynamodb, narrowed)
    assert code_of(app.handle(event(chat(), token=token))) == "ip_not_allowed"


def test_the_bound_is_read_from_the_environment(monkeypatch):
    from proxy import config

    assert config.Settings().refusal_recheck_seconds == 2.0
    monkeypatch.setenv("PROXY_REFUSAL_RECHECK_SECONDS", "0.5")
    assert config.load().refusal_recheck_seconds == 0.5
    monkeypatch.setenv("PROXY_REFUSAL_RECHECK_SECONDS", "-1")
    assert config.load().refusal_recheck_seconds == 2.0
