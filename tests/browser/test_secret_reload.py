"""A form that creates a secret creates it once, in chromium: reloading the page that showed
it (the browser re-sends the POST) or going Back and sending the form again creates nothing
new, and the page says plainly that the secret was shown once already, without a second one.
For the staff's new token, the staff onboarding (a customer, a user and a first token), the
customer's own tokens page and the staff API keys."""

import re

import pytest
from playwright.sync_api import expect

from core.models import ApiKey
from customers.models import Customer, Token
from tests.conftest import TEST_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

ALREADY_SHOWN = re.compile(r"already sent.*shown once", re.S)


def _log_in(page, live_server, email):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def _secret(page, selector) -> str:
    secret = page.locator(selector).inner_text().strip()
    assert len(secret) > 20
    return secret


def _resend_twice(page, *, submit: str, secret: str, fill):
    """Reload (the browser re-sends the POST), then Back and send the form again with the same
    values (the browser fetches the form again, with a fresh one-time key): each time nothing
    new, a plain explanation, and no secret on the page."""
    page.once("dialog", lambda dialog: dialog.accept())  # "Confirm form resubmission"
    response = page.reload()
    assert response.status == 409
    _refused(page, secret)
    page.go_back()  # the form (a reload replaced the answer, it added no page)
    fill(page)
    page.get_by_role("button", name=submit).click()
    page.wait_for_load_state()
    _refused(page, secret)


def _fill_label(page):
    page.get_by_label("Label").fill("reload-check")


def _fill_name(page):
    page.get_by_label("Name").fill("reload-check")


def _fill_onboarding(page):
    page.get_by_label("Customer name").fill("Reload Works Ltd")
    page.get_by_label("Contact email").fill("ops@reload.example")
    page.get_by_label("First user's email").fill("first@reload.example")


def _refused(page, secret):
    expect(page.get_by_role("alert").filter(has_text="already sent")).to_be_visible()
    assert ALREADY_SHOWN.search(page.get_by_role("alert").first.inner_text())
    assert secret not in page.content()
    assert page.locator("#new-token, #new-api-key").count() == 0


def test_staff_new_token_is_created_once(page, live_server, staff_user, customer):
    _log_in(page, live_server, staff_user.email)
    page.goto(f"{live_server.url}/staff/customers/{customer.pk}/tokens/new/")
    _fill_label(page)
    page.get_by_role("button", name="Create token").click()
    secret = _secret(page, "#new-token")
    _resend_twice(page, submit="Create token", secret=secret, fill=_fill_label)
    assert Token.objects.filter(customer=customer).count() == 1


def test_staff_onboarding_creates_one_customer_and_one_token(page, live_server, staff_user):
    _log_in(page, live_server, staff_user.email)
    page.goto(f"{live_server.url}/staff/customers/new/")
    _fill_onboarding(page)
    page.get_by_role("button", name="Onboard").click()
    secret = _secret(page, "#new-token")
    _resend_twice(page, submit="Onboard", secret=secret, fill=_fill_onboarding)
    customer = Customer.objects.get(name="Reload Works Ltd")
    assert Customer.objects.filter(name__icontains="reload works").count() == 1
    assert Token.objects.filter(customer=customer).count() == 1


def test_customer_token_is_created_once(page, live_server, customer_user):
    _log_in(page, live_server, customer_user.email)
    page.goto(f"{live_server.url}/app/tokens/")
    _fill_label(page)
    page.get_by_role("button", name="Create token").click()
    secret = _secret(page, "#new-token")
    _resend_twice(page, submit="Create token", secret=secret, fill=_fill_label)
    assert Token.objects.filter(customer=customer_user.customer).count() == 1


def test_staff_api_key_is_created_once(page, live_server, staff_user):
    _log_in(page, live_server, staff_user.email)
    page.goto(f"{live_server.url}/staff/api-keys/")
    _fill_name(page)
    page.get_by_role("button", name="Create key").click()
    secret = _secret(page, "#new-api-key")
    _resend_twice(page, submit="Create key", secret=secret, fill=_fill_name)
    assert ApiKey.objects.count() == 1
