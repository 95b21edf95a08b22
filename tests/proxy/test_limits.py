"""Limits: one transaction per request, 429 with Retry-After and X-RateLimit-*, warnings first,
and revocation / suspension effective on the very next request despite a warm cache."""

import dataclasses
from datetime import UTC, datetime

from proxy import contract

from .conftest import body_of, chat, event, put_customer, put_token


def count_calls(client) -> list[str]:
    calls = []
    client.meta.events.register(
        "before-call.dynamodb", lambda model, **kw: calls.append(model.name)
    )
    return calls


def test_daily_limit_with_warning_then_429(app, dynamodb):
    customer = put_customer(dynamodb, daily_request_limit=5)
    token, _ = put_token(dynamodb, customer)
    statuses, warnings, responses = [], [], []
    for _ in range(7):
        response = app.handle(event(chat(), token=token))
        responses.append(response)
        statuses.append(response["statusCode"])
        warnings.append("X-RateLimit-Warning" in response["headers"])
    assert statuses == [200] * 5 + [429] * 2
    admitted = responses[0]["headers"]
    assert admitted["X-RateLimit-Limit-Requests-Day"] == "5"
    assert "X-RateLimit-Limit-Requests-Minute" not in admitted  # no rpm limit set
    assert responses[4]["headers"]["X-RateLimit-Warning"] == "daily usage above 80% of 5"
    # 80 % of 5 = 4: the 5th request is the first past the threshold
    assert warnings == [False] * 4 + [True] + [False] * 2
    refused = app.handle(event(chat(), token=token))
    error = body_of(refused)["error"]
    assert error["code"] == "daily_limit_exceeded" and error["type"] == "rate_limit_error"
    headers = refused["headers"]
    assert headers["X-RateLimit-Limit"] == "5" and headers["X-RateLimit-Remaining"] == "0"
    midnight = (
        int(datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0).timestamp())
        + 86400
    )
    assert headers["X-RateLimit-Reset"] == str(midnight)
    assert admitted["X-RateLimit-Reset-Requests-Day"] == str(midnight)
    assert 0 < int(headers["Retry-After"]) <= 86400
    snapshot = contract.get_usage_snapshot(dynamodb, customer.customer_id, datetime.now(UTC).date())
    assert snapshot["day"]["requests"] == 5  # refusals are not counted


