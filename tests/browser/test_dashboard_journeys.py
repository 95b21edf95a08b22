"""The dashboards' main journeys in Debian's chromium, with screenshots as test artifacts.

Staff onboard a customer and copy its token, then look at the dashboards; the customer logs in,
sees its usage charts drawn, rotates a token, downloads an invoice; another customer's URLs
are 404.
"""

import datetime as dt
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from billing.models import Invoice, ModelPrice
from billing.services import invoice_issue, invoice_line_add
from customers import services
from proxy import contract
from tests.conftest import TEST_PASSWORD
from usage import counters
from usage.models import UsageDaily
from usage.services import utc_today

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _log_in(page, live_server, email):
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_load_state()


def _usage(customer, days=14):
    today = utc_today()
    ModelPrice.objects.get_or_create(
        model_id="anthropic.claude-3-haiku-20240307-v1:0",
        effective_from=dt.date(2020, 1, 1),
        defaults={"input_per_1k": Decimal("0.00025"), "output_per_1k": Decimal("0.00125")},
    )
    rows = []
    models = ["anthropic.claude-3-haiku-20240307-v1:0", "amazon.nova-lite-v1:0", "sandbox.echo-v1"]
    tags = [("support-bot", "support", "production"), ("docs-helper", "sales", "production"),
            ("batch-summaries", "services", "staging")]  # fmt: skip
    for d in range(1, days + 1):
        for m, model in enumerate(models):
            for a, (app, center, env) in enumerate(tags):
                rows.append(
                    UsageDaily(
                        customer=customer,
                        day=today - dt.timedelta(days=d),
                        model_id=model,
                        application_id=app,
                        cost_center=center,
                        environment=env,
                        requests=20 + 3 * d + a,
                        input_tokens=(1 + m) * (900 + 40 * d),
                        output_tokens=(1 + a) * (300 + 25 * (d % 5)),
                    )
                )
    UsageDaily.objects.bulk_create(rows)


