"""Browser journeys (Playwright + chromium) through the usage pages, with screenshots."""

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.conftest import TEST_PASSWORD
from usage.models import IngestRun
from usage.services import usage_day_replace, utc_today

from .conftest import put_counter
from .events import make_event, write_events

# Playwright's sync API runs an event loop in the test thread; the test's own ORM calls are
# synchronous and safe (as in tests/browser/conftest.py).
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
    page.screenshot(path=str(ARTIFACTS / f"usage-{name}.png"), full_page=True)


def _log_in(page, live_server, email):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_staff_reingests_a_day_and_sees_usage(
    page, live_server, staff_user, customer, dynamodb, events_dir
):
    day = utc_today() - dt.timedelta(days=2)
    noon = dt.datetime(day.year, day.month, day.day, 12, tzinfo=dt.UTC)
    write_events(events_dir, [make_event(customer.pk, when=noon) for _ in range(3)])
    put_counter(
        dynamodb,
        customer.pk,
        f"DAY#{utc_today()}",
        requests=12,
        input_tokens=3400,
        output_tokens=560,
    )

    _log_in(page, live_server, staff_user.email)
    page.wait_for_url(f"{live_server.url}/staff/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    expect(page.get_by_role("heading", name="Usage", exact=True)).to_be_visible()
    _shot(page, "staff-dashboard")

    page.get_by_role("link", name="Ingest runs").click()
    page.get_by_label("First day (UTC)").fill(day.isoformat())
    page.get_by_label("Last day (UTC, inclusive)").fill(day.isoformat())
    page.get_by_label("Engine").select_option("duckdb")
    page.get_by_role("button", name="Queue ingest").click()
    expect(page.get_by_role("heading", name=f"Ingest 1 day(s), {day} to {day}?")).to_be_visible()
    page.get_by_role("button", name="Queue ingest").click()
    page.wait_for_url(f"{live_server.url}/staff/usage/ingest/*/")
    expect(page.get_by_text("Succeeded").first).to_be_visible()
    _shot(page, "staff-ingest-run")
    assert IngestRun.objects.get().rows_written == 1

    page.goto(f"{live_server.url}/staff/usage/customers/{customer.pk}/?start={day}&end={day}")
    expect(page.get_by_text("anthropic.claude-3-haiku-20240307-v1:0")).to_be_visible()
    _shot(page, "staff-customer")


def test_customer_sees_usage_and_downloads_csv(
    page, live_server, customer_user, customer, dynamodb
):
    customer.monthly_token_quota = 10_000
    customer.daily_request_limit = 100
    customer.save()
    day = utc_today().replace(day=1)
    usage_day_replace(
        day=day,
        engine="duckdb",
        rows=[
            (
                str(customer.pk),
                "amazon.nova-pro-v1:0",
                "search",
                "cc-1",
                "prod",
                40,
                4000,
                400,
                0,
                0,
            ),
            (str(customer.pk), "anthropic.claude-3-haiku", "chat", "cc-2", "dev", 2, 200, 20, 0, 0),
        ],
    )
    put_counter(
        dynamodb,
        customer.pk,
        f"MONTH#{utc_today():%Y-%m}",
        requests=42,
        input_tokens=4200,
        output_tokens=420,
        quota_tokens=4620,
    )
    put_counter(dynamodb, customer.pk, f"DAY#{utc_today()}", requests=55, input_tokens=10)

    _log_in(page, live_server, customer_user.email)
    page.wait_for_url(f"{live_server.url}/app/")
    _shot(page, "customer-home")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    expect(page.get_by_text("46% of 10,000 per month")).to_be_visible()
    expect(page.get_by_text("55% of 100 per day")).to_be_visible()
    page.get_by_role("link", name="By application").click()
    expect(page.get_by_role("cell", name="search")).to_be_visible()
    _shot(page, "customer-usage")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV").click()
    text = Path(download.value.path()).read_text()
    assert text.startswith("day,customer_id,model_id") and "amazon.nova-pro-v1:0" in text
