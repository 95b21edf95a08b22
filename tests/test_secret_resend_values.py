"""Back to a secret's form, which the browser fetches again with a fresh one-time key, then the
same values sent again: a re-send, refused like a reload (core/once.py). Other values are a new
secret, and a hostile key is refused without a 500."""

import pytest
from django.urls import reverse

from core.once import ALREADY_SENT, FIELD
from customers.models import Token

pytestmark = pytest.mark.django_db


def _key(client, url) -> str:
    return client.get(url).context["form_key"]


def test_the_same_values_with_a_fresh_key_are_a_resend(staff_client, aws, customer):
    url = reverse("staff:token_create", args=[customer.pk])
    first = staff_client.post(url, {"label": "backend", FIELD: _key(staff_client, url)})
    assert first.status_code == 200 and first.context["plaintext"]
    again = staff_client.post(url, {"label": "backend", FIELD: _key(staff_client, url)})
    assert again.status_code == 409 and ALREADY_SENT in again.content.decode()
    assert "plaintext" not in again.context or not again.context["plaintext"]
    other = staff_client.post(url, {"label": "batch", FIELD: _key(staff_client, url)})
    assert other.status_code == 200 and other.context["plaintext"]
    assert sorted(Token.objects.filter(customer=customer).values_list("label", flat=True)) == [
        "backend",
        "batch",
    ]


@pytest.mark.parametrize("key", ["\x00abc", "x" * 5000, "é\u202e"])
def test_a_hostile_key_is_refused_without_a_500(staff_client, aws, customer, key):
    url = reverse("staff:token_create", args=[customer.pk])
    response = staff_client.post(url, {"label": "backend", FIELD: key})
    assert response.status_code == 409
    assert not Token.objects.filter(customer=customer).exists()
