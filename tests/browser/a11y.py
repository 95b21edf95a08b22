"""What the accessibility tests share: axe-core run in the page, the objects every page needs,
and the list of pages, walked from the URL conf so a new page is checked the day it is added.

axe-core is the copy that the `axe-playwright-python` package ships (a dev dependency); it is
evaluated in the page through the DevTools protocol, which the page's CSP does not apply to.
"""

import datetime as dt
import re
from decimal import Decimal
from pathlib import Path

import axe_playwright_python
from django.contrib.auth.tokens import default_token_generator
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from billing import wallet
from billing.invoice_run import invoice_run_request
from billing.models import Invoice, InvoiceLine, PricingPlan
from billing.services import credit_note_issue, invoice_issue, invoice_line_add, invoice_mark_paid
from customers import services
from portal.api.keys import api_key_create
from tests.browser.test_dashboard_journeys import _usage
from usage.models import Alert, IngestRun, QuarantinedRow, UsageDifference
from usage.services import ingest_run_create, utc_today

AXE_SCRIPT = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
BLOCKING = ("serious", "critical")
# Nothing is excluded: every rule runs on every element, plotly's charts included.
AXE_OPTIONS = {"resultTypes": ["violations"]}

# Not pages, by rule: machine endpoints (the JSON API, webhooks, health checks, the admin).
MACHINE_PREFIXES = ("api/", "django-admin/", "stripe/", "healthz", "static/")
# Files, by rule: the URL names of downloads end so.
DOWNLOAD_SUFFIXES = ("_pdf", "_csv", "_export")
# Not pages either, each for its reason (checked: none of them answers a GET with a page).
NOT_PAGES = {
    "home": "sends each role on to its own home page",
    "openid_connect_login": "single sign-on starts with a POST; a GET goes to the login page",
    "openid_connect_callback": "where the identity provider sends the browser back",
}
# Who opens the pages under each prefix; accounts/ pages are split between a signed-out
# visitor and a signed-in user.
SIGNED_OUT = {"login", "password_reset", "password_reset_done", "password_reset_confirm",
              "password_reset_complete", "login_code"}  # fmt: skip


def date_range() -> str:
    today = utc_today()
    return f"start={today - dt.timedelta(days=14)}&end={today - dt.timedelta(days=1)}"


# Pages whose default view would be empty: the range that has the world's usage.
WITH_RANGE = {"staff:usage_customer", "staff:usage_latency", "staff:dashboard_overview",
              "staff:dashboard_models", "staff:dashboard_heatmap", "staff:dashboard_cost",
              "customer:usage_overview", "customer:usage_summaries"}  # fmt: skip


def axe_violations(page) -> list[dict]:
    page.evaluate(AXE_SCRIPT)
    results = page.evaluate("(options) => axe.run(document, options)", AXE_OPTIONS)
    return [v for v in results["violations"] if v["impact"] in BLOCKING]


def describe(violations) -> str:
    lines = []
    for v in violations:
        targets = [" ".join(map(str, node["target"])) for node in v["nodes"][:5]]
        lines.append(f"  {v['impact']} {v['id']}: {v['help']} -> {targets}")
    return "\n".join(lines)


def settle(page):
    """Wait until every chart on the page is drawn (axe then sees plotly's markup too)."""
    page.wait_for_function(
        "() => [...document.querySelectorAll('[data-chart]')].every("
        "(e) => e.dataset.rendered === 'true')",
        timeout=15000,
    )


def missing_descriptions(page) -> list[str]:
    """aria-describedby ids that name no element: the description never reaches anyone."""
    return page.evaluate(
        """() => [...document.querySelectorAll('[aria-describedby]')].flatMap((el) =>
            el.getAttribute('aria-describedby').split(/\\s+/)
              .filter((id) => id && !document.getElementById(id))
              .map((id) => `${el.id || el.name}: ${id}`))"""
    )


def page_problems(page, label: str) -> list[str]:
    """The blocking axe violations and dangling descriptions of the page on screen."""
    settle(page)
    problems = []
    violations = axe_violations(page)
    if violations:
        problems.append(f"{label}:\n{describe(violations)}")
    missing = missing_descriptions(page)
    if missing:
        problems.append(f"{label}: aria-describedby names nothing: {missing}")
    return problems


def walk(patterns=None, prefix="", namespace=""):
    """(route, URL name) of every pattern of the URL conf."""
    for entry in get_resolver().url_patterns if patterns is None else patterns:
        if isinstance(entry, URLResolver):
            ns = f"{entry.namespace}:" if entry.namespace else namespace
            yield from walk(entry.url_patterns, prefix + str(entry.pattern), ns)
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), f"{namespace}{entry.name or ''}"


