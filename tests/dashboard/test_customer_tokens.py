"""Customer tokens page: create, rotate, revoke their own tokens; a new token shown once."""

from html import unescape

import pytest
from django.urls import reverse

from customers import services
from customers.models import AuditEvent, Token
from proxy import contract

pytestmark = pytest.mark.django_db

URL = "/app/tokens/"


def test_page_lists_own_tokens_only_with_placeholder_snippets(customer_client, customer,
                                                              other_customer):  # fmt: skip
    services.token_create(customer=customer, label="backend")
    services.token_create(customer=other_customer, label="theirs")
    response = customer_client.get(URL)
    html = response.content.decode()
    assert "backend" in html and "theirs" not in html
    assert "YOUR_TOKEN" in html
    assert response["Cache-Control"].startswith("max-age=0")


def test_create_shows_the_token_once_with_ready_to_run_snippets(customer_client, customer,
                                                                settings):  # fmt: skip
    settings.PROXY_BASE_URL = "https://proxy.example.test/prod"
    response = customer_client.post(URL, {"label": "my-app", "never_expires": "on"})
    assert response.status_code == 200
    issued = response.context["issued"]
    plaintext = issued.plaintext
    assert contract.token_has_valid_checksum(plaintext)
    token = Token.objects.get(customer=customer, label="my-app")
    assert token.token_hash == contract.hash_token(plaintext)
    html = unescape(response.content.decode())
    assert html.count(plaintext) == 5  # the token itself and four snippets
    for marker in ("curl -sS https://proxy.example.test/prod/v1/chat/completions",
                   "import requests", "await fetch(", "from openai import OpenAI",
                   'base_url="https://proxy.example.test/prod/v1"', "sandbox.echo-v1"):  # fmt: skip
        assert marker in html
    assert "no-store" in response["Cache-Control"]
    # Shown once: not in the session, not on the next page view, not in the audit trail.
    assert plaintext not in str(dict(customer_client.session))
    assert plaintext not in customer_client.get(URL).content.decode()
    event = AuditEvent.objects.get(action="token.create", customer=customer)
    assert event.actor_label and plaintext not in str(event.after)


def test_rotate_own_token_with_grace_period(customer_client, customer):
    old = services.token_create(customer=customer, label="backend").token
    response = customer_client.post(
        reverse("customer:customer_token_rotate", args=[old.pk]),
        {"grace_hours": "2", "confirm": "1"},
    )
    assert response.status_code == 200
    new = response.context["issued"].token
    old.refresh_from_db()
    assert old.replaced_by == new and old.state() == "rotating"
    assert response.context["issued"].plaintext in response.content.decode()


def test_revoke_own_token(customer_client, customer):
    token = services.token_create(customer=customer, label="backend").token
    response = customer_client.post(
        reverse("customer:customer_token_revoke", args=[token.pk]), {"confirm": "1"}
    )
    assert response.status_code == 302
    token.refresh_from_db()
    assert token.status == Token.Status.REVOKED


def test_another_customers_token_is_404_and_untouched(customer_client, other_customer):
    theirs = services.token_create(customer=other_customer, label="theirs").token
    for name in ("customer:customer_token_rotate", "customer:customer_token_revoke"):
        assert customer_client.post(reverse(name, args=[theirs.pk])).status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == Token.Status.ACTIVE and theirs.replaced_by is None


def test_bad_input_is_a_form_error_not_a_500(customer_client, customer):
    token = services.token_create(customer=customer, label="backend").token
    assert customer_client.post(URL, {"label": ""}).status_code == 400
    response = customer_client.post(
        reverse("customer:customer_token_rotate", args=[token.pk]), {"grace_hours": "-5"}
    )
    assert response.status_code == 302
    services.token_revoke(token=token)
    response = customer_client.post(
        reverse("customer:customer_token_rotate", args=[token.pk]),
        {"grace_hours": "1", "confirm": "1"},
    )
    assert response.status_code == 302  # "only an active token can be rotated", as a message


def test_get_on_write_urls_is_refused(customer_client, customer):
    token = services.token_create(customer=customer, label="backend").token
    for name in ("customer:customer_token_rotate", "customer:customer_token_revoke"):
        assert customer_client.get(reverse(name, args=[token.pk])).status_code == 405


def test_python_snippets_are_valid_python(settings):
    from customers.snippets import snippets

    settings.PROXY_BASE_URL = "https://proxy.example.test/"
    by_id = {s["id"]: s["code"] for s in snippets("bup_example")}
    for snippet_id in ("snippet-python", "snippet-openai"):
        compile(by_id[snippet_id], snippet_id, "exec")
    assert "https://proxy.example.test/v1/chat/completions" in by_id["snippet-curl"]
    assert "//v1" not in "".join(by_id.values())
