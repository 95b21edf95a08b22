"""The main pages, staff and customer, in chromium: no serious or critical axe-core violation,
and at a 390 px wide viewport (a phone) no sideways page scroll and a one-line top bar whose
"Menu" opens the navigation.

axe-core is the copy that the `axe-playwright-python` package ships (a dev dependency); it is
evaluated in the page through the DevTools protocol, which the page's CSP does not apply to.
"""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import axe_playwright_python
import pytest
from playwright.sync_api import expect

from billing.models import Invoice
from billing.services import invoice_issue, invoice_line_add
from customers import services
from portal.api.keys import api_key_create
from tests.browser.test_dashboard_journeys import _log_in, _usage
from usage.services import utc_today

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

AXE_SCRIPT = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
BLOCKING = ("serious", "critical")
# Nothing is excluded: every rule runs on every element, plotly's charts included.
AXE_OPTIONS = {"resultTypes": ["violations"]}


def _range():
    today = utc_today()
    return f"start={today - dt.timedelta(days=14)}&end={today - dt.timedelta(days=1)}"


def _staff_pages(customer):
    return {
        "home": "/staff/",
        "customers": "/staff/customers/",
        "customer detail": f"/staff/customers/{customer.pk}/",
        "new token": f"/staff/customers/{customer.pk}/tokens/new/",
        "API keys": "/staff/api-keys/",
        "usage": "/staff/usage/",
        "customer usage": f"/staff/usage/customers/{customer.pk}/?{_range()}",
        "alert settings": f"/staff/usage/customers/{customer.pk}/settings/",
        "unusual usage": "/staff/usage/anomalies/",
        "latency and errors": f"/staff/usage/latency/?{_range()}",
        "analytics": f"/staff/dashboard/?{_range()}",
        "invoices": "/staff/billing/invoices/?status=issued",
        "audit log": "/staff/audit/",
    }


CUSTOMER_PAGES = {
    "home": "/app/",
    "usage": "/app/usage/?{range}",
    "tokens": "/app/tokens/",
    "billing": "/app/billing/",
    "invoices": "/app/billing/invoices/",
    "account": "/app/account/",
}


@pytest.fixture
def world(aws, customer, customer_user, staff_user):
    """A customer with two weeks of usage, tokens, an issued invoice, audited changes and an
    API key: every list and chart on the pages has something to show."""
    _usage(customer)
    services.customer_update_limits(
        customer=customer,
        daily_request_limit=2_000,
        monthly_token_quota=1_000_000,
        allowed_models=["amazon.nova-lite-v1:0", "anthropic.claude-3-haiku-20240307-v1:0"],
        actor=staff_user,
    )
    issued = services.token_create(customer=customer, label="backend", actor=staff_user)
    services.token_rotate(token=issued.token, grace_hours=3, actor=staff_user)
    services.token_create(customer=customer, label="a-long-label-for-the-batch-jobs-token")
    invoice = Invoice.objects.create(
        customer=customer, period_start=dt.date(2026, 1, 1), period_end=dt.date(2026, 1, 31)
    )
    invoice_line_add(invoice=invoice, description="Claude 3 Haiku usage", amount=Decimal("1234.5"))
    invoice_issue(invoice=invoice)
    api_key_create(name="nightly-export", scope="read", created_by=staff_user)
    return customer


def _axe(page) -> list[dict]:
    page.evaluate(AXE_SCRIPT)
    results = page.evaluate("(options) => axe.run(document, options)", AXE_OPTIONS)
    return [v for v in results["violations"] if v["impact"] in BLOCKING]


def _describe(violations) -> str:
    lines = []
    for v in violations:
        targets = [" ".join(map(str, node["target"])) for node in v["nodes"][:5]]
        lines.append(f"{v['impact']} {v['id']}: {v['help']} -> {targets}")
    return "\n".join(lines)


