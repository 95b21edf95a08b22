"""The Content-Security-Policy (core/csp.py) blocks nothing the pages need: charts drawn by
plotly.js, htmx, the copy buttons, the API docs. Any violation the browser reports fails."""

import datetime as dt

import pytest
from playwright.sync_api import expect

from tests.browser.test_dashboard_journeys import _log_in, _usage, _wait_for_charts
from usage.services import utc_today

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


def _violations(page):
    return page.evaluate("window.__cspViolations")


def test_pages_work_under_the_policy_and_nothing_is_blocked(
    page, live_server, customer_user, customer, staff_user
):
    page.add_init_script(RECORD_VIOLATIONS)
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _usage(customer)
    _log_in(page, live_server, customer_user.email)
    today = utc_today()
    start, end = today - dt.timedelta(days=14), today - dt.timedelta(days=1)
    response = page.goto(f"{live_server.url}/app/usage/?start={start}&end={end}")
    assert "script-src 'self';" in response.headers["content-security-policy"]
    _wait_for_charts(page, 4)
    assert _violations(page) == []

    page.goto(f"{live_server.url}/app/tokens/")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#new-token")).to_be_visible()
    assert _violations(page) == []

    page.goto(f"{live_server.url}/accounts/login/")  # signed in: sent on to the home page
    page.context.clear_cookies()
    _log_in(page, live_server, staff_user.email)
    page.goto(f"{live_server.url}/staff/dashboard/")
    assert _violations(page) == []
    page.goto(f"{live_server.url}/api/docs/")
    expect(page.locator(".swagger-ui .info")).to_be_visible(timeout=15000)
    assert _violations(page) == []
    assert errors == []
