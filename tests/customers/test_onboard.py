import pytest
from django.core import mail
from django.urls import reverse

from core.models import User
from customers.models import AuditEvent, Customer
from proxy import contract

from .conftest import remote_token

pytestmark = pytest.mark.django_db
URL = reverse("staff:customer_onboard")


def _data(**overrides):
    data = {
        "name": "Initech",
        "contact_email": "it@initech.example",
        "user_email": "peter@initech.example",
        "user_full_name": "Peter Gibbons",
        "token_label": "backend",
        "daily_request_limit": "1000",
        "monthly_token_quota": "",
        "rpm_limit": "60",
        "allowed_models": "sandbox.echo-v1",
    }
    return {**data, **overrides}


def test_onboarding_shows_the_token_once_with_curl(staff_client, ddb, settings):
    settings.PROXY_BASE_URL = "https://proxy.example"
    page = staff_client.post(URL, _data(), REMOTE_ADDR="127.0.0.5")
    assert page.status_code == 200
    customer = Customer.objects.get(name="Initech")
    assert (customer.daily_request_limit, customer.rpm_limit) == (1000, 60)
    user = User.objects.get(email="peter@initech.example")
    assert user.customer == customer and not user.has_usable_password()
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["peter@initech.example"]

    assert "no-store" in page["Cache-Control"]
    plaintext = page.context["plaintext"]
    html = page.content.decode()
    assert plaintext in html and 'data-copy-target="new-token"' in html
    assert "https://proxy.example/v1/chat/completions" in html
    assert "sandbox.echo-v1" in html and f"Bearer {plaintext}" in page.context["curl"]
    assert remote_token(ddb, plaintext).customer_id == str(customer.pk)
    assert contract.get_customer(ddb, str(customer.pk)).rpm_limit == 60
    assert AuditEvent.objects.filter(customer=customer, source_ip="127.0.0.5").count() == 3

    assert plaintext not in str(dict(staff_client.session))  # never stored, not even briefly
    again = staff_client.get(reverse("staff:token_issued"))
    assert plaintext not in again.content.decode()
    assert b"Nothing to show" in again.content


@pytest.mark.parametrize(
    "overrides",
    [
        {"name": ""},
        {"contact_email": "nope"},
        {"user_email": ""},
        {"daily_request_limit": "-3"},
        {"rpm_limit": "fast"},
        {"allowed_models": "bad!model"},
        {"expires_on": "2001-01-01"},
        {"expires_on": "tomorrow"},
    ],
)
def test_bad_input_is_shown_not_500(staff_client, ddb, overrides):
    response = staff_client.post(URL, _data(**overrides))
    assert response.status_code == 200
    assert response.context["form"].errors
    assert not Customer.objects.filter(name="Initech").exists() or overrides == {"name": ""}
    assert not User.objects.filter(email="peter@initech.example").exists()


def test_existing_user_email_is_refused(staff_client, ddb, customer_user):
    response = staff_client.post(URL, _data(user_email=customer_user.email))
    assert response.status_code == 200
    assert "user_email" in response.context["form"].errors
    assert not Customer.objects.filter(name="Initech").exists()


def test_form_renders(staff_client):
    response = staff_client.get(URL)
    assert response.status_code == 200 and b"First user" in response.content
