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
