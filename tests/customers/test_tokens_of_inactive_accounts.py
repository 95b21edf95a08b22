"""A suspended or closed account gets no new token (it could never be used): the service refuses
creation and rotation, saying why, and so do the staff page, the customer page, the API and the
`customers` command. Reactivated, the account gets tokens again."""

from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.urls import reverse

from customers import services
from customers.models import Customer, Token

pytestmark = pytest.mark.django_db

SUSPENDED = "This account is suspended; tokens cannot be created until it is reactivated."
CLOSED = "This account is closed; tokens cannot be created until it is reactivated."


def suspended(customer) -> Customer:
    return services.customer_suspend(customer=customer)


def test_the_service_refuses_creation_and_rotation(ddb, customer):
    old = services.token_create(customer=customer, label="backend").token
    suspended(customer)
    with pytest.raises(ValidationError) as refused:
        services.token_create(customer=customer, label="new")
    assert refused.value.messages == [SUSPENDED]
    with pytest.raises(ValidationError) as refused:
        services.token_rotate(token=old, grace_hours=1)
    assert refused.value.messages == [SUSPENDED]
    old.refresh_from_db()
    assert old.replaced_by_id is None and old.grace_until is None  # untouched
    assert Token.objects.filter(customer=customer).count() == 1
    services.customer_reactivate(customer=customer)
    assert services.token_rotate(token=old, grace_hours=1).token.customer == customer


def test_a_stale_instance_does_not_get_past_the_refusal(ddb, customer):
    stale = Customer.objects.get(pk=customer.pk)
    suspended(customer)
    assert stale.status == Customer.Status.ACTIVE
    with pytest.raises(ValidationError, match="suspended"):
        services.token_create(customer=stale)


def test_a_closed_account_says_closed(ddb, customer):
    services.customer_close(customer=customer)
    with pytest.raises(ValidationError) as refused:
        services.token_create(customer=customer)
    assert refused.value.messages == [CLOSED]


def test_staff_pages(ddb, staff_client, customer):
    token = services.token_create(customer=customer, label="backend").token
    suspended(customer)
    page = staff_client.post(
        reverse("staff:token_create", args=[customer.pk]), {"label": "new", "never_expires": "on"}
    )
    assert page.status_code == 200 and SUSPENDED in page.content.decode()
    rotated = staff_client.post(
        reverse("staff:token_rotate", args=[customer.pk, token.pk]), {"grace_hours": "1"},
        follow=True,
    )  # fmt: skip
    assert SUSPENDED in rotated.content.decode()
    assert Token.objects.filter(customer=customer).count() == 1


def test_customer_pages(ddb, customer_client, customer):
    token = services.token_create(customer=customer, label="backend").token
    suspended(customer)
    page = customer_client.post("/app/tokens/", {"label": "new", "never_expires": "on"})
    assert page.status_code == 400 and SUSPENDED in page.content.decode()
    rotated = customer_client.post(
        reverse("customer:customer_token_rotate", args=[token.pk]),
        {"grace_hours": "1", "confirm": "1"},
        follow=True,
    )
    assert SUSPENDED in rotated.content.decode()
    assert Token.objects.filter(customer=customer).count() == 1


def test_api(ddb, customer):
    from rest_framework.test import APIClient

    from core.models import ApiKey, User
    from portal.api.keys import api_key_create

    staff = User.objects.create_user("ops@example.test", "pw-unused-123", is_staff=True)
    key = api_key_create(name="ops", scope=ApiKey.Scope.READ_WRITE, created_by=staff)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
    token = services.token_create(customer=customer, label="backend").token
    suspended(customer)
    url = f"/api/v1/customers/{customer.pk}/tokens/"
    response = client.post(url, {"label": "new"}, format="json")
    assert response.status_code == 400
    assert SUSPENDED in response.json()["error"]["message"]
    response = client.post(f"{url}{token.pk}/rotate/", {"grace_hours": 1}, format="json")
    assert response.status_code == 400
    assert SUSPENDED in response.json()["error"]["message"]


def test_command(ddb, customer):
    services.token_create(customer=customer, label="backend")
    suspended(customer)
    from proxy import contract

    for extra in ([], ["--token", contract.generate_token()]):
        command = "update-token" if extra else "rotate-token"
        args = ["customers", command, "--customer-id", str(customer.pk), *extra]
        with pytest.raises(CommandError, match="suspended; tokens cannot be created"):
            call_command(*args, stdout=StringIO())
    assert Token.objects.filter(customer=customer).count() == 1
