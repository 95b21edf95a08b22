"""Every page of the portal, staff, customer and signed out, in chromium: no serious or critical
axe-core violation and no aria-describedby naming a missing element.

The pages are walked from the URL conf (tests/browser/a11y.py) with real objects in every
converter, so a page added tomorrow is checked tomorrow. Excluded by rule: the JSON API,
webhooks, health checks, the admin, downloads (CSV, PDF), and actions that only take a POST
(their GET answers 405). A URL pattern the walk cannot fill, or a page that does not answer
200, fails the test with its URL name. One logged-in page per role is reused for all pages.
"""

from urllib.parse import urlsplit

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.test import override_settings
from django.urls import get_resolver, path
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.views.generic import TemplateView
from django_otp.plugins.otp_totp.models import TOTPDevice
from playwright.sync_api import expect

from core import two_factor as tf
from core.models import User
from tests.browser.a11y import NOT_PAGES, build_world, fill, page_problems, plan, walk
from tests.browser.test_dashboard_journeys import _log_in
from tests.conftest import TEST_PASSWORD
from tests.test_two_factor import code_for


# Marked test by test: the completeness check at the end needs neither a browser nor a database.
def browser_test(test):
    return pytest.mark.browser(pytest.mark.django_db(transaction=True)(test))


@pytest.fixture
def world(aws, customer, customer_user, staff_user, settings):
    # Card payments on (test keys; nothing is sent to Stripe by showing a page): the credit
    # purchase page and the invoices' payment panels exist only then.
    settings.STRIPE_SECRET_KEY = "sk_test_accessibility"
    settings.STRIPE_WEBHOOK_SECRET = "whsec_accessibility"
    return build_world(customer=customer, customer_user=customer_user, staff_user=staff_user)


def _variants(world):
    """Pages worth seeing in more than one state, and the API key revoke's own `pk`."""
    inv = world["invoices"]
    states = [(f" ({state})", {"invoice_id": inv[state].pk}) for state in ("draft", "paid")]
    note = [(" (credit note)", {"invoice_id": world["credit_note"].pk})]
    return {
        "staff:api_key_revoke": [("", {"pk": world["api_key"]})],
        "staff:billing_invoice_detail": [("", {}), *states, *note],
        "customer:invoice_detail": [("", {}), *states[1:], *note],
    }


def _plan(world):
    pages, uncovered = plan(world["values"], _variants(world))
    assert not uncovered, f"pages no object of the world can open, so unchecked: {uncovered}"
    return pages


def _visit(page, live_server, pages) -> tuple[list[str], list[str]]:
    """Open each page; (problems, URL names that answered 405: actions, not pages)."""
    problems, actions = [], []
    for label, name, url in pages:
        # Asked first without the page: chromium answers a bodiless 405 with its own error
        # page, whose late navigation would cut into the next page's.
        if page.request.get(f"{live_server.url}{url}", max_redirects=0).status == 405:
            actions.append(name)
            continue
        response = page.goto(f"{live_server.url}{url}")
        kind = response.headers.get("content-type", "")
        if response.status != 200 or not kind.startswith("text/html"):
            problems.append(f"{label} ({url}): {response.status} {kind}")
            continue
        landed = urlsplit(response.url).path
        if landed != urlsplit(url).path and name != "password_reset_confirm":  # to set-password/
            problems.append(f"{label} ({url}): sent on to {landed}, so never checked")
            continue
        problems += page_problems(page, f"{label} ({url})")
    return problems, actions


@browser_test
def test_every_staff_page_passes_axe(page, live_server, staff_user, world):
    pages = _plan(world)
    _log_in(page, live_server, staff_user.email)
    problems, actions = _visit(page, live_server, pages["staff"] + pages["account"])
    assert "staff:customer_bulk" in actions  # the 405 rule does see POST-only actions
    problems += _answers_to_posts(page, live_server, world, staff_user)
    assert not problems, "\n".join(problems)