def excluded_by_rule(route: str, name: str) -> str | None:
    if route.startswith(MACHINE_PREFIXES):
        return "machine endpoint"
    if name.endswith(DOWNLOAD_SUFFIXES) or route.endswith((".csv", ".pdf", ".json")):
        return "download"
    return NOT_PAGES.get(name)


def role_of(route: str, name: str) -> str:
    if route.startswith("staff/"):
        return "staff"
    if route.startswith("app/"):
        return "customer"
    return "signed_out" if name in SIGNED_OUT else "account"


def plan(values: dict, variants: dict | None = None):
    """The pages to visit, by role ({role: [(label, name, url)]}), and the URL names that no
    object of `values` can fill: those pages would go unchecked, so the test fails on them."""
    pages, uncovered = {}, []
    for route, name in walk():
        if excluded_by_rule(route, name):
            continue
        fills = (variants or {}).get(name) or [("", {})]
        for suffix, extra in fills:
            url = fill(route, values | extra)
            if url is None:
                uncovered.append(name)
                break
            if name in WITH_RANGE:
                url += f"?{date_range()}"
            label = f"{name}{suffix}"
            pages.setdefault(role_of(route, name), []).append((label, name, url))
    return pages, sorted(set(uncovered))


def fill(route: str, values: dict) -> str | None:
    names = re.findall(r"<(?:\w+:)?(\w+)>", route)
    if route.startswith("^") or any(n not in values for n in names):
        return None
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: str(values[m.group(1)]), route)


def build_world(*, customer, customer_user, staff_user) -> dict:
    """Real objects, made by the real services, for every page to show something: usage,
    tokens (one rotated), draft, issued and paid invoices, a credit note, a credit grant,
    an invoice run, an ingest run with a quarantined row, an alert, a difference to
    reconcile, a plan and an API key. Returns the values of the URL patterns' converters."""
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
    invoices = {}
    for month, state in ((1, "paid"), (2, "issued"), (3, "draft")):
        invoice = Invoice.objects.create(
            customer=customer,
            period_start=dt.date(2026, month, 1),
            period_end=dt.date(2026, month, 28),
        )
        invoice_line_add(
            invoice=invoice, description="Claude 3 Haiku usage", amount=Decimal("1234.5")
        )
        if state != "draft":
            invoice = invoice_issue(invoice=invoice)
        if state == "paid":
            invoice = invoice_mark_paid(invoice=invoice, by=staff_user)
        invoices[state] = invoice
    note = credit_note_issue(invoice=invoices["paid"], amount=Decimal("100"), reason="Outage")
    wallet.credit_grant(
        customer=customer, amount=Decimal("250"), note="Welcome credit", by=staff_user
    )
    line = InvoiceLine.objects.filter(invoice=invoices["draft"]).first()
    invoice_run_request(period_start=dt.date(2026, 1, 1), trigger="staff", queue=False)
    today = utc_today()
    run = ingest_run_create(days=[today - dt.timedelta(days=1)], trigger=IngestRun.Trigger.STAFF)
    QuarantinedRow.objects.create(
        day=run.start_day, run=run, stage="daily",
        reason="application_id contains a control character", raw_row='["x\\u0000"]',
    )  # fmt: skip
    UsageDifference.objects.create(customer=customer, day=run.start_day, billed_requests=2)
    Alert.objects.create(
        customer=customer, rule=Alert.Rule.DAILY_REQUESTS, threshold=80,
        period=str(run.start_day), value=1_700, limit=2_000,
    )  # fmt: skip
    plan_ = PricingPlan.objects.create(code="growth", name="Growth", kind="pay_as_you_go")
    key = api_key_create(name="nightly-export", scope="read", created_by=staff_user)
    return {
        "customer": customer,
        "invoices": invoices,
        "credit_note": note,
        "values": {
            "pk": customer.pk,
            "customer_id": customer.pk,
            "user_id": customer_user.pk,
            "token_id": issued.token.pk,
            "invoice_id": invoices["issued"].pk,
            "line_id": line.pk,
            "run_id": run.pk,
            "plan_id": plan_.pk,
            "uidb64": urlsafe_base64_encode(force_bytes(staff_user.pk)),
            "token": default_token_generator.make_token(staff_user),
        },
        "api_key": key.api_key.pk,
    }
