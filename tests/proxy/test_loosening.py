"""Every change is seen on the very next request, by a warm container with the DEFAULT settings:
a request refused on cached items reads them again (once) before it is refused, so a
reactivation, a wider IP allowlist, a model allowed, a higher budget or token limit are all
admitted at once. A refused request costs one read of the two items more, never a loop, and an
admitted warm request reads nothing. Operators may configure a bound
(PROXY_REFUSAL_RECHECK_SECONDS): a refusal decided on items read more recently then stands."""

import dataclasses

from proxy import contract

from .conftest import body_of, chat, converse_response, event, make_app, put_customer, put_token
from .test_money_limits import COST, UNIT, answer, nova, put_price


class Clock:
    """Never moves unless the test moves it: no refusal is re-read because time passed."""

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


def warm_app(dynamodb, bedrock=None):
    """An app with the default settings, on a clock that stands still."""
    app = make_app(dynamodb, bedrock)
    assert app.settings.refusal_recheck_seconds == 0
    with_clock(app)
    return app


# --- loosening, default settings, warm cache: the very next request --------------------------


def test_reactivation_is_seen_on_the_next_request(dynamodb):
    app = warm_app(dynamodb)
    customer = put_customer(dynamodb)
    token, _ = put_token(dynamodb, customer)
    assert app.handle(event(chat(), token=token))["statusCode"] == 200  # warm
    suspended = dataclasses.replace(customer, version=2, status="suspended")
    assert contract.put_customer(dynamodb, suspended)
    assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"  # next request
    assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"  # cached
    assert app.auth.customers.get(customer.customer_id).status == "suspended"
    assert contract.put_customer(
        dynamodb, dataclasses.replace(suspended, version=3, status="active")
    )
    assert app.handle(event(chat(), token=token))["statusCode"] == 200  # the very next one
    assert app.auth.customers.get(customer.customer_id).status == "active"  # cache refreshed


def test_a_wider_ip_allowlist_is_seen_on_the_next_request(dynamodb):
    app = warm_app(dynamodb)
    customer = put_customer(dynamodb, ip_allowlist=["198.51.100.0/24"])
    token, _ = put_token(dynamodb, customer)
    assert app.handle(event(chat(), token=token, ip="198.51.100.7"))["statusCode"] == 200  # warm
    assert code_of(app.handle(event(chat(), token=token))) == "ip_not_allowed"  # 203.0.113.7
    wider = dataclasses.replace(
        customer, version=2, ip_allowlist=["198.51.100.0/24", "203.0.113.0/24"]
    )
    assert contract.put_customer(dynamodb, wider)
    assert app.handle(event(chat(), token=token))["statusCode"] == 200


def test_a_model_allowed_to_the_account_or_the_token_is_seen_on_the_next_request(dynamodb, bedrock):
    app = warm_app(dynamodb, bedrock)
    customer = put_customer(dynamodb, allowed_models=["nova-lite"])
    token, item = put_token(dynamodb, customer, allowed_models=["nova-lite"])
    assert app.handle(event(chat(), token=token))["statusCode"] == 200  # warm (the sandbox)
    haiku = chat(model="claude-3-haiku")
    assert code_of(app.handle(event(haiku, token=token))) == "model_not_allowed"
    allowed = dataclasses.replace(
        customer, version=2, allowed_models=["nova-lite", "claude-3-haiku"]
    )
    assert contract.put_customer(dynamodb, allowed)
    # The account allows it now, the token not yet: still refused, by the token.
    assert code_of(app.handle(event(haiku, token=token))) == "model_not_allowed"
    assert contract.put_token(
        dynamodb,
        dataclasses.replace(item, version=2, allowed_models=["nova-lite", "claude-3-haiku"]),
    )
    bedrock.stubber.add_response("converse", converse_response())
    assert app.handle(event(haiku, token=token))["statusCode"] == 200


