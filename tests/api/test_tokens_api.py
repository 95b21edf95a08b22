"""/api/v1/customers/{id}/tokens/: list, create (plaintext once), rotate, revoke, idempotency."""

import pytest

from customers.models import Token
from customers.services import token_create
from proxy import contract

from .conftest import error_of

pytestmark = pytest.mark.django_db


def _url(customer, suffix=""):
    return f"/api/v1/customers/{customer.pk}/tokens/{suffix}"


def test_create_returns_plaintext_once_and_list_never_shows_it(rw, customer):
    response = rw.post(_url(customer), {"label": "prod"}, format="json")
    assert response.status_code == 201, response.json()
    plaintext = response.json()["token"]
    token = Token.objects.get()
    assert token.token_hash == contract.hash_token(plaintext)
    listed = rw.get(_url(customer))
    assert listed.status_code == 200
    text = listed.content.decode()
    assert plaintext not in text and token.token_hash not in text
    row = listed.json()["results"][0]
    assert "token" not in row and "token_hash" not in row
    assert row["label"] == "prod" and row["state"] == "active"
    detail = rw.get(_url(customer, f"{token.pk}/")).json()
    assert "token" not in detail and detail["masked"] == token.masked


def test_create_with_idempotency_key_replays_without_plaintext(rw, customer):
    first = rw.post(_url(customer), {"label": "ci"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    again = rw.post(_url(customer), {"label": "ci"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == again.status_code == 201
    assert Token.objects.count() == 1
    assert "token" in first.json() and "token" not in again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    other = rw.post(_url(customer), {"label": "other"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert other.status_code == 422
    assert error_of(other)["type"] == "idempotency_error"


def test_create_validates(rw, customer):
    response = rw.post(_url(customer), {"expires_at": "2001-01-01T00:00:00Z"}, format="json")
    assert response.status_code == 400
    assert error_of(response)["fields"]
    response = rw.post(_url(customer), {"expires_at": "garbage"}, format="json")
    assert response.status_code == 400
    assert "expires_at" in error_of(response)["fields"]


def test_rotate_with_grace_returns_new_plaintext(rw, customer):
    old = token_create(customer=customer).token
    response = rw.post(_url(customer, f"{old.pk}/rotate/"), {"grace_hours": 2}, format="json")
    assert response.status_code == 201, response.json()
    new_id, plaintext = response.json()["id"], response.json()["token"]
    assert Token.objects.get(pk=new_id).token_hash == contract.hash_token(plaintext)
    old.refresh_from_db()
    assert old.replaced_by_id is not None and old.state() == "rotating"
    again = rw.post(_url(customer, f"{old.pk}/rotate/"), {}, format="json")
    assert again.status_code == 400
    bad = rw.post(_url(customer, f"{new_id}/rotate/"), {"grace_hours": -1}, format="json")
    assert bad.status_code == 400 and "grace_hours" in error_of(bad)["fields"]


def test_revoke(rw, customer):
    token = token_create(customer=customer).token
    response = rw.post(_url(customer, f"{token.pk}/revoke/"))
    assert response.status_code == 200
    assert response.json()["status"] == "revoked"
    assert rw.get(_url(customer), {"status": "revoked"}).json()["results"][0]["id"] == str(token.pk)


def test_read_only_key_cannot_create_rotate_or_revoke(ro, customer):
    token = token_create(customer=customer).token
    assert ro.get(_url(customer)).status_code == 200
    assert ro.post(_url(customer), {}).status_code == 403
    assert ro.post(_url(customer, f"{token.pk}/rotate/")).status_code == 403
    assert ro.post(_url(customer, f"{token.pk}/revoke/")).status_code == 403
    assert Token.objects.count() == 1


def test_customer_reads_own_tokens_only(customer_api, customer, other_customer):
    mine = token_create(customer=customer).token
    theirs = token_create(customer=other_customer).token
    assert customer_api.get(_url(customer)).json()["results"][0]["id"] == str(mine.pk)
    assert customer_api.get(_url(other_customer)).status_code == 404
    assert customer_api.get(_url(other_customer, f"{theirs.pk}/")).status_code == 404
    assert customer_api.get(_url(customer, f"{theirs.pk}/")).status_code == 404
    assert customer_api.post(_url(customer), {}).status_code == 403
    assert customer_api.post(_url(customer, f"{mine.pk}/revoke/")).status_code == 403


def test_anonymous_is_401(anon, customer):
    assert anon.get(_url(customer)).status_code == 401


def test_import_an_existing_token(rw, customer):
    plaintext = "legacy-token-0123456789abcdef"
    response = rw.post(_url(customer), {"label": "legacy", "import_token": plaintext})
    assert response.status_code == 201, response.json()
    assert Token.objects.get().token_hash == contract.hash_token(plaintext)
    again = rw.post(_url(customer), {"import_token": plaintext})
    assert again.status_code == 400
    bad = rw.post(_url(customer), {"import_token": "short"})
    assert bad.status_code == 400
