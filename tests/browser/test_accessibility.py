"""The main pages, staff and customer, at a 390 px wide viewport (a phone): no serious or
critical axe-core violation, no sideways page scroll, and a one-line top bar whose "Menu" opens
the navigation; plotly's chart toolbars clear of the legends.

Every page at desktop width is checked by test_every_page_a11y.py; the helpers and the objects
the pages show are in tests/browser/a11y.py.
"""

import pytest
from playwright.sync_api import expect

from tests.browser.a11y import DESKTOP, PHONE, build_world, date_range, page_problems, settle
from tests.browser.test_dashboard_journeys import _log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _staff_pages(world):
    customer, invoice = world["customer"].pk, world["invoices"]["issued"].pk
    return {
        "home": "/staff/",
        "customers": "/staff/customers/",
        "customer detail": f"/staff/customers/{customer}/",
        "new token": f"/staff/customers/{customer}/tokens/new/",
        "API keys": "/staff/api-keys/",
        "usage": "/staff/usage/",
        "customer usage": f"/staff/usage/customers/{customer}/?{date_range()}",
        "alert settings": f"/staff/usage/customers/{customer}/settings/",
        "unusual usage": "/staff/usage/anomalies/",
        "latency and errors": f"/staff/usage/latency/?{date_range()}",
        "analytics": f"/staff/dashboard/?{date_range()}",
        "invoices": "/staff/billing/invoices/?status=issued",
        "invoice detail": f"/staff/billing/invoices/{invoice}/",
        "invoice runs": "/staff/billing/runs/",
        "billing customers": "/staff/billing/customers/",
        "customer billing": f"/staff/billing/customers/{customer}/",
        "plans and prices": "/staff/billing/catalog/",
        "price book": "/staff/billing/prices/",
        "audit log": "/staff/audit/",
    }


def _customer_pages(world):
    return {
        "home": "/app/",
        "usage": f"/app/usage/?{date_range()}",
        "tokens": "/app/tokens/",
        "billing": "/app/billing/",
        "invoices": "/app/billing/invoices/",
        "invoice detail": f"/app/billing/invoices/{world['invoices']['issued'].pk}/",
        "account": "/app/account/",
    }


@pytest.fixture
def world(aws, customer, customer_user, staff_user):
    return build_world(customer=customer, customer_user=customer_user, staff_user=staff_user)


def _check_pages(page, live_server, pages: dict, screenshot, prefix: str):
    problems = []
    page.set_viewport_size(PHONE)
    for name, path in pages.items():
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, f"{name}: {response.status}"
        problems += page_problems(page, f"phone {name} ({path})")
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            problems.append(f"phone {name}: the page is {width} px wide")
            screenshot(f"{prefix}-{name.replace(' ', '-')}-too-wide")
    assert not problems, "\n".join(problems)


def test_staff_pages_on_a_phone_pass_axe_fit_and_share_one_menu(
    page, live_server, staff_user, world, screenshot
):
    _log_in(page, live_server, staff_user.email)
    _check_pages(page, live_server, _staff_pages(world), screenshot, "staff")
    _navigation_is_one_menu(page, live_server, screenshot)


def test_customer_pages_on_a_phone_pass_axe_fit_and_keep_chart_legends_clear(
    page, live_server, customer_user, world, screenshot
):
    _log_in(page, live_server, customer_user.email)
    _check_pages(page, live_server, _customer_pages(world), screenshot, "customer")
    _chart_toolbars_leave_the_legends_visible(page, live_server, screenshot)


def _navigation_is_one_menu(page, live_server, screenshot):
    """On a phone the top bar is one line and its "Menu" opens the navigation."""
    page.set_viewport_size(PHONE)
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


def _chart_toolbars_leave_the_legends_visible(page, live_server, screenshot):
    """plotly's toolbar sits above the plot, clear of the legend, and its buttons are not
    inside an element that says it is an image."""
    for viewport in (PHONE, DESKTOP):
        page.set_viewport_size(viewport)
        page.goto(f"{live_server.url}/app/usage/?{date_range()}")
        settle(page)
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
