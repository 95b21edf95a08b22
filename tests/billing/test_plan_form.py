"""The plan form: only the terms of the chosen kind count (the others are ignored and stored as
defaults), tiers are edited as numbered rows with messages that name the row, and a plan
saved from its edit page without a change is stored exactly as it was."""

from decimal import Decimal as D
from html.parser import HTMLParser

import pytest
from django.forms.models import model_to_dict
from django.urls import reverse

from billing.models import PricingPlan
from billing.plan_form import TIER_ROWS, PricingPlanForm
from core.models import User

pytestmark = pytest.mark.django_db

NEW = reverse("staff:billing_plan_new")
BASE = {"name": "Rows", "code": "rows", "is_active": "on", "description": ""}


class _Submitted(HTMLParser):
    """What a browser posts for the page's plan form: every named input, textarea and select
    (hidden rows included: hiding does not disable), checkboxes only when checked."""

    def __init__(self):
        super().__init__()
        self.data, self._textarea, self._select, self._in_form = {}, None, None, False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and "data-plan-form" in a:
            self._in_form = True
        if not self._in_form:
            return
        name = a.get("name")
        if tag == "input" and name and name != "csrfmiddlewaretoken":
            if a.get("type") == "checkbox":
                if "checked" in a:
                    self.data[name] = a.get("value", "on")
            else:
                self.data[name] = a.get("value", "")
        elif tag == "textarea" and name:
            self._textarea = name
            self.data[name] = ""
        elif tag == "select" and name:
            self._select = name
            self.data.setdefault(name, "")
        elif tag == "option" and self._select and "selected" in a:
            self.data[self._select] = a.get("value", "")

    def handle_endtag(self, tag):
        if tag == "textarea":
            self._textarea = None
        elif tag == "select":
            self._select = None
        elif tag == "form":
            self._in_form = False

    def handle_data(self, data):
        if self._textarea:
            self.data[self._textarea] += data


def submitted(html: str) -> dict:
    parser = _Submitted()
    parser.feed(html)
    return {k: v.removeprefix("\n") if k == "description" else v for k, v in parser.data.items()}


def _rows(*rows) -> dict:
    """Tier rows as the form posts them: (up_to, price per unit[, flat fee]) from row 1."""
    data = {}
    for number, row in enumerate(rows, start=1):
        for column, value in zip(("up_to", "unit_price", "flat_fee"), row, strict=False):
            data[f"tier_{number}_{column}"] = value
    return data


def _stored(plan) -> dict:
    plan.refresh_from_db()
    return model_to_dict(plan)


# --- round trip ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"kind": "per_token", "markup_percent": D("20")},
        {"kind": "per_token", "markup_percent": D("10"), "minimum_commitment": D("500.00")},
        {"kind": "per_request", "per_request_price": D("0.002")},
        {
            "kind": "tiered",
            "tier_mode": "graduated",
            "metric": "requests",
            "tiers": [
                {"up_to": 5, "unit_price": "7"},
                {"up_to": 10, "unit_price": "6.50", "flat_fee": "0"},
                {"unit_price": "6", "flat_fee": "25"},
            ],
        },
        {
            "kind": "tiered",
            "tier_mode": "volume",
            "metric": "kilotokens",
            "tiers": [
                {"up_to": 100000, "unit_price": "0.004"},
                {"up_to": 1000000, "unit_price": "0.003"},
                {"unit_price": "0.000000001"},
            ],
        },
        {
            "kind": "subscription",
            "metric": "kilotokens",
            "monthly_fee": D("49.00"),
            "included_units": 20000,
            "overage_unit_price": D("0.003"),
        },
        {"kind": "package", "package_size": 10000, "package_price": D("25.00")},
    ],
    ids=["per-token", "minimum", "per-request", "graduated", "volume", "subscription", "package"],
)
def test_a_plan_saved_unchanged_is_stored_exactly_as_it_was(staff_client, fields):
    plan = PricingPlan.objects.create(
        code="kept", name="Kept as is", description="Two lines\nof text", **fields
    )
    before = _stored(plan)
    url = reverse("staff:billing_plan_edit", args=[plan.pk])
    page = staff_client.get(url).content.decode()
    response = staff_client.post(url, submitted(page))
    assert response.status_code == 302, response.context["form"].errors
    after = _stored(plan)
    assert after == before
    assert after["tiers"] == fields.get("tiers", [])  # keys, strings and bounds as they were


