import pytest
from django.urls import reverse

from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def test_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200
    assert b'name="username"' in response.content
    assert b'type="email"' in response.content


@pytest.mark.parametrize(
    ("user_fixture", "home"), [("staff_user", "/staff/"), ("customer_user", "/app/")]
)
def test_login_sends_each_role_home(client, request, user_fixture, home):
    user = request.getfixturevalue(user_fixture)
    response = client.post(
        reverse("login"), {"username": user.email.upper(), "password": TEST_PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == home
    assert response.status_code == 200
    assert response.wsgi_request.user == user


def test_wrong_password_shows_error(client, customer_user):
    response = client.post(reverse("login"), {"username": customer_user.email, "password": "nope"})
    assert response.status_code == 200
    assert b"Please enter a correct" in response.content
    assert not response.wsgi_request.user.is_authenticated


def test_repeated_failures_lock_the_account_out(client, customer_user, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("login"), {"username": customer_user.email, "password": "wrong"})
    response = client.post(
        reverse("login"), {"username": customer_user.email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 429
    assert b"Too many failed log-in attempts" in response.content
    assert not response.wsgi_request.user.is_authenticated


def test_logout_is_a_post_and_ends_the_session(customer_client):
    response = customer_client.post(reverse("logout"))
    assert response.status_code == 302
    assert customer_client.get("/app/").status_code == 302


def test_inactive_user_cannot_log_in(client, customer_user):
    customer_user.is_active = False
    customer_user.save()
    client.post(reverse("login"), {"username": customer_user.email, "password": TEST_PASSWORD})
    assert client.get("/app/").status_code == 302


def test_lockout_counts_every_spelling_of_the_email(client, customer_user, settings):
    # Login accepts the email in any case, so the failure count must not restart per spelling.
    email = customer_user.email
    spellings = [email, email.upper(), f" {email.title()}"]
    for attempt in range(settings.AXES_FAILURE_LIMIT):
        username = spellings[attempt % len(spellings)]
        client.post(reverse("login"), {"username": username, "password": "wrong"})
    response = client.post(
        reverse("login"), {"username": customer_user.email, "password": TEST_PASSWORD}
    )
    assert response.status_code == 429
    assert not response.wsgi_request.user.is_authenticated
