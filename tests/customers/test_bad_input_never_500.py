"""Every staff customers page answers garbage with a 2xx, 3xx or 4xx, never a 500."""

import uuid

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db

GARBAGE = [
    {},
    {"action": "suspend", "ids": ["not-a-uuid", str(uuid.uuid4())], "confirm": "1"},
    {"action": "set_limits", "ids": "x", "confirm": "1", "apply_rpm_limit": "on"},
    {
        "daily_request_limit": "9" * 40,
        "monthly_token_quota": "-0",
        "rpm_limit": "1e9",
        "allowed_models": "\x00",
        "ip_allowlist": "::::/129",
        "default_model_params": '{"a": ' * 50,
        "grace_hours": "nan",
        "expires_on": "9999-99-99",
        "label": "x" * 500,
        "email": "@",
        "name": "\u202e" * 300,
        "contact_email": "a" * 300 + "@x.example",
    },
]


def _urls(customer, token):
    return [
        reverse("staff:customer_list"),
        reverse("staff:customer_onboard"),
        reverse("staff:customer_bulk"),
        reverse("staff:customer_detail", args=[customer.pk]),
        reverse("staff:customer_edit", args=[customer.pk]),
        reverse("staff:customer_limits", args=[customer.pk]),
        reverse("staff:customer_status", args=[customer.pk]),
        reverse("staff:customer_invite", args=[customer.pk]),
        reverse("staff:customer_sync_now", args=[customer.pk]),
        reverse("staff:token_create", args=[customer.pk]),
        reverse("staff:token_rotate", args=[customer.pk, token.pk]),
        reverse("staff:token_revoke", args=[customer.pk, token.pk]),
        reverse("staff:token_issued"),
        reverse("staff:customer_user_action", args=[customer.pk, 10**12]),
    ]


@pytest.mark.parametrize("data", GARBAGE)
def test_garbage_posts(staff_client, ddb, customer, issued, data):
    for url in _urls(customer, issued.token):
        response = staff_client.post(url, data)
        assert response.status_code < 500, url
        response = staff_client.get(url, data)
        assert response.status_code < 500, url