def _settle(page):
    """Wait until every chart on the page is drawn (axe then sees plotly's markup too)."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-chart]')].every("
        "(e) => e.dataset.rendered === 'true')",
        timeout=15000,
    )


def _missing_descriptions(page) -> list[str]:
    """aria-describedby ids that name no element: the description never reaches anyone."""
    return page.evaluate(
        """() => [...document.querySelectorAll('[aria-describedby]')].flatMap((el) =>
            el.getAttribute('aria-describedby').split(/\\s+/)
              .filter((id) => id && !document.getElementById(id))
              .map((id) => `${el.id || el.name}: ${id}`))"""
    )


def _check_pages(page, live_server, pages: dict, screenshot, prefix: str):
    problems = []
    for viewport_name, viewport in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(viewport)
        for name, path in pages.items():
            response = page.goto(f"{live_server.url}{path.format(range=_range())}")
            assert response.status == 200, f"{name}: {response.status}"
            _settle(page)
            violations = _axe(page)
            if violations:
                problems.append(f"{viewport_name} {name} ({path}):\n{_describe(violations)}")
            missing = _missing_descriptions(page)
            if missing:
                problems.append(f"{name}: aria-describedby names nothing: {missing}")
            if viewport is PHONE:
                width = page.evaluate("document.documentElement.scrollWidth")
                if width > PHONE["width"]:
                    problems.append(f"phone {name}: the page is {width} px wide")
                    screenshot(f"{prefix}-{name.replace(' ', '-')}-too-wide")
    assert not problems, "\n".join(problems)


def test_staff_pages_pass_axe_and_fit_a_phone(page, live_server, staff_user, world, screenshot):
    _log_in(page, live_server, staff_user.email)
    _check_pages(page, live_server, _staff_pages(world), screenshot, "staff")


def test_customer_pages_pass_axe_and_fit_a_phone(
    page, live_server, customer_user, world, screenshot
):
    _log_in(page, live_server, customer_user.email)
    _check_pages(page, live_server, CUSTOMER_PAGES, screenshot, "customer")


def test_on_a_phone_the_navigation_is_one_menu(page, live_server, staff_user, world, screenshot):
    page.set_viewport_size(PHONE)
    _log_in(page, live_server, staff_user.email)
    page.goto(f"{live_server.url}/staff/customers/")
    screenshot("menu-closed")
    bar = page.locator("header.topbar").bounding_box()
    assert bar["height"] < 70, f"the top bar is {bar['height']} px high"
    nav = page.get_by_role("navigation", name="Main")
    expect(nav).to_be_hidden()
    page.get_by_text("Menu", exact=True).click()
    expect(nav.get_by_role("link", name="Customers")).to_have_attribute("aria-current", "page")
    screenshot("menu-open")
    nav.get_by_role("link", name="Audit log").click()
    expect(page.get_by_role("heading", name="Audit log")).to_be_visible()
    page.set_viewport_size(DESKTOP)  # the same page, wide: the links in a row, no menu
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    expect(page.get_by_text("Menu", exact=True)).to_be_hidden()


def test_chart_toolbars_leave_the_legends_visible(
    page, live_server, customer_user, world, screenshot
):
    """plotly's toolbar sits above the plot, clear of the legend, and its buttons are not
    inside an element that says it is an image."""
    _log_in(page, live_server, customer_user.email)
    for viewport in (PHONE, DESKTOP):
        page.set_viewport_size(viewport)
        page.goto(f"{live_server.url}/app/usage/?{_range()}")
        _settle(page)
        charts = page.locator("[data-chart][data-rendered=true]")
        assert charts.count() >= 4
        for i in range(charts.count()):
            chart = charts.nth(i)
            chart.hover()  # the toolbar shows on hover (or a tap)
            if not chart.locator(".legend").count():  # one series: no legend
                continue
            bar = chart.locator(".modebar").bounding_box()
            legend = chart.locator(".legend").bounding_box()
            overlap_x = min(bar["x"] + bar["width"], legend["x"] + legend["width"]) - max(
                bar["x"], legend["x"]
            )
            overlap_y = min(bar["y"] + bar["height"], legend["y"] + legend["height"]) - max(
                bar["y"], legend["y"]
            )
            assert overlap_x <= 0 or overlap_y <= 0, f"chart {i} at {viewport}: toolbar on legend"
        assert page.locator("[role=img] button, [role=img] a[href]").count() == 0
        screenshot(f"charts-{viewport['width']}")
