"""The real proxy handler against items written by the portal's real services (outbox -> moto)."""

from datetime import UTC, datetime

import pytest

from customers import services
from proxy import contract

from .conftest import body_of, chat, event, make_app

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def proxy_app(aws):
    return make_app(aws.client("dynamodb"))


@pytest.fixture
def customer(aws, staff_user):
    """Onboarded through the service, so the outbox delivers the customer item to DynamoDB."""
    return services.customer_create(
        name="Acme Analytics", contact_email="billing@acme.example", actor=staff_user
    )


def call(app, token, **kwargs):
    return app.handle(event(chat(**kwargs), token=token))


def test_token_from_the_portal_works_and_revocation_stops_it_next_request(
    proxy_app, aws, customer, staff_user
):
    issued = services.token_create(customer=customer, actor=staff_user)
    for _ in range(3):
        assert call(proxy_app, issued.plaintext)["statusCode"] == 200
    services.token_revoke(token=issued.token, actor=staff_user)
    response = call(proxy_app, issued.plaintext)
    assert response["statusCode"] == 401
    assert body_of(response)["error"]["code"] == "token_revoked"
    snapshot = contract.get_usage_snapshot(
        aws.client("dynamodb"), str(customer.id), datetime.now(UTC).date()
    )
    assert snapshot["day"]["requests"] == 3


def test_rotation_keeps_the_old_token_during_grace_then_zero_grace_stops_it(
    proxy_app, customer, staff_user
):
    first = services.token_create(customer=customer, actor=staff_user)
    assert call(proxy_app, first.plaintext)["statusCode"] == 200
    second = services.token_rotate(token=first.token, grace_hours=1, actor=staff_user)
    assert call(proxy_app, first.plaintext)["statusCode"] == 200  # still in grace
    assert call(proxy_app, second.plaintext)["statusCode"] == 200
    third = services.token_rotate(token=second.token, grace_hours=0, actor=staff_user)
    assert body_of(call(proxy_app, second.plaintext))["error"]["code"] == "token_revoked"
    assert call(proxy_app, third.plaintext)["statusCode"] == 200


def test_suspension_and_limits_set_in_the_portal(proxy_app, customer, staff_user):
    issued = services.token_create(customer=customer, actor=staff_user)
    assert call(proxy_app, issued.plaintext)["statusCode"] == 200
    services.customer_update_limits(customer=customer, actor=staff_user, daily_request_limit=2)
    assert call(proxy_app, issued.plaintext)["statusCode"] == 200
    refused = call(proxy_app, issued.plaintext)
    assert refused["statusCode"] == 429 and refused["headers"]["X-RateLimit-Limit"] == "2"
    services.customer_suspend(customer=customer, actor=staff_user)
    assert body_of(call(proxy_app, issued.plaintext))["error"]["code"] == "customer_suspended"


def test_past_grace_and_expired_have_their_own_codes(aws, customer, staff_user):
    from datetime import timedelta

    from proxy.auth import check_token
    from proxy.errors import ProxyError

    client = aws.client("dynamodb")
    old = services.token_create(customer=customer, actor=staff_user)
    services.token_rotate(token=old.token, grace_hours=2, actor=staff_user)
    rotated = contract.get_token(client, contract.hash_token(old.plaintext))
    assert rotated.grace_ends_at is not None and rotated.stopped_by_grace_end
    check_token(rotated, rotated.grace_ends_at - 1)  # still in grace: accepted
    with pytest.raises(ProxyError) as refused:
        check_token(rotated, rotated.grace_ends_at)
    assert refused.value.code == "token_grace_ended"

    expiring = services.token_create(
        customer=customer,
        actor=staff_user,
        expires_at=datetime.now(UTC) + timedelta(days=1),
    )
    item = contract.get_token(client, contract.hash_token(expiring.plaintext))
    assert item.grace_ends_at is None
    with pytest.raises(ProxyError) as refused:
        check_token(item, item.expires_at + 1)
    assert refused.value.code == "token_expired"


# --- loosening in the portal reaches a warm container ----------------------------------------


def delivered(customer):
    """The portal's outbox written to DynamoDB (it is already, on commit; this makes it sure)."""
    from customers.sync import outbox_deliver

    outbox_deliver(customer_id=customer.pk, force=True)