def test_rpm_limit(app, dynamodb):
    customer = put_customer(dynamodb, rpm_limit=3)
    token, _ = put_token(dynamodb, customer)
    statuses = [app.handle(event(chat(), token=token))["statusCode"] for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    refused = app.handle(event(chat(), token=token))
    assert body_of(refused)["error"]["code"] == "rpm_limit_exceeded"
    assert 1 <= int(refused["headers"]["Retry-After"]) <= 60


def test_monthly_token_quota_counts_exact_tokens_of_priced_models(app, dynamodb, bedrock):
    from .conftest import converse_response

    customer = put_customer(dynamodb, monthly_token_quota=100)
    token, _ = put_token(dynamodb, customer)
    bedrock.stubber.add_response("converse", converse_response(input_tokens=60, output_tokens=30))
    bedrock.stubber.add_response("converse", converse_response(input_tokens=5, output_tokens=5))
    assert app.handle(event(chat(model="nova-micro"), token=token))["statusCode"] == 200
    second = app.handle(event(chat(model="nova-micro"), token=token))
    assert second["statusCode"] == 200 and "X-RateLimit-Warning" in second["headers"]
    refused = app.handle(event(chat(model="nova-micro"), token=token))
    assert refused["statusCode"] == 429
    assert body_of(refused)["error"]["code"] == "monthly_quota_exceeded"
    first_of_next = refused["headers"]["X-RateLimit-Reset"]
    assert datetime.fromtimestamp(int(first_of_next), UTC).day == 1


def test_two_dynamodb_calls_per_warm_request(app, dynamodb, principal):
    token = principal[0]
    app.handle(event(chat(), token=token))  # cold: reads the token and the customer
    calls = count_calls(dynamodb)
    for _ in range(3):
        assert app.handle(event(chat(), token=token))["statusCode"] == 200
    assert calls == ["TransactWriteItems", "TransactWriteItems"] * 3


def test_revocation_takes_effect_on_the_next_request_despite_warm_cache(app, dynamodb, principal):
    token, customer, item = principal
    for _ in range(3):
        assert app.handle(event(chat(), token=token))["statusCode"] == 200
    assert app.auth.tokens.get(item.token_hash) is not None  # warm
    revoked = dataclasses.replace(item, status="revoked", version=item.version + 1)
    assert contract.put_token(dynamodb, revoked)
    response = app.handle(event(chat(), token=token))
    assert response["statusCode"] == 401 and body_of(response)["error"]["code"] == "token_revoked"
    snapshot = contract.get_usage_snapshot(dynamodb, customer.customer_id, datetime.now(UTC).date())
    assert snapshot["day"]["requests"] == 3
    # and it stays refused (now from the refreshed cache or a read)
    assert app.handle(event(chat(), token=token))["statusCode"] == 401


def test_suspension_and_limit_changes_take_effect_at_once(app, dynamodb, principal):
    token, customer, _ = principal
    assert app.handle(event(chat(), token=token))["statusCode"] == 200
    tightened = dataclasses.replace(customer, version=2, allowed_models=["nova-lite"], rpm_limit=1)
    assert contract.put_customer(dynamodb, tightened)
    refused = app.handle(event(chat(model="claude-3-haiku"), token=token))
    assert body_of(refused)["error"]["code"] == "model_not_allowed"
    assert app.handle(event(chat(), token=token))["statusCode"] == 200
    assert body_of(app.handle(event(chat(), token=token)))["error"]["code"] == "rpm_limit_exceeded"
    suspended = dataclasses.replace(tightened, version=3, status="suspended")
    assert contract.put_customer(dynamodb, suspended)
    response = app.handle(event(chat(), token=token))
    assert response["statusCode"] == 403
    assert body_of(response)["error"]["code"] == "customer_suspended"


def test_zero_limit_refuses_everything(app, dynamodb):
    customer = put_customer(dynamodb, daily_request_limit=0)
    token, _ = put_token(dynamodb, customer)
    assert app.handle(event(chat(), token=token))["statusCode"] == 429


def test_periods_are_calendar_periods_in_utc_across_the_year_end():
    from proxy.limits import periods

    now = datetime(2024, 12, 31, 23, 59, 30, tzinfo=UTC)
    slots = periods(now)
    assert slots["rpm"] == (
        contract.minute_sk("2024-12-31T23:59"),
        datetime(2025, 1, 1, tzinfo=UTC),
    )
    assert slots["daily"] == (contract.day_sk(now.date()), datetime(2025, 1, 1, tzinfo=UTC))
    assert slots["monthly"] == (contract.month_sk(now.date()), datetime(2025, 1, 1, tzinfo=UTC))
    leap = periods(datetime(2024, 2, 29, 12, 0, tzinfo=UTC))
    assert leap["daily"][1] == datetime(2024, 3, 1, tzinfo=UTC)
    assert leap["monthly"][1] == datetime(2024, 3, 1, tzinfo=UTC)


def test_the_sandbox_does_not_use_the_monthly_token_quota(app, dynamodb):
    customer = put_customer(dynamodb, monthly_token_quota=5)
    token, _ = put_token(dynamodb, customer)
    long_prompt = "x" * 400  # 100 sandbox tokens in, more out: far over the quota of 5
    for _ in range(3):
        assert app.handle(event(chat(text=long_prompt), token=token))["statusCode"] == 200
    month = dynamodb.get_item(
        TableName=contract.table_names().usage_counters,
        Key={
            contract.COUNTER_PK: {"S": contract.counter_pk(customer.customer_id)},
            contract.COUNTER_SK: {"S": contract.month_sk(datetime.now(UTC).date())},
        },
    )["Item"]
    assert int(month["requests"]["N"]) == 3
    assert int(month["input_tokens"]["N"]) >= 300  # recorded, at price zero
    assert int(month.get("quota_tokens", {"N": "0"})["N"]) == 0


def test_revocation_reaches_every_warm_container_on_its_next_request(dynamodb, principal):
    """Three containers, each with the token in its cache: none serves it after the revoke."""
    from .conftest import make_app

    token, customer, item = principal
    containers = [make_app(dynamodb) for _ in range(3)]
    for app in containers:
        assert app.handle(event(chat(), token=token))["statusCode"] == 200
    assert contract.put_token(
        dynamodb, dataclasses.replace(item, status="revoked", version=item.version + 1)
    )
    codes = [body_of(app.handle(event(chat(), token=token)))["error"]["code"] for app in containers]
    assert codes == ["token_revoked"] * 3
    snapshot = contract.get_usage_snapshot(dynamodb, customer.customer_id, datetime.now(UTC).date())
    assert snapshot["day"]["requests"] == 3


def test_quota_hold_estimates_input_and_the_output_cap():
    from proxy import formats, openai_format

    call = openai_format.parse(chat(model="nova-lite", text="x" * 40, max_tokens=64), {}, {})
    assert formats.quota_hold(call) == 10 + 64
    uncapped = openai_format.parse(chat(model="nova-lite", text="x" * 40), {}, {})
    assert formats.quota_hold(uncapped) == 10 + formats.DEFAULT_OUTPUT_HOLD
    native = {"modelId": "amazon.nova-lite-v1:0", "inferenceConfig": {"max_new_tokens": 77}}
    parsed = formats.parse_native(native, {})
    assert formats.quota_hold(parsed) == -(-len(parsed.params["body"]) // 4) + 77
    llama = formats.parse_native({"modelId": "llama3", "prompt": "hi", "max_gen_len": 5}, {})
    assert llama.max_output_tokens == 5


def test_a_failed_call_gives_its_quota_hold_back(app, dynamodb, bedrock):
    customer = put_customer(dynamodb, monthly_token_quota=10_000)
    token, _ = put_token(dynamodb, customer)
    bedrock.stubber.add_client_error("converse", service_error_code="ModelTimeoutException")
    response = app.handle(event(chat(model="nova-lite", max_tokens=500), token=token))
    assert response["statusCode"] == 504
    month = dynamodb.get_item(
        TableName=contract.table_names().usage_counters,
        Key={
            contract.COUNTER_PK: {"S": contract.counter_pk(customer.customer_id)},
            contract.COUNTER_SK: {"S": contract.month_sk(datetime.now(UTC).date())},
        },
    )["Item"]
    assert int(month["quota_tokens"]["N"]) == 0 and int(month["requests"]["N"]) == 0
