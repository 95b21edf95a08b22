import pytest
from playwright.sync_api import expect

from tests.conftest import TEST_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _log_in(page, live_server, email):
    page.goto(f"{live_server.url}/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_staff_logs_in_and_sees_staff_dashboard(page, live_server, staff_user, screenshot):
    _log_in(page, live_server, staff_user.email)
    page.wait_for_url(f"{live_server.url}/staff/")
    expect(page.get_by_role("heading", name="Staff dashboard")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    screenshot("staff-home")


def test_customer_logs_in_sees_own_home_and_not_staff_pages(
    page, live_server, customer_user, screenshot
):
    _log_in(page, live_server, customer_user.email)
    page.wait_for_url(f"{live_server.url}/app/")
    expect(page.get_by_role("heading", name=customer_user.customer.name)).to_be_visible()
    screenshot("customer-home")
    response = page.goto(f"{live_server.url}/staff/")
    assert response.status == 403
    expect(page.get_by_role("heading", name="You don't have access to this page")).to_be_visible()


def test_wrong_password_is_refused_with_a_message(page, live_server, customer_user):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(customer_user.email)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert page.url.endswith("/accounts/login/")