def code_of(response) -> str:
    return body_of(response)["error"]["code"]


def test_reactivation_in_the_portal_is_admitted_by_a_warm_container(aws, customer, staff_user):
    app = make_app(aws.client("dynamodb"))
    issued = services.token_create(customer=customer, actor=staff_user)
    assert call(app, issued.plaintext)["statusCode"] == 200  # warm
    services.customer_suspend(customer=customer, actor=staff_user)
    delivered(customer)
    assert code_of(call(app, issued.plaintext)) == "customer_suspended"
    assert code_of(call(app, issued.plaintext)) == "customer_suspended"  # from the cache
    services.customer_reactivate(customer=customer, actor=staff_user)
    delivered(customer)
    assert call(app, issued.plaintext)["statusCode"] == 200


def test_a_wider_ip_allowlist_in_the_portal_is_seen(aws, customer, staff_user):
    app = make_app(aws.client("dynamodb"))
    issued = services.token_create(customer=customer, actor=staff_user)
    assert call(app, issued.plaintext)["statusCode"] == 200  # from 203.0.113.7
    services.customer_update_limits(
        customer=customer, actor=staff_user, ip_allowlist="198.51.100.0/24"
    )
    delivered(customer)
    assert code_of(call(app, issued.plaintext)) == "ip_not_allowed"
    services.customer_update_limits(
        customer=customer, actor=staff_user, ip_allowlist="198.51.100.0/24, 203.0.113.0/24"
    )
    delivered(customer)
    assert call(app, issued.plaintext)["statusCode"] == 200


def test_a_model_allowed_in_the_portal_is_seen(aws, customer, staff_user):
    from botocore.stub import Stubber

    from .conftest import converse_response

    bedrock = aws.client("bedrock-runtime")
    app = make_app(aws.client("dynamodb"), bedrock)
    issued = services.token_create(customer=customer, actor=staff_user)
    services.customer_update_limits(customer=customer, actor=staff_user, allowed_models="nova-lite")
    delivered(customer)
    assert call(app, issued.plaintext)["statusCode"] == 200  # warm (the sandbox)
    assert code_of(call(app, issued.plaintext, model="claude-3-haiku")) == "model_not_allowed"
    services.customer_update_limits(
        customer=customer, actor=staff_user, allowed_models=["nova-lite", "claude-3-haiku"]
    )
    delivered(customer)
    with Stubber(bedrock) as stubber:
        stubber.add_response("converse", converse_response())
        assert call(app, issued.plaintext, model="claude-3-haiku")["statusCode"] == 200


def test_a_repeated_refusal_costs_no_dynamodb_call_within_the_bound(aws, customer, staff_user):
    client = aws.client("dynamodb")
    app = make_app(client, refusal_recheck_seconds=30)
    clock = [1000.0]
    app.auth.clock = app.auth.tokens.clock = app.auth.customers.clock = lambda: clock[0]
    issued = services.token_create(customer=customer, actor=staff_user)
    assert call(app, issued.plaintext)["statusCode"] == 200
    services.customer_suspend(customer=customer, actor=staff_user)
    delivered(customer)
    calls = []
    client.meta.events.register(
        "before-call.dynamodb", lambda model, **kw: calls.append(model.name)
    )
    assert code_of(call(app, issued.plaintext)) == "customer_suspended"
    assert calls == ["TransactWriteItems", "GetItem", "GetItem"]
    calls.clear()
    services.customer_reactivate(customer=customer, actor=staff_user)
    delivered(customer)
    for _ in range(10):
        clock[0] += 1
        assert code_of(call(app, issued.plaintext)) == "customer_suspended"
    assert calls == []  # within the bound: decided on what was read, not a call
    clock[0] += 20  # 30 s after the read: the next request reads again and is admitted
    assert call(app, issued.plaintext)["statusCode"] == 200
    assert calls == ["GetItem", "GetItem", "TransactWriteItems", "TransactWriteItems"]


# --- per-token limits and tokens per minute set in the portal -------------------------------