def test_a_higher_monthly_budget_is_seen_on_the_next_request(dynamodb, bedrock):
    """Budget 0.50: the 4th call ends at 0.56, the 5th is refused; raised to 2.00 (a higher
    value, not cleared), the very next call is admitted."""
    put_price(dynamodb)
    app = warm_app(dynamodb, bedrock)
    customer = put_customer(dynamodb, monthly_budget_micros=UNIT // 2)
    token, _ = put_token(dynamodb, customer)
    answer(bedrock.stubber, 5)
    assert [app.handle(event(nova(), token=token))["statusCode"] for _ in range(4)] == [200] * 4
    refused = app.handle(event(nova(), token=token))
    assert code_of(refused) == "budget_exceeded"
    assert body_of(refused)["error"]["limit"]["spent"] == "0.56"
    raised = dataclasses.replace(customer, version=2, monthly_budget_micros=2 * UNIT)
    assert contract.put_customer(dynamodb, raised)
    admitted = app.handle(event(nova(), token=token))
    assert admitted["statusCode"] == 200
    assert admitted["headers"]["X-RateLimit-Limit-Budget-Month"] == "2.00 USD"
    assert 5 * COST < 2 * UNIT


def test_higher_token_limits_are_seen_on_the_next_request(dynamodb, bedrock):
    """The token's daily limit and its budget raised: each seen on the very next request."""
    put_price(dynamodb)
    app = warm_app(dynamodb, bedrock)
    customer = put_customer(dynamodb)
    token, item = put_token(dynamodb, customer, daily_request_limit=2)
    assert [app.handle(event(chat(), token=token))["statusCode"] for _ in range(2)] == [200] * 2
    assert code_of(app.handle(event(chat(), token=token))) == "daily_limit_exceeded"
    item = dataclasses.replace(item, version=2, daily_request_limit=10, monthly_budget_micros=COST)
    assert contract.put_token(dynamodb, item)
    answer(bedrock.stubber, 2)
    assert app.handle(event(chat(), token=token))["statusCode"] == 200
    assert app.handle(event(nova(), token=token))["statusCode"] == 200  # spent 0.14 of 0.14
    refused = app.handle(event(nova(), token=token))
    assert code_of(refused) == "budget_exceeded" and refused["headers"]["X-RateLimit-Scope"] == (
        "token"
    )
    raised = dataclasses.replace(item, version=3, monthly_budget_micros=UNIT)
    assert contract.put_token(dynamodb, raised)
    assert app.handle(event(nova(), token=token))["statusCode"] == 200


# --- what a refusal costs --------------------------------------------------------------------


def test_each_refusal_costs_one_read_of_the_two_items_and_no_more(dynamodb):
    app = warm_app(dynamodb)
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
    for _ in range(5):
        calls.clear()
        assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"
        assert calls == ["GetItem", "GetItem"]  # refused on cached items: read once more


def test_a_cold_refusal_is_not_read_twice(dynamodb):
    app = make_app(dynamodb)
    customer = put_customer(dynamodb, status="suspended")
    token, _ = put_token(dynamodb, customer)
    calls = count_calls(dynamodb)
    assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"
    assert calls == ["GetItem", "GetItem"]  # read by this request: nothing fresher to read


def test_admitted_warm_requests_still_make_two_calls(dynamodb):
    app = make_app(dynamodb)
    customer = put_customer(dynamodb, ip_allowlist=["203.0.113.0/24"], allowed_models=["sandbox"])
    token, _ = put_token(dynamodb, customer)
    app.handle(event(chat(), token=token))
    calls = count_calls(dynamodb)
    for _ in range(3):
        assert app.handle(event(chat(), token=token))["statusCode"] == 200
    assert calls == ["TransactWriteItems", "TransactWriteItems"] * 3


def test_token_refusals_are_final_and_read_nothing(dynamodb):
    """The portal never makes a revoked token valid again: no re-read."""
    app = make_app(dynamodb)
    customer = put_customer(dynamodb)
    token, item = put_token(dynamodb, customer)
    assert app.handle(event(chat(), token=token))["statusCode"] == 200
    assert contract.put_token(dynamodb, dataclasses.replace(item, status="revoked", version=2))
    assert code_of(app.handle(event(chat(), token=token))) == "token_revoked"
    calls = count_calls(dynamodb)
    for _ in range(5):
        assert code_of(app.handle(event(chat(), token=token))) == "token_revoked"
    assert calls == []


def test_tightening_is_seen_on_the_very_next_request_whatever_the_bound(dynamodb):
    app = make_app(dynamodb, refusal_recheck_seconds=60)
    customer = put_customer(dynamodb)
    token, _ = put_token(dynamodb, customer)
    assert app.handle(event(chat(), token=token))["statusCode"] == 200
    narrowed = dataclasses.replace(customer, version=2, ip_allowlist=["198.51.100.0/24"])
    assert contract.put_customer(dynamodb, narrowed)
    assert code_of(app.handle(event(chat(), token=token))) == "ip_not_allowed"


# --- a bound configured by the operator ------------------------------------------------------


def test_a_configured_bound_spares_reads_and_delays_loosening_by_at_most_the_bound(dynamodb):
    app = make_app(dynamodb, refusal_recheck_seconds=2)
    clock = with_clock(app)
    customer = put_customer(dynamodb)
    token, _ = put_token(dynamodb, customer)
    assert app.handle(event(chat(), token=token))["statusCode"] == 200
    suspended = dataclasses.replace(customer, version=2, status="suspended")
    assert contract.put_customer(dynamodb, suspended)
    assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"
    calls = count_calls(dynamodb)
    for _ in range(20):
        clock.now += 0.05
        assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"
    assert calls == []  # one second of a client hammering: not a single DynamoDB call
    clock.now += 1.1
    assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"
    assert calls == ["GetItem", "GetItem"]  # past the bound: read once more, still refused
    assert contract.put_customer(
        dynamodb, dataclasses.replace(suspended, version=3, status="active")
    )
    calls.clear()
    clock.now += 1.5  # within the bound: still the refusal the container read
    assert code_of(app.handle(event(chat(), token=token))) == "customer_suspended"
    assert calls == []
    clock.now += 0.6  # the bound has passed: read again, admitted
    assert app.handle(event(chat(), token=token))["statusCode"] == 200


def test_the_bound_is_read_from_the_environment(monkeypatch):
    from proxy import config

    monkeypatch.delenv("PROXY_REFUSAL_RECHECK_SECONDS", raising=False)
    assert config.Settings().refusal_recheck_seconds == 0
    assert config.load().refusal_recheck_seconds == 0
    monkeypatch.setenv("PROXY_REFUSAL_RECHECK_SECONDS", "0.5")
    assert config.load().refusal_recheck_seconds == 0.5
    monkeypatch.setenv("PROXY_REFUSAL_RECHECK_SECONDS", "-1")
    assert config.load().refusal_recheck_seconds == 0