def _answers_to_posts(page, live_server, world, staff_user) -> list[str]:
    """The pages that only a POST shows: a new token (shown once), the bulk change and a
    destructive action to confirm, a form sent back with its errors, and the recovery codes
    (shown once)."""
    base, problems = live_server.url, []
    page.goto(f"{base}/staff/customers/{world['customer'].pk}/tokens/new/")
    page.get_by_label("Label").fill("axe-check")
    page.get_by_role("button", name="Create token").click()
    expect(page.locator("#new-token")).to_be_visible()
    problems += page_problems(page, "the new token, shown once")
    page.goto(f"{base}/staff/customers/")
    page.get_by_label(f"Select {world['customer'].name}").check()
    page.get_by_label("With selected").select_option("set_limits")
    page.get_by_role("button", name="Continue…").click()
    expect(page.get_by_role("button", name="Set limits")).to_be_visible()
    problems += page_problems(page, "the bulk change to confirm")
    page.goto(f"{base}/staff/customers/{world['customer'].pk}/")
    page.get_by_role("button", name="Suspend", exact=True).click()
    expect(page.get_by_role("button", name=f"Suspend {world['customer'].name}")).to_be_visible()
    problems += page_problems(page, "a destructive action to confirm")
    page.goto(f"{base}/staff/customers/new/")
    page.get_by_label("Contact email").fill("not an email")
    page.get_by_role("button", name="Onboard").click()
    expect(page.locator(".field.has-error").first).to_be_visible()
    problems += page_problems(page, "the onboarding form with its errors")
    page.goto(f"{base}/accounts/two-factor/setup/")
    device = TOTPDevice.objects.get(user=staff_user, confirmed=False)
    page.get_by_label("Code").fill(code_for(device))
    page.get_by_role("button", name="Turn on two-factor sign-in").click()
    expect(page.get_by_role("heading", name="recovery codes")).to_be_visible()
    problems += page_problems(page, "the recovery codes, shown once")
    return problems


@browser_test
def test_every_customer_page_and_the_error_pages_pass_axe(page, live_server, customer_user, world):
    pages = _plan(world)
    _log_in(page, live_server, customer_user.email)
    problems, _ = _visit(page, live_server, pages["customer"])
    # The rotation's confirmation (a dialog on the tokens page), then the new token, once.
    page.goto(f"{live_server.url}/app/tokens/")
    page.get_by_role("button", name="Rotate a-long-label-for-the-batch-jobs-token").click()
    expect(page.get_by_role("heading", name="Rotate token “a-long-label")).to_be_visible()
    problems += page_problems(page, "the rotation to confirm")
    page.get_by_role("button", name="Rotate token").click()
    expect(page.locator("#new-token")).to_be_visible()
    problems += page_problems(page, "the rotated token, shown once")
    for path_, status in (("/staff/", 403), ("/app/no-such-page/", 404)):
        response = page.goto(f"{live_server.url}{path_}")
        assert response.status == status
        problems += page_problems(page, f"the {status} page")
    assert not problems, "\n".join(problems)


@browser_test
def test_every_signed_out_page_passes_axe(page, live_server, customer, staff_user):
    reset = {"uidb64": urlsafe_base64_encode(force_bytes(staff_user.pk)),
             "token": default_token_generator.make_token(staff_user)}  # fmt: skip
    pages, _ = plan(reset)  # completeness is the other tests' business: they have the world
    signed_out = [p for p in pages["signed_out"] if p[1] != "login_code"]
    problems, _ = _visit(page, live_server, signed_out)
    assert len(signed_out) == 5
    for route, name in walk():  # the pages excluded by name show no page of their own
        if name in NOT_PAGES:
            url = f"{live_server.url}{fill(route, {'provider_id': 'oidc'})}"
            assert page.request.get(url, max_redirects=0).status in (302, 404), name
    response = page.goto(f"{live_server.url}/no-such-page/")
    assert response.status == 404
    problems += page_problems(page, "the 404 page, signed out")
    # The code step comes after the password of a user with two-factor sign-in.
    user = User.objects.create_user("two@acme.example", TEST_PASSWORD, customer=customer)
    tf.enrol_confirm(user, code_for(tf.app_device_for_enrolment(user)))
    _log_in(page, live_server, user.email)
    assert page.url.endswith("/accounts/login/code/"), page.url
    problems += page_problems(page, "login_code")
    # The check itself can fail: a field without a label is a critical violation.
    page.evaluate("document.querySelector('main').append(document.createElement('select'))")
    assert "select-name" in "\n".join(page_problems(page, "a select without a label"))
    assert not problems, "\n".join(problems)


urlpatterns = [
    *get_resolver().url_patterns,
    path(
        "staff/widgets/<int:widget_id>/",
        TemplateView.as_view(template_name="base.html"),
        name="widget",
    ),
]


@override_settings(ROOT_URLCONF=__name__)
def test_a_page_the_walk_cannot_fill_is_named():
    """The completeness check itself: a new page with an object the world does not have is
    reported by name, not skipped."""
    _pages, uncovered = plan({})
    assert "widget" in uncovered
    assert "staff:customer_detail" in uncovered
    assert "staff:customer_list" not in uncovered  # no object needed
    assert not any(name.startswith(("api", "admin:")) for name in uncovered)  # by rule
    assert "staff:usage_export" not in uncovered  # a download, by rule
