import pytest
from django.urls import reverse

from customers import services

pytestmark = pytest.mark.django_db


def test_detail_shows_limits_tokens_users_sync_and_audit(
    staff_client, ddb, customer, customer_user, staff_user, django_assert_max_num_queries
):
    services.customer_update_limits(customer=customer, daily_request_limit=4242, actor=staff_user)
    issued = services.token_create(customer=customer, label="mobile-app")
    services.token_rotate(token=issued.token, grace_hours=3)
    with django_assert_max_num_queries(12):
        response = staff_client.get(reverse("staff:customer_detail", args=[customer.pk]))
    html = response.content.decode()
    assert "4,242" in html
    assert "mobile-app" in html and issued.token.masked in html and "rotating" in html
    assert customer_user.email in html
    assert "in sync" in html
    assert "Limits changed" in html and "Token rotated" in html and staff_user.email in html
    assert "Daily requests" in html and "no limit" in html and "4,242" in html
    assert issued.plaintext not in html and issued.token.token_hash not in html


def test_failing_sync_shows_the_error_and_retry(staff_client, ddb, settings, customer):
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"
    services.customer_suspend(customer=customer)
    url = reverse("staff:customer_detail", args=[customer.pk])
    html = staff_client.get(url).content.decode()
    assert "failing" in html and "EndpointConnectionError" in html and "Retry now" in html
    settings.AWS_ENDPOINT_URL = None
    response = staff_client.post(reverse("staff:customer_sync_now", args=[customer.pk]))
    assert response.status_code == 302
    assert "in sync" in staff_client.get(url).content.decode()


def test_unknown_customer_is_404(staff_client):
    import uuid

    assert staff_client.get(f"/staff/customers/{uuid.uuid4()}/").status_code == 404


def test_detail_links_to_the_customers_usage_and_billing(staff_client, ddb, customer):
    html = staff_client.get(reverse("staff:customer_detail", args=[customer.pk])).content.decode()
    for name in ("staff:usage_customer", "staff:usage_customer_settings", "staff:billing_customer"):
        assert f'href="{reverse(name, args=[customer.pk])}"' in html
    for link in (
        reverse("staff:usage_customer", args=[customer.pk]),
        reverse("staff:billing_customer", args=[customer.pk]),
    ):
        assert staff_client.get(link).status_code == 200
