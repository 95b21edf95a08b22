"""Every API answer carrying a secret (a token's plaintext, a webhook signing secret) tells
browsers, proxies and CDNs to keep no copy; so does every other API answer (private data)."""

import pytest

from customers.services import token_create

pytestmark = pytest.mark.django_db


def _assert_not_stored(response):
    cache_control = response.get("Cache-Control", "")
    assert "no-store" in cache_control and "private" in cache_control, cache_control


def test_token_create_rotate_and_import_answers(rw, customer):
    base = f"/api/v1/customers/{customer.pk}/tokens/"
    created = rw.post(base, {"label": "prod"}, format="json")
    assert created.status_code == 201 and created.json()["token"]
    _assert_not_stored(created)

    rotated = rw.post(f"{base}{created.json()['id']}/rotate/", {"grace_hours": 1}, format="json")
    assert rotated.status_code == 201 and rotated.json()["token"]
    _assert_not_stored(rotated)

    imported_plaintext = token_create(customer=customer).plaintext  # a well-formed token
    imported = rw.post(
        base, {"label": "legacy", "import_token": imported_plaintext[:-1] + "x"}, format="json"
    )
    _assert_not_stored(imported)  # refused or not, no copy


def test_webhook_secret_answer(rw, customer):
    url = f"/api/v1/customers/{customer.pk}/alert-settings/"
    response = rw.patch(url, {"webhook_url": "https://hooks.example/x"}, format="json")
    assert response.status_code == 200 and response.json()["webhook_secret"]
    _assert_not_stored(response)


@pytest.mark.parametrize(
    "path", ["/api/v1/customers/", "/api/v1/me/", "/api/v1/invoices/", "/api/v1/nope/"]
)
def test_every_api_answer(rw, anon, path):
    _assert_not_stored(rw.get(path))
    _assert_not_stored(anon.get(path))
