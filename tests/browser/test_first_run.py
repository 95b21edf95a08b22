"""The first run with data, in chromium: what `make run` prepares (the demo customers, 60 days
of usage imported through the real pipeline, last month's invoices, alerts) is on the pages a
new user opens first; and the staff audit log finds the changes the demo made."""

import datetime as dt
import importlib

import pytest
from django.apps import apps as django_apps
from django.core.management import call_command
from playwright.sync_api import expect

from billing.models import ModelPrice
from tests.browser.test_dashboard_journeys import _wait_for_charts
from usage.services import utc_today

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The migrations that write the price book: (module, forward function). A transactional test
# before this one flushed every table, the price book with it; without it the demo's invoices
# would all price at 0.00. (serialized_rollback restored it too, but re-creates every table's
# rows, content types included, and fails once another test has re-created those.)
PRICE_BOOK_MIGRATIONS = (
    ("0002_seed_price_book", "seed"),
    ("0008_embeddings_prices", "add_prices"),
    ("0010_claude_2_price", "add_price"),
)

STAFF_PASSWORD = "staff-demo-pass-1"
CUSTOMER_PASSWORD = "customer-demo-pass-1"


@pytest.fixture
def migrated_price_book(transactional_db):
    """The price book as the migrations write it (their own code, idempotent)."""
    for module, function in PRICE_BOOK_MIGRATIONS:
        migration = importlib.import_module(f"billing.migrations.{module}")
        getattr(migration, function)(django_apps, None)
    assert ModelPrice.objects.filter(model_id="amazon.nova-micro-v1:0").exists()


@pytest.fixture
def demo(settings, tmp_path, aws, migrated_price_book):
    settings.DEMO_STAFF_PASSWORD = STAFF_PASSWORD
    settings.DEMO_CUSTOMER_PASSWORD = CUSTOMER_PASSWORD
    settings.USAGE_EVENTS_DIR = str(tmp_path)
    call_command("seed_demo", verbosity=0)


def _log_in(page, live_server, email, password):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def test_the_demo_customer_sees_usage_charts_invoices_and_alerts(
    page, live_server, demo, screenshot
):
    _log_in(page, live_server, "customer@example.com", CUSTOMER_PASSWORD)
    expect(page.get_by_role("heading", name="Acme Analytics")).to_be_visible()
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    _wait_for_charts(page, 4)  # the default range: the demo's finished days
    # Whatever the day (on the 1st, "this month so far" is today alone, with nothing billed
    # yet), the default range reaches back at least 30 days: the demo's usage is on it.
    first_day = dt.date.fromisoformat(page.get_by_label("From").input_value())
    assert first_day <= utc_today() - dt.timedelta(days=29)
    expect(page.locator("#daily-tokens-by-model .main-svg").first).to_be_visible()
    expect(page.get_by_text("No usage", exact=False)).to_have_count(0)
    screenshot("demo-customer-usage")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
    expect(page.get_by_role("cell", name="Paid", exact=True).first).to_be_visible()
    screenshot("demo-customer-invoices")


def test_staff_see_the_demo_and_its_changes_in_the_audit_log(page, live_server, demo, screenshot):
    _log_in(page, live_server, "staff@example.com", STAFF_PASSWORD)
    page.goto(f"{live_server.url}/staff/billing/invoices/?status=all")
    expect(page.get_by_role("link", name="Globex Research").first).to_be_visible()
    page.goto(f"{live_server.url}/staff/audit/")
    page.get_by_label("Customer").fill("globex")
    page.get_by_role("button", name="Apply").click()
    rows = page.locator("tbody tr")
    expect(rows.first).to_be_visible()
    customers = page.locator("tbody td[data-label=Customer]").all_inner_texts()
    assert customers and set(customers) == {"Globex Research"}
    what = page.locator("tbody td[data-label=What]").all_inner_texts()
    assert any(text.startswith("Token created") for text in what)
    expect(page.get_by_text("Status: Active").first).to_be_visible()  # readable, not raw
    screenshot("demo-audit-log")