def test_a_token_limit_set_in_the_portal_refuses_inside_the_customers(
    proxy_app, aws, customer, staff_user
):
    """Customer 10 a day; one token 3 a day: its 4th request is refused with the token scope,
    while another token of the same customer is still admitted."""
    services.customer_update_limits(customer=customer, actor=staff_user, daily_request_limit=10)
    limited = services.token_create(
        customer=customer, actor=staff_user, limits={"daily_request_limit": 3}
    )
    other = services.token_create(customer=customer, actor=staff_user)
    item = contract.get_token(aws.client("dynamodb"), contract.hash_token(limited.plaintext))
    assert item.daily_request_limit == 3  # delivered through the outbox
    assert [call(proxy_app, limited.plaintext)["statusCode"] for _ in range(3)] == [200] * 3
    refused = call(proxy_app, limited.plaintext)
    assert refused["statusCode"] == 429
    assert refused["headers"]["X-RateLimit-Scope"] == "token"
    assert refused["headers"]["X-RateLimit-Limit"] == "3"
    assert body_of(refused)["error"]["message"].startswith("Token daily request limit of 3")
    assert call(proxy_app, other.plaintext)["statusCode"] == 200


def test_a_token_limit_above_the_customers_leaves_the_customers_to_refuse(
    proxy_app, customer, staff_user
):
    services.customer_update_limits(customer=customer, actor=staff_user, daily_request_limit=2)
    issued = services.token_create(
        customer=customer, actor=staff_user, limits={"daily_request_limit": 50}
    )
    assert [call(proxy_app, issued.plaintext)["statusCode"] for _ in range(2)] == [200, 200]
    refused = call(proxy_app, issued.plaintext)
    assert refused["headers"]["X-RateLimit-Scope"] == "customer"
    assert refused["headers"]["X-RateLimit-Limit"] == "2"


def test_token_limit_changes_reach_a_warm_container_on_the_next_request(
    proxy_app, customer, staff_user
):
    issued = services.token_create(customer=customer, actor=staff_user)
    assert [call(proxy_app, issued.plaintext)["statusCode"] for _ in range(2)] == [200, 200]
    # tightened: the token item's version changed, so the admission reads it again
    services.token_update_limits(token=issued.token, actor=staff_user, daily_request_limit=1)
    delivered(customer)
    first = call(proxy_app, issued.plaintext)  # the token's counter starts with its limit
    assert first["statusCode"] == 200
    assert first["headers"]["X-RateLimit-Limit-Requests-Day"] == "1"
    assert code_of(call(proxy_app, issued.plaintext)) == "daily_limit_exceeded"
    # loosened (cleared): the next request is admitted
    services.token_update_limits(token=issued.token, actor=staff_user, daily_request_limit=None)
    delivered(customer)
    assert call(proxy_app, issued.plaintext)["statusCode"] == 200


def test_a_tokens_models_set_in_the_portal(aws, customer, staff_user):
    from botocore.stub import Stubber

    from .conftest import converse_response

    bedrock = aws.client("bedrock-runtime")
    app = make_app(aws.client("dynamodb"), bedrock)
    services.customer_update_limits(
        customer=customer, actor=staff_user, allowed_models=["nova-lite", "claude-3-haiku"]
    )
    issued = services.token_create(
        customer=customer, actor=staff_user, limits={"allowed_models": ["nova-lite"]}
    )
    assert call(app, issued.plaintext)["statusCode"] == 200  # warm (the sandbox)
    refused = call(app, issued.plaintext, model="claude-3-haiku")
    assert body_of(refused)["error"]["message"].endswith("is not enabled for this token.")
    # widened in the portal: seen by the warm container (a refusal on cached items reads again)
    services.token_update_limits(
        token=issued.token, actor=staff_user, allowed_models=["nova-lite", "claude-3-haiku"]
    )
    delivered(customer)
    with Stubber(bedrock) as stubber:
        stubber.add_response("converse", converse_response())
        assert call(app, issued.plaintext, model="claude-3-haiku")["statusCode"] == 200


