"""Every number input of the portal's forms takes "1,000" as 1000 (core/number_input.py).

The first test walks every module of the portal's apps and every form class they define, so a
new form with a number field that refuses "1,000" (or takes "1,0,0") fails here. A number field
is a Django IntegerField, DecimalField or FloatField, or any field whose input asks the browser
for a number (a number input, or inputmode "numeric"/"decimal").
"""

import importlib
import pkgutil
from decimal import Decimal

import pytest
from django import forms
from django.core.exceptions import ValidationError

from billing.plan_form import RowText
from core.number_input import ungroup

APPS = ("core", "customers", "usage", "billing", "portal")


def _project_forms() -> list[type[forms.BaseForm]]:
    for app in APPS:
        package = importlib.import_module(app)
        for module in pkgutil.walk_packages(package.__path__, f"{app}."):
            if ".migrations" not in module.name and ".management" not in module.name:
                importlib.import_module(module.name)
    found, pending = [], [forms.Form, forms.ModelForm]
    while pending:
        for sub in pending.pop().__subclasses__():
            pending.append(sub)
            if sub.__module__.split(".")[0] in APPS and sub not in found:
                found.append(sub)
    return found


def _is_number_field(field: forms.Field) -> bool:
    widget = field.widget
    return (
        isinstance(field, forms.IntegerField | forms.DecimalField | forms.FloatField)
        or isinstance(widget, forms.NumberInput)
        or widget.attrs.get("inputmode") in ("numeric", "decimal")
    )


def _number_fields() -> list[tuple[type[forms.BaseForm], str]]:
    return [
        (form_class, name)
        for form_class in _project_forms()
        for name, field in form_class.base_fields.items()
        if _is_number_field(field)
    ]


def _field_result(form_class, name: str, typed: str):
    """What the form makes of `typed` in that field, as Django's own cleaning does (the field's
    clean, then the form's clean_<name>): ("value", cleaned) or ("errors", messages). Other
    fields are left out, so a form's rules between fields do not hide this one's answer."""
    form = form_class(data={name: typed})
    field = form.fields[name]
    if isinstance(field, RowText):  # a tier cell is checked by the form, naming its row
        form = form_class(data={name: typed, "kind": "tiered"})
        form.is_valid()
        if name in form.errors:
            return ("errors", form.errors[name])
        return ("value", form.cleaned_data.get(name))
    try:
        value = field.clean(field.widget.value_from_datadict(form.data, form.files, name))
        form.cleaned_data = {name: value}
        if hasattr(form, f"clean_{name}"):
            value = getattr(form, f"clean_{name}")()
    except ValidationError as exc:
        return ("errors", exc.messages)
    return ("value", value)


def test_the_forms_are_found():
    """The walk finds the forms the audit named (so the next test cannot pass on nothing)."""
    names = {f"{form_class.__name__}.{name}" for form_class, name in _number_fields()}
    for expected in (
        "LimitsForm.monthly_budget",
        "LimitsForm.daily_request_limit",
        "TokenLimitsForm.tpm_limit",
        "CreditGrantForm.amount",
        "CreditNoteForm.amount",
        "ApiKeyForm.rate_limit_per_minute",
        "UsageSettingsForm.hourly_token_threshold",
        "BillingProfileForm.low_balance_threshold",
        "RotateForm.grace_hours",
    ):
        assert expected in names


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("form_class", "name"), _number_fields(), ids=lambda x: getattr(x, "__name__", x)
)
def test_every_number_input_takes_thousands_separators(settings, form_class, name):
    """ "1,000" and " 1 000 " give what "1000" gives (the value, or the same refusal where 1000
    is out of range); "1,0,0" is refused."""
    plain = _field_result(form_class, name, "1000")
    assert _field_result(form_class, name, "1,000") == plain
    assert _field_result(form_class, name, " 1\u00a0000 ") == plain
    kind, _ = _field_result(form_class, name, "1,0,0")
    assert kind == "errors"


@pytest.mark.parametrize(
    ("typed", "decimals", "plain"),
    [("1,000", False, "1000"), (" 2 000 000 ", False, "2000000"), ("-1,000", False, "-1000"),
     ("1,000.50", True, "1000.50"), ("1000.5", True, "1000.5"), ("", True, ""),
     ("1,000.50", False, None), ("1.000,50", True, None), ("1,00", True, None),
     ("1,0,0", False, None), ("1,000 000", False, None), ("1_000", False, None),
     ("NaN", True, None), ("Infinity", True, None), ("1e6", True, None), ("١٢", False, None),
     ("1\x00000", False, None), ("1,000\n", True, "1000"), ("1" * 61, False, None)],
)  # fmt: skip
def test_the_one_parser(typed, decimals, plain):
    assert ungroup(typed, decimals=decimals) == plain


@pytest.mark.django_db
def test_money_stays_decimal_and_hostile_amounts_are_refused_with_a_message():
    from billing.forms import CreditGrantForm, CreditNoteForm
    from customers.forms import LimitsForm

    form = CreditNoteForm({"amount": "1,000.50", "reason": "goodwill"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["amount"] == Decimal("1000.50")
    assert type(form.cleaned_data["amount"]) is Decimal

    form = LimitsForm({"monthly_budget": " 12,500.25 "})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["monthly_budget"] == Decimal("12500.25")

    for typed, says in [
        ("1.000,50", "such as 1500.00 or 1,500.00"),
        ("1,00", "such as 1500.00 or 1,500.00"),
        ("NaN", "such as 1500.00 or 1,500.00"),
        ("Infinity", "such as 1500.00 or 1,500.00"),
        ("1\x00", "control characters"),
        ("-5", "greater than or equal to 0.01"),
        ("999,999,999,999,999", "no more than 14 digits"),
        ("1,000.505", "no more than 2 decimal places"),
    ]:
        form = CreditGrantForm({"amount": typed, "kind": "prepaid"})
        assert not form.is_valid()
        assert says in form.errors["amount"][0], (typed, form.errors["amount"])

    form = LimitsForm({"monthly_budget": "1.000,50"})
    assert not form.is_valid()
    assert "such as 1500.00 or 1,500.00" in form.errors["monthly_budget"][0]
    form = LimitsForm({"monthly_budget": "-1,000"})
    assert not form.is_valid()
    assert "must be more than 0" in form.errors["monthly_budget"][0]
