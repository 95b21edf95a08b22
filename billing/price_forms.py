"""Forms of the staff price book page and the plan form's tier rows: prices typed as text.

A price is digits with at most one decimal point: no sign, exponent, digit group separator,
space or non-ASCII digit. Decimal() alone would take "1e999", "NaN", "1_000" and "١٢".
"""

import re
from decimal import Decimal
from typing import Any, cast

from django import forms
from django.conf import settings

from core.number_input import ungroup
from core.text import printable, unprintable
from proxy import contract

from . import catalog
from .price_book import AWS_PRICING_URL, utc_today
from .price_sync import MICRO
from .price_units import per_1k_to_per_million, per_million_to_per_1k, price_start_problem
from .pricing import PricingError, plan_number

PRICE_TEXT = re.compile(r"[0-9]{1,40}(?:\.[0-9]{1,40})?")
# The most the proxy can hold per 1,000 tokens (or per request): 10^12 micro-units.
PROXY_LIMIT = Decimal(contract.PRICE_MICROS_LIMIT) * MICRO


class _ShowsPrintable(forms.Widget):
    """A refused value is written back into the page with its control characters replaced:
    a NUL or an escape sequence is named in the error message, never echoed."""

    def format_value(self, value: Any) -> str | None:
        value = super().format_value(value)
        return printable(str(value)) if value else value


class PrintableTextInput(_ShowsPrintable, forms.TextInput):
    pass


class PrintableTextarea(forms.Textarea):
    """The same for text of several lines: the line breaks stay."""

    def format_value(self, value):
        value = super().format_value(value)
        if not value:
            return value
        return "\n".join(printable(line) for line in str(value).replace("\r\n", "\n").split("\n"))


class PrintableDateInput(_ShowsPrintable, forms.DateInput):
    input_type = "date"


class PrintableNumberInput(_ShowsPrintable, forms.NumberInput):
    pass


def price_from_text(value, *, what: str) -> Decimal | None:
    """A price as typed: None when empty; forms.ValidationError (naming `what`) otherwise."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise forms.ValidationError(f"{what}: enter a price as text, such as 0.25.")
    text = value.strip()
    if not text:
        return None
    if problem := unprintable(text):
        raise forms.ValidationError(f"{what} cannot contain {problem}.")
    plain = ungroup(text, decimals=True) or text  # "1,500.25" as typed is 1500.25
    if plain.startswith("-") and PRICE_TEXT.fullmatch(plain[1:]):
        raise forms.ValidationError(f"{what} must not be negative.")
    if not PRICE_TEXT.fullmatch(plain):
        raise forms.ValidationError(
            f"{what}: enter a price such as 0.25 or 1,500.25 (digits, commas between groups of"
            " three digits, at most one decimal point; no sign or exponent)."
        )
    return Decimal(plain)


class PriceField(forms.CharField):
    """A price typed as text, cleaned to a Decimal (or None when empty and not required)."""

    def __init__(self, *, what: str = "", **kwargs):
        kwargs.setdefault("max_length", 90)
        kwargs.setdefault("widget", PrintableTextInput(attrs={"inputmode": "decimal"}))
        super().__init__(**kwargs)
        self.validators = []  # the text is checked in to_python; the value is a Decimal
        self.what = what

    def to_python(self, value):  # a Decimal or None, where CharField gives text
        what = self.what or str(self.label or "Price")
        text = super().to_python(value)
        if text is not None and self.max_length is not None and len(text) > self.max_length:
            raise forms.ValidationError(f"{what}: at most {self.max_length} characters.")
        return price_from_text(text, what=what)


def _per_1k(value: Decimal | None, what: str) -> Decimal | None:
    """A price per 1M tokens, checked and converted to the book's per 1,000 tokens."""
    if value is None:
        return None
    try:
        per_1k = per_million_to_per_1k(value, what)
    except PricingError as exc:
        raise forms.ValidationError(str(exc)) from None
    if per_1k > PROXY_LIMIT:
        most = per_1k_to_per_million(PROXY_LIMIT)
        raise forms.ValidationError(
            f"{what} is at most {most:,f} per 1M tokens (the proxy's limit)."
        )
    return per_1k


def _text(value: str, what: str) -> str:
    if problem := unprintable(value):
        raise forms.ValidationError(f"{what} cannot contain {problem}.")
    return value