def _live_counters(client, customer, *, requests, tokens):
    """Today's counters are a ninth of the month's, as the proxy would have counted them:
    calls to priced models, so the MONTH item also holds them in `quota_tokens`."""
    today = utc_today()
    for sk, share in ((counters.day_sk(today), 9), (counters.month_sk(today), 1)):
        values = {"requests": requests // share, "input_tokens": tokens[0] // share,
                  "output_tokens": tokens[1] // share}  # fmt: skip
        if sk.startswith("MONTH#"):
            values[contract.QUOTA_TOKENS] = sum(tokens)
        item = {"pk": {"S": counters.customer_pk(customer.pk)}, "sk": {"S": sk}}
        item.update({k: {"N": str(v)} for k, v in values.items()})
        client.put_item(TableName=counters.counters_table_name(), Item=item)


def _wait_for_charts(page, count):
    # A function, not an expression string: Playwright evals a string in the page, which the
    # Content-Security-Policy (script-src 'self', no 'unsafe-eval') refuses.
    page.wait_for_function(
        "(count) => document.querySelectorAll('[data-chart][data-rendered=true]').length >= count",
        arg=count,
        timeout=15000,
    )


def test_staff_onboard_copy_token_and_dashboards(
    page, live_server, staff_user, customer, aws, screenshot
):
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    _usage(customer)
    customer.monthly_token_quota = 600_000
    customer.save()
    _live_counters(aws.client("dynamodb"), customer, requests=1_340, tokens=(412_000, 168_000))
    _log_in(page, live_server, staff_user.email)
    page.get_by_role("link", name="Customers").first.click()
    page.get_by_role("link", name="Onboard a customer").click()
    page.get_by_label("Customer name").fill("Initech")
    page.get_by_label("Contact email").fill("it@initech.example")
    page.get_by_label("First user's email").fill("peter@initech.example")
    page.get_by_role("button", name="Onboard").click()
    token = page.locator("#new-token").inner_text().strip()
    assert contract.token_has_valid_checksum(token)
    page.get_by_role("button", name="Copy token").click()
    expect(page.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == token
    screenshot("token-copied")

    page.get_by_role("link", name="Analytics").click()
    expect(page.get_by_role("heading", name="Analytics")).to_be_visible()
    quota = page.get_by_role("region", name="Customers near or over quota")
    expect(quota.get_by_role("row", name="Acme Analytics")).to_contain_text("(96%)")
    _wait_for_charts(page, 2)
    screenshot("staff-overview")
    page.get_by_role("link", name="Applications and models").click()
    _wait_for_charts(page, 2)
    page.get_by_text("Data table").first.click()
    expect(page.get_by_role("rowheader", name="support-bot").first).to_be_visible()
    screenshot("staff-models")
    page.get_by_role("link", name="Heatmap").click()
    _wait_for_charts(page, 1)
    screenshot("staff-heatmap")
    page.get_by_role("link", name="Cost by tag").click()
    page.get_by_role("link", name="By environment").click()
    _wait_for_charts(page, 1)
    screenshot("staff-cost")


def test_customer_sees_charts_rotates_token_and_downloads_invoice(
    page, live_server, customer_user, customer, aws, screenshot
):
    page.on("dialog", lambda dialog: dialog.accept())
    _usage(customer)
    customer.monthly_token_quota, customer.daily_request_limit = 1_000_000, 2_000
    customer.save()
    _live_counters(aws.client("dynamodb"), customer, requests=1_340, tokens=(412_000, 168_000))
    services.token_create(customer=customer, label="backend")
    invoice = Invoice.objects.create(
        customer=customer, period_start=dt.date(2026, 10, 1), period_end=dt.date(2026, 10, 31)
    )
    invoice_line_add(invoice=invoice, description="Claude 3 Haiku usage", amount=Decimal("42.50"))
    invoice = invoice_issue(invoice=invoice)

    _log_in(page, live_server, customer_user.email)
    expect(page.get_by_role("heading", name=customer.name)).to_be_visible()
    expect(page.get_by_role("progressbar", name="Monthly token quota used")).to_be_visible()
    screenshot("customer-home")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Usage").click()
    today = utc_today()
    page.get_by_label("From").fill(str(today - dt.timedelta(days=14)))
    page.get_by_label("To (inclusive)").fill(str(today - dt.timedelta(days=1)))
    page.get_by_role("button", name="Show").click()
    _wait_for_charts(page, 4)
    expect(page.locator("#daily-tokens-by-model .main-svg").first).to_be_visible()
    screenshot("customer-usage")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Tokens").click()
    page.get_by_role("button", name="Rotate backend").click()
    expect(page.get_by_role("heading", name="Rotate token “backend”?")).to_be_visible()
    page.get_by_role("button", name="Rotate token").click()
    new_token = page.locator("#new-token").inner_text().strip()
    assert contract.token_has_valid_checksum(new_token)
    assert new_token in page.locator("#snippet-curl").inner_text()
    expect(page.get_by_text("rotating", exact=True)).to_be_visible()
    screenshot("customer-token-rotated")
    page.reload()
    assert page.locator("#new-token").count() == 0

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Invoices").click()
    with page.expect_download() as download_info:
        page.get_by_role("link", name="PDF").click()
    download = download_info.value
    assert download.suggested_filename == f"{invoice.number}.pdf"
    with open(download.path(), "rb") as pdf:
        assert pdf.read(4) == b"%PDF"
    screenshot("customer-invoices")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Account").click()
    page.get_by_role("textbox", name="Email").fill("colleague@acme.example")
    page.get_by_role("button", name="Send invitation").click()
    expect(page.get_by_text("Invitation sent to colleague@acme.example.")).to_be_visible()
    expect(page.get_by_role("cell", name="colleague@acme.example")).to_be_visible()
    screenshot("customer-account")


def test_another_customers_urls_are_404(
    page, live_server, customer_user, other_customer, screenshot
):
    theirs = services.token_create(customer=other_customer, label="theirs").token
    invoice = Invoice.objects.create(
        customer=other_customer, period_start=dt.date(2026, 9, 1), period_end=dt.date(2026, 9, 30)
    )
    invoice = invoice_issue(invoice=invoice)
    _log_in(page, live_server, customer_user.email)
    for path in (f"/app/billing/invoices/{invoice.pk}/", f"/app/billing/invoices/{invoice.pk}/pdf/",
                 f"/app/billing/invoices/{invoice.pk}/csv/"):  # fmt: skip
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 404, path
    screenshot("other-customers-invoice-404")
    # Write URLs answer 404 to a POST with the customer's own CSRF token, too.
    page.goto(f"{live_server.url}/app/tokens/")
    csrf = page.locator("input[name=csrfmiddlewaretoken]").first.input_value()
    for action in ("rotate", "revoke"):
        response = page.request.post(
            f"{live_server.url}/app/tokens/{theirs.pk}/{action}/",
            form={"csrfmiddlewaretoken": csrf, "grace_hours": "1"},
            headers={"Referer": f"{live_server.url}/app/tokens/"},
        )
        assert response.status == 404, action
    theirs.refresh_from_db()
    assert theirs.status == "active" and theirs.replaced_by is None
