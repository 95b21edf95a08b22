"""A customer user turns on two-factor sign-in in chromium (QR code shown under the
Content-Security-Policy, nothing blocked), saves the recovery codes, and logs in with a code."""

import re
from base64 import b32decode

import pytest
from django_otp.oath import totp
from playwright.sync_api import expect

from tests.browser.test_csp import RECORD_VIOLATIONS, _violations
from tests.browser.test_dashboard_journeys import _log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_customer_turns_on_two_factor_and_logs_in_with_a_code(page, live_server, customer_user):
    page.add_init_script(RECORD_VIOLATIONS)
    _log_in(page, live_server, customer_user.email)
    page.goto(f"{live_server.url}/app/account/")
    page.get_by_role("link", name="Two-factor sign-in").last.click()
    page.get_by_role("link", name="Set up two-factor sign-in").click()

    expect(page.locator("figure.qr-code svg")).to_be_visible()
    secret = page.locator("figure.qr-code code").inner_text().replace(" ", "")
    key = b32decode(secret)
    page.get_by_label("Code").fill(f"{totp(key):06d}")
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    expect(page.get_by_role("heading", name="Your recovery codes")).to_be_visible()
    codes = re.findall(r"[a-z2-7]{4}-[a-z2-7]{4}", page.locator("ul.recovery-codes").inner_text())
    assert len(codes) == 10
    page.get_by_role("link", name="I have saved them, continue").click()
    expect(page.get_by_text("unused recovery codes")).to_be_visible()

    page.context.clear_cookies()
    _log_in(page, live_server, customer_user.email)
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    page.get_by_label("Code").fill(f"{totp(key, drift=1):06d}")
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{live_server.url}/app/")
    assert _violations(page) == []