class ModelPriceForm(forms.Form):
    """A price change of one model, from a day on; prices per 1M tokens, as AWS lists them."""

    PRICES = (
        ("input_per_1m", "input_per_1k"),
        ("output_per_1m", "output_per_1k"),
        ("cache_read_per_1m", "cache_read_per_1k"),
        ("cache_write_per_1m", "cache_write_per_1k"),
    )

    model = forms.ChoiceField(
        label="Model",
        required=False,
        help_text="A model of the catalog, or leave this empty and type a new model id below.",
        error_messages={"invalid_choice": "Pick a model of the list."},
    )
    new_model_id = forms.CharField(
        widget=PrintableTextInput,
        label="New Bedrock model id",
        required=False,
        max_length=200,
        help_text="Only for a model not in the list: its Bedrock model id, such as "
        "anthropic.claude-3-haiku-20240307-v1:0 (not an inference profile id such as us.…).",
    )
    display_name = forms.CharField(
        widget=PrintableTextInput,
        label="Display name",
        required=False,
        max_length=200,
        help_text="As customers read it on invoices, such as Claude 3 Haiku.",
    )
    effective_from = forms.DateField(
        label="Effective from (UTC)",
        widget=PrintableDateInput,
        help_text="Today or later. Usage of that whole UTC day and after is priced at this "
        "price; the proxy switches at 00:00 UTC.",
    )
    input_per_1m = PriceField(label="Input tokens, per 1M")
    output_per_1m = PriceField(label="Output tokens, per 1M")
    cache_read_per_1m = PriceField(
        label="Cache read tokens, per 1M",
        required=False,
        help_text="Empty: cache reads are charged as input tokens.",
    )
    cache_write_per_1m = PriceField(
        label="Cache write tokens, per 1M",
        required=False,
        help_text="Empty: cache writes are charged as input tokens.",
    )
    per_request = PriceField(
        label="Per request",
        required=False,
        help_text="A price per request on top of the tokens; usually empty (none).",
    )
    source_url = forms.CharField(
        widget=PrintableTextInput,
        label="Source",
        required=False,
        max_length=500,
        help_text="Where the price was read: AWS's Bedrock pricing page, not a blog.",
    )
    source_seen_on = forms.DateField(
        label="Read on",
        required=False,
        widget=PrintableDateInput,
        help_text="The day the price was read there.",
    )
    note = forms.CharField(
        label="Note",
        required=False,
        max_length=2000,
        widget=PrintableTextarea(attrs={"rows": 2}),
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.catalog = catalog.catalog()
        cast(forms.ChoiceField, self.fields["model"]).choices = [
            ("", "(a new model: type its id below)")
        ] + [(m.model_id, m.label) for m in self.catalog]
        currency = settings.BILLING_CURRENCY
        for name in [name for name, _ in self.PRICES] + ["per_request"]:
            field = cast(PriceField, self.fields[name])
            field.label = f"{field.label} ({currency})"
            field.what = field.label
        if not self.is_bound:
            self.initial.setdefault("effective_from", utc_today())
            self.initial.setdefault("source_url", AWS_PRICING_URL)
            self.initial.setdefault("source_seen_on", utc_today())

    @classmethod
    def initial_for(cls, model_id) -> dict:
        """The form filled from a model's newest price, to change one number of it."""
        from .models import ModelPrice

        if not isinstance(model_id, str) or not 0 < len(model_id) <= 200 or unprintable(model_id):
            return {}  # a link's junk query: an empty form (and no NUL in the SQL)
        row = ModelPrice.objects.filter(model_id=model_id).order_by("-effective_from").first()
        if row is None:
            return {}
        initial = {"model": row.model_id, "display_name": row.display_name}
        for name, book_name in cls.PRICES:
            value = per_1k_to_per_million(getattr(row, book_name))
            initial[name] = "" if value is None else f"{value.normalize():f}"
        initial["per_request"] = "" if not row.per_request else f"{row.per_request.normalize():f}"
        return initial

    def clean_effective_from(self):
        day = self.cleaned_data["effective_from"]
        if problem := price_start_problem(day, utc_today()):
            raise forms.ValidationError(problem)
        return day

    def clean_source_seen_on(self):
        day = self.cleaned_data["source_seen_on"]
        if day is not None and day > utc_today():
            raise forms.ValidationError("The day the price was read cannot be in the future.")
        return day

    def clean_new_model_id(self):
        return _text(self.cleaned_data["new_model_id"].strip(), "The model id")

    def clean_display_name(self):
        return _text(self.cleaned_data["display_name"].strip(), "The display name")

    def clean_source_url(self):
        return _text(self.cleaned_data["source_url"].strip(), "The source")

    def clean_note(self):
        text = self.cleaned_data["note"].replace("\r\n", "\n")
        _text(text.replace("\n", ""), "The note")
        return text.strip()

    def clean_per_request(self):
        value = self.cleaned_data["per_request"]
        if value is None:
            return Decimal(0)
        try:
            number = plan_number(value, "The per-request price")
        except PricingError as exc:
            raise forms.ValidationError(str(exc)) from None
        if number > PROXY_LIMIT:
            raise forms.ValidationError(f"The per-request price is at most {PROXY_LIMIT:,f}.")
        return number

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        for name, book_name in self.PRICES:
            if name in data and name not in self.errors:
                try:
                    data[book_name] = _per_1k(data[name], cast(PriceField, self.fields[name]).what)
                except forms.ValidationError as exc:
                    self.add_error(name, exc)
        picked, typed = data.get("model") or "", data.get("new_model_id") or ""
        if picked and typed and picked != typed:
            self.add_error("new_model_id", "Pick a model of the list or type a new id, not both.")
        elif not picked and not typed and "new_model_id" not in self.errors:
            self.add_error("model", "Pick a model, or type a new model id below.")
        data["model_id"] = picked or typed
        return data

    def service_fields(self) -> dict:
        """The cleaned form as billing.services.model_price_schedule takes it."""
        data = self.cleaned_data
        name = data["display_name"]
        if not name:
            known = catalog.find(data["model_id"], self.catalog)
            name = known.name if known and known.name != known.model_id else ""
        return {
            "model_id": data["model_id"],
            "effective_from": data["effective_from"],
            "input_per_1k": data["input_per_1k"],
            "output_per_1k": data["output_per_1k"],
            "cache_read_per_1k": data["cache_read_per_1k"],
            "cache_write_per_1k": data["cache_write_per_1k"],
            "per_request": data["per_request"],
            "display_name": name,
            "source_url": data["source_url"],
            "source_seen_on": data["source_seen_on"],
            "note": data["note"],
        }
