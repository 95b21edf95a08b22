"""The plan form (staff catalog page and Django admin): the terms of the chosen kind only, and
a tiered plan's tiers as numbered rows ("up to", "price per unit", optional flat fee).

The fields of other kinds are ignored: not validated, and stored as the model's defaults, so
a plan never carries terms that its kind does not bill (pricing.PLAN_KIND_FIELDS). The page
hides them with portal/static/portal/plan_form.js; without it every field shows, labelled
with the kinds that use it. Tiers are rows, never JSON: row N of the form is row N in every
message. A plan edited without a change is saved exactly as it was.
"""

import re
from decimal import Decimal, InvalidOperation
from types import SimpleNamespace
from typing import Any

from django import forms
from django.db import models

from core.number_input import GroupedDecimalField, GroupedIntegerField, ungroup
from core.text import unprintable

from .models import PricingPlan
from .price_forms import (
    PrintableTextarea,
    PrintableTextInput,
    price_from_text,
)
from .pricing import (
    PLAN_KIND_FIELD_NAMES,
    PLAN_KIND_FIELDS,
    TIER_BOUND_LIMIT,
    PricingError,
    plan_number,
    plan_problems,
)

TIER_ROWS = 10  # the most tiers a plan has on the form
TIER_COLUMNS = (
    ("up_to", "Up to (units)"),
    ("unit_price", "Price per unit"),
    ("flat_fee", "Flat fee"),
)
ROW_TEXT_MOST = 60
WHOLE_TEXT = re.compile(r"[0-9]{1,19}")
KIND_LABELS = dict(PricingPlan.Kind.choices)
SHORT_KIND = {
    "per_token": "per-token",
    "per_request": "per-request",
    "tiered": "tiered",
    "subscription": "subscription",
    "package": "package",
}


class RowText(forms.CharField):
    """One cell of a tier row: text, checked by the form so every message names its row
    (Django's own validators, such as the NUL check, would not)."""

    def __init__(self, **kwargs):
        super().__init__(required=False, **kwargs)
        self.validators = []

    def to_python(self, value):
        if value in self.empty_values:
            return ""
        text = str(value).strip()
        # "1,000,000" as typed is "1000000"; anything else is left for the row's own messages
        return ungroup(text, decimals=True) or text


def tier_field_name(row: int, column: str) -> str:
    return f"tier_{row}_{column}"


def _shown(value) -> str:
    """A stored tier value as the form shows it: "7", "6.5", "6.50" as typed; 5.0 as "5"."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return f"{number:f}" if number.is_finite() else str(value)


def _term_default(name: str) -> Any:
    """The model's default of a plan term (a column of PricingPlan)."""
    field = PricingPlan._meta.get_field(name)
    if not isinstance(field, models.Field):
        raise TypeError(f"{name} is a relation, not a term of the plan")
    return field.get_default()


WHOLE_TERMS = ("included_units", "package_size")
AMOUNT_TERMS = (
    "markup_percent",
    "per_request_price",
    "monthly_fee",
    "overage_unit_price",
    "package_price",
    "minimum_commitment",
)


