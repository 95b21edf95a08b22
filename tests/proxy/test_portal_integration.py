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
    app = make_app(aws.client("dynamodb"), refusal_recheck_seconds=0)
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
    app = make_app(aws.client("dynamodb"), refusal_recheck_seconds=0)
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
    app = make_app(aws.client("dynamodb"), bedrock, refusal_recheck_seconds=0)
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
