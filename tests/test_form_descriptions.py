"""Help texts and errors reach screen readers: every id a field names in aria-describedby
(Django's `<id>_helptext` and `<id>_error`) is an element of the page (portal/_field.html)."""

import re

import pytest
from django.urls import reverse

from customers import services

pytestmark = pytest.mark.django_db

DESCRIBED = re.compile(r'aria-describedby="([^"]+)"')


def _missing(html: str) -> list[str]:
    ids = set(re.findall(r'\sid="([^"]+)"', html))
    return [ref for refs in DESCRIBED.findall(html) for ref in refs.split() if ref not in ids]


def test_staff_forms_name_their_help_and_errors(staff_client, customer):
    token = services.token_create(customer=customer, label="backend").token
    pages = [
        reverse("staff:api_keys"),
        reverse("staff:customer_onboard"),
        reverse("staff:token_create", args=[customer.pk]),
        reverse("staff:token_limits", args=[customer.pk, token.pk]),
        reverse("staff:customer_limits", args=[customer.pk]),
    ]
    described = 0
    for url in pages:
        html = staff_client.get(url).content.decode()
        assert not _missing(html), (url, _missing(html))
        described += len(DESCRIBED.findall(html))
    assert described  # the pages do have help texts: the check checked something
    html = staff_client.post(reverse("staff:api_keys"), {}).content.decode()  # errors shown
    assert "_error" in html and not _missing(html)


def test_customer_forms_name_their_help(customer_client, customer):
    token = services.token_create(customer=customer, label="backend").token
    for url in (
        reverse("customer:customer_tokens"),
        reverse("customer:customer_token_limits", args=[token.pk]),
        reverse("customer:customer_account"),
    ):
        html = customer_client.get(url).content.decode()
        assert not _missing(html), (url, _missing(html))
