"""The plan form in chromium (portal/static/portal/plan_form.js, under the strict CSP): only
the terms of the chosen kind show, tier rows are added one at a time, and the plan saves."""

import os
import shutil
from pathlib import Path

import pytest

from billing.models import PricingPlan
from tests.conftest import TEST_PASSWORD

os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not Path(CHROMIUM).exists() and not os.environ.get("CI"), reason="chromium not installed"
    ),
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--no-first-run"],
    }


def _shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"billing-{name}.png"), full_page=True)


def test_the_plan_form_shows_the_terms_of_its_kind(page, live_server, staff_user):
    blocked = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else None)
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(staff_user.email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{live_server.url}/staff/")
    page.goto(f"{live_server.url}/staff/billing/plans/new/")

    markup = page.get_by_label("Markup percent")
    tiers = page.get_by_role("group", name="Tiers")
    assert not markup.is_visible() and not tiers.is_visible()  # no kind chosen yet
    page.get_by_label("Kind").select_option("per_token")
    assert markup.is_visible()
    assert not page.get_by_label("Monthly fee").is_visible()
    assert not page.get_by_text("Used by per-token plans.").is_visible()

    page.get_by_label("Kind").select_option("tiered")
    assert not markup.is_visible() and tiers.is_visible()
    assert page.get_by_label("Metric").is_visible()
    row_2 = page.get_by_label("Row 2: up to (units)")
    assert page.get_by_label("Row 1: up to (units)").is_visible() and not row_2.is_visible()
    page.get_by_label("Name").fill("Browser tiers")
    page.get_by_label("Code").fill("browser-tiers")
    page.get_by_label("Tier mode").select_option("graduated")
    page.get_by_label("Row 1: up to (units)").fill("5")
    page.get_by_label("Row 1: price per unit").fill("7")
    page.get_by_role("button", name="Add a row").click()
    assert row_2.is_visible()
    page.get_by_label("Row 2: price per unit").fill("6")
    _shot(page, "plan-form-tiered")
    page.get_by_role("button", name="Save plan").click()
    page.wait_for_url(f"{live_server.url}/staff/billing/catalog/")
    assert PricingPlan.objects.get(code="browser-tiers").tiers == [
        {"up_to": 5, "unit_price": "7"},
        {"unit_price": "6"},
    ]
    assert blocked == []
    page.goto(f"{live_server.url}/staff/billing/prices/")
    _shot(page, "price-book")
    page.get_by_role("link", name="Schedule a price change").click()
    _shot(page, "price-form")