def test_the_example_plans_round_trip(staff_client):
    from django.core.management import call_command

    call_command("billing_seed_plans", verbosity=0)
    for plan in PricingPlan.objects.all():
        before = _stored(plan)
        url = reverse("staff:billing_plan_edit", args=[plan.pk])
        response = staff_client.post(url, submitted(staff_client.get(url).content.decode()))
        assert response.status_code == 302, (plan.code, response.context["form"].errors)
        assert _stored(plan) == before, plan.code


# --- tiers as rows ---------------------------------------------------------------------------


def test_tiers_are_rows_and_empty_rows_are_ignored(staff_client):
    rows = _rows(("5", "7"), ("", "", ""), ("10", "6.50", "2"), ("", "06"))
    data = {**BASE, "kind": "tiered", "metric": "requests", "tier_mode": "graduated", **rows}
    assert staff_client.post(NEW, data).status_code == 302
    assert PricingPlan.objects.get(code="rows").tiers == [
        {"up_to": 5, "unit_price": "7"},
        {"up_to": 10, "unit_price": "6.50", "flat_fee": "2"},
        {"unit_price": "6"},
    ]


@pytest.mark.parametrize(
    ("rows", "field", "message"),
    [
        ((("10", "7"), ("5", "6"), ("", "5")), "tier_2_up_to", "Row 2: “Up to” must be more than"),
        ((("10", "7"), ("10", "6"), ("", "5")), "tier_2_up_to", "row 1's 10"),
        ((("", "7"), ("10", "6"), ("", "5")), "tier_1_up_to", "Row 1: only the last row may"),
        ((("5", "7"), ("10", "6")), "tier_2_up_to", "Row 2: leave “Up to” empty on the last"),
        ((("5", ""), ("", "6")), "tier_1_unit_price", "Row 1: “Price per unit” is needed"),
        ((("", "", "1"),), "tier_1_unit_price", "Row 1: “Price per unit” is needed"),
        ((), "tier_1_unit_price", "needs at least one row"),
        ((("5.7", "7"), ("", "6")), "tier_1_up_to", "Row 1: “Up to” must be a whole number"),
        ((("-5", "7"), ("", "6")), "tier_1_up_to", "whole number from 1"),
        ((("1e999", "7"), ("", "6")), "tier_1_up_to", "whole number"),
        ((("1" + "0" * 18, "7"), ("", "6")), "tier_1_up_to", "whole number from 1 to"),
        ((("١٢", "7"), ("", "6")), "tier_1_up_to", "whole number"),
        ((("1 0 0 0", "7"), ("", "6")), "tier_1_up_to", "whole number"),
        ((("5\x00", "7"), ("", "6")), "tier_1_up_to", "Row 1: “Up to” cannot contain a control"),
        ((("5", "7\x1b"), ("", "6")), "tier_1_unit_price", "control character (U+001B)"),
        ((("5", "7"), ("", "x" * 61)), "tier_2_unit_price", "Row 2: “Price per unit” is at most"),
        ((("5", "NaN"), ("", "6")), "tier_1_unit_price", "Row 1: “Price per unit”: enter"),
        ((("5", "Infinity"), ("", "6")), "tier_1_unit_price", "enter a price"),
        ((("5", "1e999"), ("", "6")), "tier_1_unit_price", "enter a price"),
        ((("5", "-7"), ("", "6")), "tier_1_unit_price", "must not be negative"),
        ((("5", "1000000000"), ("", "6")), "tier_1_unit_price", "must be below 1,000,000,000"),
        ((("5", "0.0000000001"), ("", "6")), "tier_1_unit_price", "more than 9 decimal places"),
        ((("5", "7", "-1"), ("", "6")), "tier_1_flat_fee", "Row 1: “Flat fee” must not be"),
        ((("5", "7", "abc"), ("", "6")), "tier_1_flat_fee", "Row 1: “Flat fee”: enter a price"),
    ],
)
def test_row_problems_name_the_row(staff_client, rows, field, message):
    data = {
        **BASE,
        "kind": "tiered",
        "metric": "requests",
        "tier_mode": "graduated",
        **_rows(*rows),
    }
    response = staff_client.post(NEW, data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert any(message in e for e in errors.get(field, [])), errors
    body = response.content.decode()
    assert message.replace("'", "&#x27;") in body or message in body
    assert f'id="id_{field}_error"' in body  # the cell's message, named by aria-describedby
    assert "\x00" not in body and "\x1b" not in body
    assert not PricingPlan.objects.exists()


def test_the_table_shows_a_few_empty_rows_without_a_script(staff_client):
    plan = PricingPlan.objects.create(
        code="three",
        name="Three tiers",
        kind="tiered",
        tiers=[
            {"up_to": 5, "unit_price": "7"},
            {"up_to": 10, "unit_price": "6"},
            {"unit_price": "5"},
        ],
    )
    page = staff_client.get(reverse("staff:billing_plan_edit", args=[plan.pk])).content.decode()
    rows = page.split("<tr data-tier-row")[1:]
    assert len(rows) == TIER_ROWS
    shown = [not row.startswith(" hidden") for row in rows]
    assert shown == [True] * 5 + [False] * (TIER_ROWS - 5)  # 3 filled + 2 empty
    assert 'for="id_tier_4_up_to"' in page  # every cell has a label
    new_page = staff_client.get(NEW).content.decode()
    rows = new_page.split("<tr data-tier-row")[1:]
    assert [not row.startswith(" hidden") for row in rows][:5] == [True] * 4 + [False]


def test_a_plan_with_more_tiers_than_rows_is_not_cut(staff_client):
    tiers = [{"up_to": n, "unit_price": "1"} for n in range(1, TIER_ROWS + 2)] + [
        {"unit_price": "1"}
    ]
    plan = PricingPlan.objects.create(code="many", name="Many", kind="tiered", tiers=tiers)
    url = reverse("staff:billing_plan_edit", args=[plan.pk])
    response = staff_client.post(url, submitted(staff_client.get(url).content.decode()))
    assert response.status_code == 200 and "the form holds" in response.content.decode()
    assert _stored(plan)["tiers"] == tiers


# --- the fields of other kinds ------------------------------------------------------------------


def test_the_terms_of_other_kinds_are_ignored(staff_client):
    junk = {
        "monthly_fee": "NaN",
        "overage_unit_price": "-1",
        "package_size": "\x00",
        "package_price": "1e999",
        "per_request_price": "Infinity",
        "metric": "bogus",
        "tier_mode": "<script>",
        **_rows(("\x00", "NaN", "-1"), ("5.7", "x")),
    }
    data = {**BASE, "kind": "per_token", "markup_percent": "12.5", **junk}
    response = staff_client.post(NEW, data)
    assert response.status_code == 302, response.context["form"].errors
    plan = PricingPlan.objects.get(code="rows")
    assert plan.markup_percent == D("12.5")
    assert (plan.monthly_fee, plan.overage_unit_price, plan.package_price) == (0, 0, 0)
    assert (plan.package_size, plan.per_request_price, plan.tiers) == (0, 0, [])
    assert (plan.metric, plan.tier_mode) == ("requests", "graduated")


def test_a_new_kind_drops_the_old_kinds_terms(staff_client):
    plan = PricingPlan.objects.create(
        code="sub",
        name="Team",
        kind="subscription",
        metric="kilotokens",
        monthly_fee=D("49.00"),
        included_units=20000,
        overage_unit_price=D("0.003"),
    )
    url = reverse("staff:billing_plan_edit", args=[plan.pk])
    data = submitted(staff_client.get(url).content.decode())
    data.update(kind="per_request", per_request_price="0.01")
    assert staff_client.post(url, data).status_code == 302
    plan.refresh_from_db()
    assert (plan.kind, plan.per_request_price) == ("per_request", D("0.01"))
    assert (plan.monthly_fee, plan.included_units, plan.overage_unit_price) == (0, 0, 0)
    assert plan.metric == "requests"


@pytest.mark.parametrize(
    ("kind", "field", "message"),
    [
        ("per_token", "markup_percent", "A per-token plan needs this."),
        ("per_request", "per_request_price", "A per-request plan needs this."),
        ("tiered", "tier_mode", "A tiered plan needs this."),
        ("subscription", "monthly_fee", "A subscription plan needs this."),
        ("package", "package_size", "A package plan needs this."),
    ],
)
def test_the_terms_of_the_kind_are_required(kind, field, message):
    form = PricingPlanForm({**BASE, "kind": kind, "metric": "requests"})
    assert not form.is_valid()
    assert message in form.errors[field]


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"name": "Plan\x00"}, "name", "Null characters"),
        ({"name": "Plan\x1b[2J"}, "name", "control character"),
        ({"description": "ok\nbut\x07"}, "description", "control character"),
        ({"code": "not a slug!"}, "code", "slug"),
        ({"kind": "bogus"}, "kind", "Select a valid choice"),
        ({"kind": ""}, "kind", "required"),
        ({"markup_percent": "NaN"}, "markup_percent", "Enter an amount"),
        ({"markup_percent": "1e999"}, "markup_percent", "digits"),
        ({"markup_percent": "-1"}, "markup_percent", "negative"),
        ({"minimum_commitment": "Infinity"}, "minimum_commitment", "Enter an amount"),
        ({"markup_percent": ["5", "x"]}, "markup_percent", "Enter an amount"),
    ],
)
def test_hostile_plan_fields(staff_client, changes, field, message):
    data = {**BASE, "kind": "per_token", "markup_percent": "5", **changes}
    response = staff_client.post(NEW, data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert any(message in e for e in errors.get(field, [])), errors
    body = response.content.decode()
    assert "\x00" not in body and "\x1b" not in body and "\x07" not in body
    assert not PricingPlan.objects.exists()


# --- the page and the admin ----------------------------------------------------------------------


def test_the_page_marks_each_term_with_its_kinds(staff_client):
    page = staff_client.get(NEW).content.decode()
    assert "portal/plan_form.js" in page and "data-plan-form" in page
    assert 'data-plan-kinds="per_token"' in page  # markup
    assert 'data-plan-kinds="tiered subscription package"' in page  # metric
    assert 'data-plan-kinds="tiered" data-tier-rows' in page
    assert "Used by subscription plans." in page  # without the script, a word says which
    assert "<script>" not in page.replace('<script src="', "")


def test_the_admin_takes_the_rows_too(client):
    admin = User.objects.create_superuser("root@example.com", "correct-horse-battery-staple")
    client.force_login(admin)
    url = reverse("admin:billing_pricingplan_add")
    assert 'name="tier_1_up_to"' in client.get(url).content.decode()
    data = {
        "name": "From the admin",
        "code": "admin-tiers",
        "kind": "tiered",
        "metric": "requests",
        "tier_mode": "volume",
        "is_active": "on",
        **_rows(("100", "0.5"), ("", "0.4")),
    }
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert PricingPlan.objects.get(code="admin-tiers").tiers == [
        {"up_to": 100, "unit_price": "0.5"},
        {"unit_price": "0.4"},
    ]