class PricingPlanForm(forms.ModelForm):
    """Plan terms; only the fields of the chosen kind matter (docs/billing.md, "Plans")."""

    class Meta:
        model = PricingPlan
        fields = [
            "name",
            "code",
            "kind",
            "metric",
            "markup_percent",
            "per_request_price",
            "tier_mode",
            "monthly_fee",
            "included_units",
            "overage_unit_price",
            "package_size",
            "package_price",
            "minimum_commitment",
            "is_active",
            "description",
        ]
        widgets = {
            "name": PrintableTextInput,
            "code": PrintableTextInput,
            "description": PrintableTextarea,
            **{name: PrintableTextInput(attrs={"inputmode": "numeric"}) for name in WHOLE_TERMS},
            **{name: PrintableTextInput(attrs={"inputmode": "decimal"}) for name in AMOUNT_TERMS},
        }
        # typed as people write numbers: "1,000,000" units, "1,500.00" a month (core/number_input)
        field_classes = {
            **{name: GroupedIntegerField for name in WHOLE_TERMS},
            **{name: GroupedDecimalField for name in AMOUNT_TERMS},
        }
        help_texts = {
            "metric": "What the plan counts over the month, all models together.",
            "minimum_commitment": "Optional, any kind: a top-up line when the month comes to less.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in PLAN_KIND_FIELD_NAMES:
            if name in self.fields:  # required only for its kinds (clean)
                self.fields[name].required = False
        stored = self.instance.tiers if self.instance.pk else []
        stored = stored if isinstance(stored, list) else []
        self.stored_tier_count = len(stored)
        for row, tier in enumerate(stored[:TIER_ROWS], start=1):
            if not isinstance(tier, dict):
                continue
            for column, _ in TIER_COLUMNS:
                if column in tier:
                    self.initial.setdefault(tier_field_name(row, column), _shown(tier[column]))

    # --- rendering ------------------------------------------------------------------------

    def kind_sections(self) -> list[dict]:
        """The fields in order, each with the kinds that use it ("" for every kind), and the
        place of the tier rows (after the tier mode)."""
        kinds_of: dict[str, list[str]] = {}
        for kind, names in PLAN_KIND_FIELDS.items():
            for name in names:
                kinds_of.setdefault(name, []).append(kind)
        sections = []
        for name in self._meta.fields or ():
            kinds = kinds_of.get(name, [])
            sections.append(
                {
                    "field": self[name],
                    "kinds": " ".join(kinds),
                    "used_by": ", ".join(SHORT_KIND[k] for k in kinds),
                    "tiers_after": name == "tier_mode",
                }
            )
        return sections

    def tier_rows(self) -> list[dict]:
        """Every row of the tier table; the rows after the last filled one but two (at least
        four rows) carry `hidden`, so the page shows a few empty rows without a script."""
        rows: list[dict[str, Any]] = []
        last_filled = 0
        for row in range(1, TIER_ROWS + 1):
            cells = [self[tier_field_name(row, column)] for column, _ in TIER_COLUMNS]
            if any(str(cell.value() or "").strip() for cell in cells):
                last_filled = row
            rows.append({"number": row, "cells": cells})
        shown = max(last_filled + 2, 4)
        for entry in rows:
            entry["hidden"] = entry["number"] > shown
        return rows

    # --- cleaning -------------------------------------------------------------------------

    def _clean_text(self, name: str, *, lines: bool = False) -> str:
        text = self.cleaned_data[name]
        checked = text.replace("\r\n", "").replace("\n", "") if lines else text
        if problem := unprintable(checked):
            raise forms.ValidationError(f"This cannot contain {problem}.")
        return text

    def clean_name(self):
        return self._clean_text("name").strip()

    def clean_description(self):
        return self._clean_text("description", lines=True)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        kind: str = data.get("kind") or ""  # absent when the kind itself was invalid
        used = set(PLAN_KIND_FIELDS.get(kind, ()))
        for name in PLAN_KIND_FIELD_NAMES:
            if name == "tiers":
                continue
            if name not in used:  # another kind's term: ignored, stored as the default
                self.errors.pop(name, None)
                data[name] = _term_default(name)
            elif data.get(name) in (None, "") and name not in self.errors:
                self.add_error(name, f"A {SHORT_KIND[kind]} plan needs this.")
        if kind == "tiered":
            data["tiers"] = self._clean_tier_rows()
        else:
            for row in range(1, TIER_ROWS + 1):
                for column, _ in TIER_COLUMNS:
                    self.errors.pop(tier_field_name(row, column), None)
            data["tiers"] = []
        self._plan_rule(data)
        return data

    def _plan_rule(self, data) -> None:
        """The plan rule (pricing.plan_problems), the one PricingPlan.save() enforces; a field
        that already failed its own validation is not reported twice."""
        if data.get("tiers") is None:
            return  # the rows already say what is wrong
        terms = {f.name: getattr(self.instance, f.name) for f in PricingPlan._meta.fields}
        terms.update({name: data.get(name) for name in self._meta.fields or () if name in data})
        terms["tiers"] = data["tiers"]
        for name, message in plan_problems(SimpleNamespace(**terms)).items():
            if name not in self.errors:
                self.add_error(name if name in self.fields else None, message)

    def _clean_tier_rows(self) -> list[dict] | None:
        """The filled rows as the plan's tiers, or None after adding each problem to its
        row's field, named by row ("Row 2: ...")."""
        if self.stored_tier_count > TIER_ROWS:
            self.add_error(
                None,
                f"This plan has {self.stored_tier_count} tiers; the form holds {TIER_ROWS}. "
                "Create a new plan with at most that many.",
            )
            return None
        filled, ok = [], True
        for row in range(1, TIER_ROWS + 1):
            cells = {c: self.cleaned_data.get(tier_field_name(row, c), "") for c, _ in TIER_COLUMNS}
            if not any(cells.values()):
                continue  # an empty row is ignored
            parsed = self._clean_row(row, cells)
            if parsed is None:
                ok = False
            else:
                filled.append((row, *parsed))
        if not ok:
            return None
        if not filled:
            self.add_error(
                tier_field_name(1, "unit_price"),
                "Row 1: a tiered plan needs at least one row (a price per unit).",
            )
            return None
        tiers, previous = [], None
        for index, (row, up_to, unit_price, flat_fee) in enumerate(filled):
            last = index == len(filled) - 1
            field = tier_field_name(row, "up_to")
            if up_to is None and not last:
                self.add_error(
                    field, f"Row {row}: only the last row may leave “Up to” empty (no limit)."
                )
                ok = False
            elif up_to is not None and last:
                self.add_error(
                    field,
                    f"Row {row}: leave “Up to” empty on the last row, which prices every unit "
                    f"above the rows before it; add a row after it for the units above {up_to:,}.",
                )
                ok = False
            elif up_to is not None and previous is not None and up_to <= previous[1]:
                self.add_error(
                    field,
                    f"Row {row}: “Up to” must be more than row {previous[0]}'s {previous[1]:,}.",
                )
                ok = False
            if up_to is not None:
                previous = (row, up_to)
            tier = {} if up_to is None else {"up_to": up_to}
            tier["unit_price"] = unit_price
            if flat_fee is not None:
                tier["flat_fee"] = flat_fee
            tiers.append(tier)
        return tiers if ok else None

    def _clean_row(self, row: int, cells: dict) -> tuple | None:
        """(up_to or None, unit price text, flat fee text or None) of one filled row."""
        ok = True
        up_to = None
        for column, label in TIER_COLUMNS:
            text = cells[column]
            if len(text) > ROW_TEXT_MOST or (problem := unprintable(text)):
                what = f"is at most {ROW_TEXT_MOST} characters" if len(text) > ROW_TEXT_MOST else ""
                name = label.split(" (")[0]  # "Up to", without "(units)"
                self.add_error(
                    tier_field_name(row, column),
                    f"Row {row}: “{name}” {what or f'cannot contain {problem}'}.",
                )
                ok = False
        if not ok:
            return None
        text = cells["up_to"]
        if text:
            bound = int(text) if WHOLE_TEXT.fullmatch(text) else 0
            if not 1 <= bound < TIER_BOUND_LIMIT:
                self.add_error(
                    tier_field_name(row, "up_to"),
                    f"Row {row}: “Up to” must be a whole number from 1 to "
                    f"{TIER_BOUND_LIMIT - 1:,}, such as 1000 or 1,000, or empty on the last "
                    "row.",
                )
                ok = False
            up_to = bound
        prices = {}
        for column, label in TIER_COLUMNS[1:]:
            what = f"Row {row}: “{label.split(' (')[0]}”"
            try:
                value = price_from_text(cells[column], what=what)
                if value is None and column == "unit_price":
                    raise forms.ValidationError(f"{what} is needed (0 for free units).")
                prices[column] = None if value is None else f"{plan_number(value, what):f}"
            except (forms.ValidationError, PricingError) as exc:
                message = exc.messages[0] if isinstance(exc, forms.ValidationError) else str(exc)
                self.add_error(tier_field_name(row, column), message)
                ok = False
        if not ok:
            return None
        return up_to, prices["unit_price"], prices["flat_fee"]

    def _post_clean(self):
        """Before the model is built from the form: the terms of other kinds take their
        defaults (also those the page did not post), and the rows become the tiers."""
        kind = self.cleaned_data.get("kind")
        if kind in PLAN_KIND_FIELDS:
            used = set(PLAN_KIND_FIELDS[kind])
            for name in PLAN_KIND_FIELD_NAMES:
                if name not in used:
                    setattr(self.instance, name, _term_default(name))
            if self.cleaned_data.get("tiers") is not None:
                self.instance.tiers = self.cleaned_data["tiers"]
        super()._post_clean()  # type: ignore[misc]  # private; django-stubs does not declare it


def _add_tier_fields(form_class) -> None:
    """The rows are declared fields of the class, so the Django admin (which builds its form
    from the declared fields) shows and posts them too."""
    for row in range(1, TIER_ROWS + 1):
        for column, label in TIER_COLUMNS:
            field = RowText(
                label=f"Row {row}: {label.lower()}",
                max_length=None,
                widget=PrintableTextInput(
                    attrs={"inputmode": "numeric" if column == "up_to" else "decimal"}
                ),
            )
            form_class.base_fields[tier_field_name(row, column)] = field
            form_class.declared_fields[tier_field_name(row, column)] = field


_add_tier_fields(PricingPlanForm)
