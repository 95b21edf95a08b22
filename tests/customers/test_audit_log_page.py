"""/staff/audit/: every audited change across customers, filtered, paginated, newest first,
each change written for people (labels, lists, before → after, thousands separators)."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from customers import onboarding, services
from customers.audit_display import EMPTY, readable_changes
from customers.models import AuditEvent, Customer
from portal.api.keys import api_key_create, api_key_revoke

pytestmark = pytest.mark.django_db

URL = reverse("staff:audit_log")


def _changes(event) -> dict:
    """{label: "before → after"} (or just "after" when the event records no earlier value)."""
    return {
        c.label: c.after if c.before is None else f"{c.before} → {c.after}"
        for c in readable_changes(event)
    }


def _event(action, **kw) -> AuditEvent:
    return AuditEvent.objects.filter(action=action, **kw).latest("created_at")


def _page(client, **query):
    response = client.get(URL, query)
    assert response.status_code == 200
    return response


def test_each_kind_of_change_reads_as_words(staff_client, staff_user, customer, customer_user):
    services.customer_update_limits(
        customer=customer,
        daily_request_limit=1_234_567,
        monthly_token_quota=50_000_000,
        allowed_models=["amazon.nova-lite-v1:0", "anthropic.claude-3-haiku-20240307-v1:0"],
        ip_allowlist=["203.0.113.0/24"],
        actor=staff_user,
    )
    services.customer_update_limits(customer=customer, allowed_models=[], actor=staff_user)
    services.customer_update(
        customer=customer,
        extra_contact_emails=["ap@acme.example"],
        notes="Net 30",
        actor=staff_user,
    )
    services.customer_suspend(customer=customer, actor=staff_user)
    services.customer_reactivate(customer=customer, actor=staff_user)
    issued = services.token_create(customer=customer, label="backend", actor=staff_user)
    services.token_update_limits(token=issued.token, rpm_limit=600, actor=staff_user)
    services.token_rotate(token=issued.token, grace_hours=3, actor=staff_user)
    services.token_revoke(token=issued.token, actor=staff_user)
    onboarding.customer_user_set_active(user=customer_user, active=False, actor=staff_user)
    key = api_key_create(name="nightly-export", scope="read", created_by=staff_user)
    api_key_revoke(api_key=key.api_key, actor=staff_user)

    limits = _changes(_event("customer.limits", after__has_key="daily_request_limit"))
    assert limits["Daily requests"] == "no limit → 1,234,567"
    assert limits["Monthly tokens"] == "no limit → 50,000,000"
    assert limits["Allowed models"] == (
        "all models → amazon.nova-lite-v1:0, anthropic.claude-3-haiku-20240307-v1:0"
    )
    assert limits["IP allowlist"] == "any address → 203.0.113.0/24"
    assert _changes(_event("customer.limits", after__allowed_models=[])) == {
        "Allowed models": "amazon.nova-lite-v1:0, anthropic.claude-3-haiku-20240307-v1:0"
        " → all models"
    }
    details = _changes(_event("customer.update"))
    assert details == {
        "Other contact emails": "none → ap@acme.example",
        "Notes": f"{EMPTY} → Net 30",
    }
    assert _changes(_event("customer.suspend")) == {"Status": "Active → Suspended"}
    created = _changes(_event("token.create"))
    assert created["Label"] == "backend" and created["Status"] == "Active"
    assert created["Token"] == issued.token.masked
    assert "Allowed models" not in created  # empty at creation: nothing to say
    assert _changes(_event("token.limits")) == {"Requests per minute": "no limit → 600"}
    rotated = _changes(_event("token.rotate"))
    assert rotated["Old token works until"].startswith(f"{EMPTY} → ")
    assert rotated["Old token works until"].endswith(" UTC")
    assert _changes(_event("token.revoke"))["Status"] == "Active → Revoked"
    assert _changes(_event("user.disable")) == {"Can log in": "yes → no"}
    api_created = _changes(_event("api_key.created"))
    assert api_created["Name"] == "nightly-export" and api_created["Scope"] == "read"
    assert _changes(_event("api_key.revoked"))["Revoked"].startswith("not revoked → ")

    html = _page(staff_client).content.decode()
    for words in ("Limits changed", "Customer suspended", "Token revoked", "Login disabled",
                  "API key created", "API key nightly-export", f"User {customer_user.email}",
                  f"Token {issued.token.masked}", "1,234,567", "Allowed models"):  # fmt: skip
        assert words in html, words
    for raw in ("daily_request_limit", "allowed_models", "['", "[]", "None", "customer.limits"):
        assert raw not in html.replace('value="customer.limits"', ""), raw
    assert issued.plaintext not in html and issued.token.token_hash not in html


def test_money_dicts_instants_and_repairs(staff_client, settings, customer):
    settings.BILLING_CURRENCY = "EUR"
    AuditEvent.objects.create(
        customer=customer,
        actor_label="ops@example.com",
        action="customer.limits",
        object_type="customer",
        before={"monthly_budget": None, "default_model_params": {}, "prepaid": False},
        after={
            "monthly_budget": "1234567.5",
            "default_model_params": {"temperature": 0.2, "max_tokens": 4096},
            "prepaid": True,
        },
    )
    AuditEvent.objects.create(
        customer=None,
        actor_label="reconciliation",
        action="sync.repair",
        object_type="price",
        object_id="amazon.nova-lite-v1:0",
        after={"model_id": "amazon.nova-lite-v1:0", "problem": "missing"},
    )
    events = _page(staff_client).context["events"]
    repair, limits = events
    assert _changes(limits) == {
        "Monthly budget": "no budget → 1,234,567.50 EUR",
        "Default model parameters": "none → max_tokens: 4,096; temperature: 0.2",
        "Prepaid": "no → yes",
    }
    assert repair.subject == "Price of amazon.nova-lite-v1:0"
    assert _changes(repair) == {"Model": "amazon.nova-lite-v1:0", "Problem found": "missing"}
    html = _page(staff_client).content.decode()
    assert "Proxy copy repaired" in html and "1,234,567.50 EUR" in html


def test_filters_by_who_customer_what_and_days(
    staff_client, staff_user, customer, other_customer, customer_user
):
    services.customer_suspend(customer=customer, actor=staff_user)
    services.token_create(customer=other_customer, label="x", actor=customer_user)
    services.customer_suspend(customer=other_customer, source="customers command")
    old = AuditEvent.objects.get(customer=customer)
    old.created_at = timezone.now() - dt.timedelta(days=40)
    old.save()

    def actions(**query):
        return [(e.customer.name, e.action) for e in _page(staff_client, **query).context["events"]]

    assert actions() == [
        ("Globex Research", "customer.suspend"),
        ("Globex Research", "token.create"),
        ("Acme Analytics", "customer.suspend"),
    ]
    assert actions(who="STAFF@example") == [("Acme Analytics", "customer.suspend")]
    assert actions(who="customers command") == [("Globex Research", "customer.suspend")]
    assert actions(customer="globex", action="customer.suspend") == [
        ("Globex Research", "customer.suspend")
    ]
    assert actions(customer=str(customer.pk)) == [("Acme Analytics", "customer.suspend")]
    today = timezone.now().date()
    assert len(actions(start=str(today - dt.timedelta(days=1)))) == 2
    assert actions(end=str(today - dt.timedelta(days=30))) == [
        ("Acme Analytics", "customer.suspend")
    ]
    day = old.created_at.date()
    assert actions(start=str(day), end=str(day)) == [("Acme Analytics", "customer.suspend")]
    assert actions(customer="nobody at all") == []
    html = _page(staff_client, customer="nobody at all").content.decode()
    assert "No change matches these filters." in html


def test_paginated_newest_first_and_pages_keep_the_filters(staff_client, customer):
    now = timezone.now()
    AuditEvent.objects.bulk_create(
        AuditEvent(
            customer=customer,
            actor_label="ops@example.com",
            action="customer.update",
            object_type="customer",
            after={"notes": f"n{i}"},
            created_at=now - dt.timedelta(minutes=i),
        )
        for i in range(51)
    )
    first = _page(staff_client, customer="acme")
    page = first.context["page"]
    assert len(page.object_list) == 50 and page.paginator.num_pages == 2
    assert [e.after["notes"] for e in page.object_list[:2]] == ["n0", "n1"]
    assert "?customer=acme&amp;page=2" in first.content.decode()
    second = _page(staff_client, customer="acme", page="2").context["page"]
    assert [e.after["notes"] for e in second.object_list] == ["n50"]
    assert _page(staff_client, page="99999999999999999999").context["page"].number == 2


HOSTILE = [
    {"who": "a\x00b"},
    {"customer": "\x00"},
    {"customer": "acme\x07\x1b[31m"},
    {"who": "x" * 5000, "customer": "y" * 5000},
    {"action": "customer.limits\x00"},
    {"action": "<script>alert(1)</script>"},
    {"start": "2026-02-30", "end": "2026-13-01"},
    {"start": "\x00", "end": "2026-01-01\x00"},
    {"start": "99999999999-01-01", "end": "1e400"},
    {"start": "2026-03-31", "end": "2026-01-01"},
    {"start": "0001-01-01", "end": "0001-01-01"},
    {"start": "9999-12-31", "end": "9999-12-31"},
    {"page": str(10**30)},
    {"page": "-1"},
    {"page": "abc\x00"},
]


@pytest.mark.parametrize("query", HOSTILE, ids=range(len(HOSTILE)))
def test_hostile_query_values_never_500(staff_client, staff_user, customer, query):
    services.customer_suspend(customer=customer, actor=staff_user)
    response = _page(staff_client, **query)
    form = response.context["form"]
    html = response.content.decode()
    if form.errors:  # a clear message, and the filter left out
        assert "Some filters could not be used and are left out" in html
        assert 'role="alert"' in html
    assert "\x00" not in html and "<script>alert" not in html


@pytest.mark.parametrize(
    "query, label, message",
    [
        ({"who": "a\x00b"}, "Who", "Null characters are not allowed."),
        ({"who": "a\x1b[31m"}, "Who", "This cannot contain a control character (U+001B)."),
        ({"start": "2026-02-30"}, "From (UTC)", "Enter a valid date."),
        (
            {"start": "2026-03-31", "end": "2026-01-01"},
            "To (UTC, inclusive)",
            "This is before the “From” day.",
        ),
        ({"action": "drop table"}, "What", "Choose a kind of change from the list."),
    ],
)
def test_a_bad_filter_is_named_and_the_others_still_apply(
    staff_client, staff_user, customer, other_customer, query, label, message
):
    services.customer_suspend(customer=customer, actor=staff_user)
    services.customer_suspend(customer=other_customer, actor=staff_user)
    response = _page(staff_client, customer="globex", **query)
    html = response.content.decode()
    assert message in html
    assert f"are left out: {label}. The list" in html
    assert [e.customer for e in response.context["events"]] == [other_customer]


def test_the_last_and_first_days_of_the_calendar_are_valid(staff_client, customer):
    AuditEvent.objects.create(
        customer=customer, actor_label="x", action="customer.update", object_type="customer"
    )
    assert len(_page(staff_client, end="9999-12-31").context["events"]) == 1
    assert len(_page(staff_client, start="0001-01-01").context["events"]) == 1
    assert len(_page(staff_client, start="9999-12-31").context["events"]) == 0


def test_customer_users_are_refused(customer_client):
    assert customer_client.get(URL).status_code == 403
    assert URL not in customer_client.get(reverse("customer:home")).content.decode()


def test_anonymous_is_sent_to_log_in(client):
    anonymous = client.get(URL)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/")


def test_staff_navigation_links_to_it(staff_client):
    html = staff_client.get(reverse("staff:home")).content.decode()
    assert f'href="{URL}"' in html
    assert 'aria-current="page">Audit log' in staff_client.get(URL).content.decode()


def test_customer_detail_trail_is_readable_too(staff_client, staff_user, customer):
    services.customer_update_limits(
        customer=customer, allowed_models=["amazon.nova-lite-v1:0"], actor=staff_user
    )
    html = staff_client.get(reverse("staff:customer_detail", args=[customer.pk])).content.decode()
    assert "Allowed models" in html and "all models" in html
    assert "[&#x27;amazon" not in html and "['amazon" not in html
    assert f"{URL}?customer={customer.pk}" in html


def test_a_customer_name_with_markup_is_shown_as_text(staff_client, staff_user):
    customer = Customer.objects.create(name="<b>Bold</b> & Co", contact_email="b@example.com")
    services.customer_suspend(customer=customer, actor=staff_user)
    html = _page(staff_client, customer="<b>").content.decode()
    assert "&lt;b&gt;Bold&lt;/b&gt; &amp; Co" in html and "<b>Bold</b>" not in html
