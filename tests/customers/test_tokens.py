from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from customers import services
from customers.models import Token
from proxy import contract

from .conftest import remote_token

pytestmark = pytest.mark.django_db


def test_token_create_stores_only_the_hash(ddb, customer, settings):
    settings.TOKEN_DEFAULT_LIFETIME_DAYS = 30
    issued = services.token_create(customer=customer, label="backend")
    plaintext = issued.plaintext
    assert plaintext.startswith(contract.TOKEN_PREFIX)
    assert contract.token_has_valid_checksum(plaintext)
    token = Token.objects.get()
    assert token.token_hash == contract.hash_token(plaintext)
    assert plaintext not in {str(v) for v in vars(token).values()}
    assert plaintext not in repr(issued)
    item = remote_token(ddb, plaintext)
    assert item.status == "active"
    assert item.customer_id == str(customer.pk)
    assert item.token_id == str(token.pk)
    expected_expiry = timezone.now() + timedelta(days=30)
    assert abs(item.expires_at - expected_expiry.timestamp()) < 5


def test_imported_token(ddb, customer):
    imported = "k3yFr0mTheOldSystem+/=abcdefgh"
    issued = services.token_create(customer=customer, plaintext=imported, expires_at=None)
    assert issued.plaintext == imported
    assert remote_token(ddb, imported).expires_at is None
    with pytest.raises(ValidationError):
        services.token_create(customer=customer, plaintext=imported)
    with pytest.raises(ValidationError):
        services.token_create(customer=customer, plaintext="short")
    with pytest.raises(ValidationError):
        services.token_create(customer=customer, plaintext="has spaces in it, twenty+")


def test_expiry_in_the_past_is_refused(ddb, customer):
    with pytest.raises(ValidationError):
        services.token_create(customer=customer, expires_at=timezone.now() - timedelta(days=1))


def test_several_tokens_per_customer(ddb, customer):
    a = services.token_create(customer=customer, label="app-a")
    b = services.token_create(customer=customer, label="app-b")
    assert a.plaintext != b.plaintext
    assert remote_token(ddb, a.plaintext).status == remote_token(ddb, b.plaintext).status


def test_rotate_keeps_old_token_for_the_grace_period(ddb, customer, issued):
    new = services.token_rotate(token=issued.token, grace_hours=2)
    old_item = remote_token(ddb, issued.plaintext)
    new_item = remote_token(ddb, new.plaintext)
    assert old_item.status == "active"
    grace_end = (timezone.now() + timedelta(hours=2)).timestamp()
    assert abs(old_item.expires_at - grace_end) < 5
    assert new_item.status == "active" and new_item.token_id == str(new.token.pk)
    issued.token.refresh_from_db()
    assert issued.token.replaced_by == new.token
    assert issued.token.state() == "rotating"
    assert new.token.label == "backend"
    with pytest.raises(ValidationError):
        services.token_rotate(token=issued.token)


def test_rotate_default_grace_is_24_hours(ddb, customer, issued):
    services.token_rotate(token=issued.token)
    issued.token.refresh_from_db()
    expected = timezone.now() + timedelta(hours=24)
    assert abs((issued.token.grace_until - expected).total_seconds()) < 5


def test_rotate_with_zero_grace_revokes_at_once(ddb, customer, issued):
    services.token_rotate(token=issued.token, grace_hours=0)
    assert remote_token(ddb, issued.plaintext).status == "revoked"


@pytest.mark.parametrize("hours", [-1, 24 * 90 + 1, float("nan"), float("inf")])
def test_rotate_refuses_bad_grace(ddb, customer, issued, hours):
    with pytest.raises(ValidationError, match="grace period"):
        services.token_rotate(token=issued.token, grace_hours=hours)
    issued.token.refresh_from_db()
    assert issued.token.state() == "active" and Token.objects.count() == 1


def test_revoke_is_effective_at_once(ddb, customer, issued):
    services.token_revoke(token=issued.token)
    assert remote_token(ddb, issued.plaintext).status == "revoked"
    assert issued.token.state() == "revoked"
    services.token_revoke(token=issued.token)  # idempotent
    assert remote_token(ddb, issued.plaintext).version == 2


def test_revoked_token_cannot_be_rotated(ddb, customer, issued):
    services.token_revoke(token=issued.token)
    with pytest.raises(ValidationError):
        services.token_rotate(token=issued.token)


def test_token_states(customer):
    now = timezone.now()
    token = Token(customer=customer, expires_at=now - timedelta(seconds=1))
    assert token.state(now) == "expired"
    token = Token(customer=customer, grace_until=now + timedelta(hours=1))
    assert token.state(now) == "rotating"
    token = Token(customer=customer)
    assert token.state(now) == "active"


def test_last_used_only_moves_forward(ddb, customer, issued):
    now = timezone.now()
    assert services.tokens_record_last_used(last_used={issued.token.pk: now}) == 1
    assert services.tokens_record_last_used(last_used={issued.token.pk: now - timedelta(1)}) == 0
    issued.token.refresh_from_db()
    assert issued.token.last_used_at == now


def test_imported_token_with_our_prefix_needs_a_valid_checksum(ddb, customer):
    good = contract.generate_token()
    bad = good[:-1] + ("A" if good[-1] != "A" else "B")
    with pytest.raises(ValidationError, match="checksum"):
        services.token_create(customer=customer, plaintext=bad)
    assert services.token_create(customer=customer, plaintext=good).plaintext == good