def test_tokens_per_minute_set_in_the_portal(aws, customer, staff_user):
    from botocore.stub import Stubber

    from .conftest import converse_response

    bedrock = aws.client("bedrock-runtime")
    app = make_app(aws.client("dynamodb"), bedrock)
    services.customer_update_limits(customer=customer, actor=staff_user, tpm_limit=100)
    issued = services.token_create(customer=customer, actor=staff_user)
    assert contract.get_customer(aws.client("dynamodb"), str(customer.pk)).tpm_limit == 100
    with Stubber(bedrock) as stubber:
        stubber.add_response("converse", converse_response(input_tokens=90, output_tokens=30))
        assert call(app, issued.plaintext, model="nova-micro", max_tokens=50)["statusCode"] == 200
    refused = call(app, issued.plaintext, model="nova-micro", max_tokens=50)
    assert code_of(refused) == "tpm_limit_exceeded"
    assert 1 <= int(refused["headers"]["Retry-After"]) <= 60
    assert call(app, issued.plaintext)["statusCode"] == 200  # the free sandbox still answers


def test_two_dynamodb_calls_per_warm_request_with_every_limit_set_in_the_portal(
    aws, customer, staff_user
):
    from botocore.stub import Stubber

    from .conftest import converse_response

    client = aws.client("dynamodb")
    bedrock = aws.client("bedrock-runtime")
    app = make_app(client, bedrock)
    services.customer_update_limits(
        customer=customer,
        actor=staff_user,
        daily_request_limit=1000,
        rpm_limit=1000,
        monthly_token_quota=10**9,
        tpm_limit=10**6,
        allowed_models=["nova-micro", "nova-lite"],
    )
    issued = services.token_create(
        customer=customer,
        actor=staff_user,
        limits={
            "daily_request_limit": 100,
            "rpm_limit": 100,
            "monthly_token_quota": 10**6,
            "tpm_limit": 10**5,
            "allowed_models": ["nova-micro"],
        },
    )
    with Stubber(bedrock) as stubber:
        for _ in range(4):
            stubber.add_response("converse", converse_response())
        assert call(app, issued.plaintext, model="nova-micro")["statusCode"] == 200  # cold
        calls = []
        client.meta.events.register(
            "before-call.dynamodb", lambda model, **kw: calls.append(model.name)
        )
        for _ in range(3):
            assert call(app, issued.plaintext, model="nova-micro")["statusCode"] == 200
    assert calls == ["TransactWriteItems", "TransactWriteItems"] * 3


def test_admission_shards_set_in_the_portal_reach_the_proxy_and_keep_limits_exact(
    proxy_app, aws, customer, staff_user
):
    """A busy customer is spread over admission shards by the portal's own setting: the real
    handler admits through them, the daily limit stays exact, the portal's counters sum them,
    and suspension is refused on the next request."""
    client = aws.client("dynamodb")
    issued = services.token_create(customer=customer, actor=staff_user)
    services.customer_update_limits(
        customer=customer, actor=staff_user, counter_shards=4, daily_request_limit=6
    )
    assert contract.get_customer(client, str(customer.id)).counter_shards == 4
    statuses = [call(proxy_app, issued.plaintext)["statusCode"] for _ in range(8)]
    assert statuses == [200] * 6 + [429] * 2
    shards = client.query(
        TableName=contract.table_names().usage_counters,
        KeyConditionExpression="pk = :pk AND begins_with(sk, :admit)",
        ExpressionAttributeValues={
            ":pk": {"S": f"CUST#{customer.id}"},
            ":admit": {"S": contract.ADMISSION_SK_PREFIX},
        },
    )["Items"]
    assert 1 <= len(shards) <= 4  # admitted through the shards, not the one transaction
    snapshot = contract.get_usage_snapshot(client, str(customer.id), datetime.now(UTC).date())
    assert snapshot["day"]["requests"] == 6
    services.customer_suspend(customer=customer, actor=staff_user)
    assert body_of(call(proxy_app, issued.plaintext))["error"]["code"] == "customer_suspended"


@pytest.mark.parametrize("bad", [0, -1, 65, 10**20, "abc", "1.5", "4\x00", True, [4]])
def test_admission_shards_refuse_what_the_proxy_cannot_use(customer, staff_user, bad):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="Admission shards must be a whole number from 1"):
        services.customer_update_limits(customer=customer, actor=staff_user, counter_shards=bad)
    customer.refresh_from_db()
    assert customer.counter_shards == 1
