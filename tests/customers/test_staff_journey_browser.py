"""In a real browser: staff onboard a customer, copy the token, rotate it, bulk-suspend."""

import pytest
from playwright.sync_api import expect

from proxy import contract
from tests.browser.conftest import browser_type_launch_args, screenshot  # noqa: F401
from tests.conftest import TEST_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_onboard_copy_rotate_and_bulk_suspend(page, live_server, staff_user, ddb, screenshot):  # noqa: F811
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(staff_user.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.get_by_role("link", name="Customers").click()
    page.get_by_role("link", name="Onboard a customer").click()
    page.get_by_label("Customer name").fill("Initech")
    page.get_by_label("Contact email").fill("it@initech.example")
    page.get_by_label("First user's email").fill("peter@initech.example")
    page.get_by_label("Daily request limit").fill("1000")
    # the model catalog as a multiple select: pick two
    page.get_by_label("Allowed models").select_option(["amazon.nova-lite-v1:0", "sandbox.echo-v1"])
    screenshot("onboard-form")
    page.get_by_role("button", name="Onboard").click()

    token = page.locator("#new-token").inner_text().strip()
    assert contract.token_has_valid_checksum(token)
    item = contract.get_token(ddb, contract.hash_token(token))
    assert item.status == "active"
    allowed = contract.get_customer(ddb, item.customer_id).allowed_models
    assert allowed == ["amazon.nova-lite-v1:0", "sandbox.echo-v1"]
    assert token in page.locator("#curl-example").inner_text()
    page.get_by_role("button", name="Copy token").click()
    screenshot("token-shown-once")
    page.get_by_role("link", name="Done").click()
    assert token not in page.content()  # shown once: no page shows it again

    page.get_by_role("link", name="Customers").first.click()
    page.get_by_role("link", name="Initech").click()
    page.get_by_role("link", name="Rotate").click()
    page.get_by_label("Grace period (hours)").fill("2")
    page.get_by_role("button", name="Rotate").click()
    new_token = page.locator("#new-token").inner_text().strip()
    assert new_token != token
    page.get_by_role("link", name="Done").click()
    expect(page.get_by_text("rotating")).to_be_visible()
    screenshot("customer-page")

    page.get_by_role("link", name="← Customers").click()
    page.get_by_label("Select Initech").check()
    page.get_by_role("button", name="Continue…").click()
    page.get_by_role("button", name="Suspend").click()
    expect(page.get_by_text("Suspend: 1 customer changed.")).to_be_visible()
    screenshot("customer-list")
