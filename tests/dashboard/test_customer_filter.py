"""The customer filter of the dashboards and the usage export: a search box taking part of a
name (any case), the exact name, or the customer's id; never a 500."""

import pytest
from django.urls import reverse

from customers.models import Customer
from usage.forms import StaffExportForm
from usage.services import utc_today


def _clean(value):
    today = utc_today()
    form = StaffExportForm({"customer": value, "start": today.replace(day=1), "end": today})
    form.is_valid()
    return form.cleaned_data.get("customer"), form.errors.get("customer")


def test_part_of_a_name_in_any_case(customer, other_customer):
    assert _clean("globex")[0] == other_customer
    assert _clean("  ACME anal ")[0] == customer


def test_exact_id_and_exact_name(customer, other_customer):
    assert _clean(str(customer.pk))[0] == customer
    assert _clean("globex research")[0] == other_customer


def test_exact_name_wins_over_longer_names(db):
    short = Customer.objects.create(name="Acme", contact_email="a@a.example")
    Customer.objects.create(name="Acme Two", contact_email="b@a.example")
    assert _clean("acme")[0] == short


def test_several_matches_are_named(db):
    for n in range(8):
        Customer.objects.create(name=f"Initech {n}", contact_email=f"{n}@i.example")
    found, errors = _clean("initech")
    assert found is None
    assert "Several customers match “initech”: Initech 0, Initech 1" in errors[0]
    assert "…" in errors[0] and "Type more of the name" in errors[0]


def test_no_match(customer):
    assert "No customer's name contains “umbrella”." in _clean("umbrella")[1][0]


@pytest.mark.parametrize("value", ["a\x00b", "\x01\x1b[2J", "x" * 100_000, "%", "_", "\u202e"])
def test_hostile_values_never_fail(staff_client, customer, value):
    for name in ("staff:dashboard_models", "staff:dashboard_heatmap", "staff:dashboard_cost"):
        response = staff_client.get(reverse(name), {"customer": value})
        assert response.status_code == 200, name
