"""Forms of the usage pages: date ranges (validated, never a 500), re-ingest, alert settings."""

import datetime as dt
import secrets

from django import forms
from django.core.exceptions import ValidationError
from django.db import models

from customers.models import Customer

from .models import CustomerUsageSettings
from .services import utc_today, validate_ingest_range

MAX_VIEW_DAYS = 3 * 366
DATE_WIDGET = forms.DateInput(attrs={"type": "date"})


class DateRangeForm(forms.Form):
    """GET form; defaults to the current month so far."""

    start = forms.DateField(label="From", widget=DATE_WIDGET)
    end = forms.DateField(label="To (inclusive)", widget=DATE_WIDGET)
    max_days = MAX_VIEW_DAYS

    def __init__(self, data=None, **kwargs):
        today = utc_today()
        initial = {"start": today.replace(day=1), "end": today}
        if data is not None and not (data.get("start") or data.get("end")):
            data = None
        super().__init__(data, initial=initial, **kwargs)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end:
            if start > end:
                raise ValidationError("The start date is after the end date.")
            if (end - start).days >= self.max_days:
                raise ValidationError(f"Choose at most {self.max_days} days.")
        return cleaned

    def range(self) -> tuple[dt.date, dt.date]:
        """The valid range, or the default one while the form is unbound."""
        if self.is_bound:
            return self.cleaned_data["start"], self.cleaned_data["end"]
        return self.initial["start"], self.initial["end"]


class CustomerChoiceField(forms.ModelChoiceField):
    """A customer typed by id or by name: its exact id, its exact name, or a part of its name
    (case-insensitive) that only one customer's name contains. A <select> of every customer is
    megabytes of HTML at 10,000 customers: 2.5 s to render each page with this filter
    (bench/bench_pages.py)."""

    widget = forms.TextInput(
        attrs={"type": "search", "placeholder": "Part of the name, or the id (empty: all)"}
    )
    max_length = 200
    shown_matches = 5

    def to_python(self, value):
        if value in self.empty_values:
            return None
        text = str(value).strip()
        if not text:
            return None
        if "\x00" in text:  # PostgreSQL refuses NUL in text: a 500, not "not found"
            raise ValidationError("A customer id or name cannot contain a NUL character.")
        if len(text) > self.max_length:
            raise ValidationError(f"Type at most {self.max_length} characters of the name.")
        try:
            return super().to_python(text)  # the customer's id
        except ValidationError:
            pass
        exact = list(self.queryset.filter(name__iexact=text)[:2])
        if len(exact) == 1:
            return exact[0]
        found = list(
            self.queryset.filter(name__icontains=text).order_by("name", "pk")[
                : self.shown_matches + 1
            ]
        )
        if len(found) == 1:
            return found[0]
        if not found:
            raise ValidationError(f"No customer's name contains “{text}”.")
        names = ", ".join(c.name for c in found[: self.shown_matches])
        more = ", …" if len(found) > self.shown_matches else ""
        raise ValidationError(
            f"Several customers match “{text}”: {names}{more}. Type more of the name, or the id."
        )


class StaffExportForm(DateRangeForm):
    customer = CustomerChoiceField(queryset=Customer.objects.all(), required=False)


class IngestForm(forms.Form):
    start = forms.DateField(label="First day (UTC)", widget=DATE_WIDGET)
    end = forms.DateField(label="Last day (UTC, inclusive)", widget=DATE_WIDGET)
    engine = forms.ChoiceField(
        choices=[("", "Configured engine"), ("athena", "Athena"), ("duckdb", "DuckDB")],
        required=False,
    )

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("start") and cleaned.get("end"):
            validate_ingest_range(cleaned["start"], cleaned["end"])
        return cleaned


def _parse_percents(text: str) -> list[int]:
    try:
        values = sorted({int(part) for part in text.replace(" ", "").split(",") if part})
    except ValueError:
        raise ValidationError("Use whole percents separated by commas, e.g. 50, 80, 100.") from None
    if any(v <= 0 or v > 1000 for v in values):
        raise ValidationError("Each percent must be between 1 and 1000.")
    if len(values) > 10:
        raise ValidationError("At most 10 thresholds.")
    return values


# The thresholds typed as "50, 80, 100", stored as lists of whole percents.
PERCENT_FIELDS = ("monthly_token_percents", "daily_request_percents", "monthly_budget_percents")


def _https_urls(field, **kwargs):
    if isinstance(field, models.URLField):
        kwargs["assume_scheme"] = "https"
    return field.formfield(**kwargs)


class UsageSettingsForm(forms.ModelForm):
    """Staff edit a customer's alert thresholds, staff copy, webhook and summary emails."""

    monthly_token_percents = forms.CharField(
        required=False,
        help_text="Percents of the monthly token quota, e.g. 50, 80, 100 (empty: no alerts).",
    )
    daily_request_percents = forms.CharField(
        required=False,
        help_text="Percents of the daily request limit, e.g. 50, 80, 100 (empty: no alerts).",
    )
    monthly_budget_percents = forms.CharField(
        required=False,
        help_text="Percents of the monthly budget (money spent this month at list price), "
        "e.g. 50, 80, 100 (empty: no alerts).",
    )
    regenerate_secret = forms.BooleanField(
        required=False, label="Generate a new webhook signing secret"
    )

    class Meta:
        model = CustomerUsageSettings
        formfield_callback = _https_urls
        fields = [
            "monthly_token_percents",
            "daily_request_percents",
            "monthly_budget_percents",
            "hourly_token_threshold",
            "notify_staff",
            "webhook_url",
            "summary_frequency",
        ]
        labels = {"hourly_token_threshold": "Tokens per user, application and model per hour"}
        help_texts = {
            "hourly_token_threshold": "Empty: this rule is off for the customer.",
            "notify_staff": "Copy alerts to the staff alert addresses.",
            "webhook_url": "Optional https URL; each alert is POSTed, signed with HMAC-SHA256.",
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in PERCENT_FIELDS:
            if name in self.fields:
                self.initial[name] = ", ".join(str(v) for v in getattr(self.instance, name) or [])

    def clean_monthly_token_percents(self):
        return _parse_percents(self.cleaned_data["monthly_token_percents"])

    def clean_daily_request_percents(self):
        return _parse_percents(self.cleaned_data["daily_request_percents"])

    def clean_monthly_budget_percents(self):
        return _parse_percents(self.cleaned_data["monthly_budget_percents"])

    def clean_webhook_url(self):
        url = self.cleaned_data["webhook_url"]
        if url and not url.startswith("https://"):
            raise ValidationError("The webhook must be an https URL.")
        return url

    def save(self, commit=True):
        instance = super().save(commit=False)
        if instance.webhook_url and (
            self.cleaned_data.get("regenerate_secret") or not instance.webhook_secret
        ):
            instance.webhook_secret = secrets.token_urlsafe(32)
        if commit:
            instance.save()
        return instance


class SummaryForm(forms.ModelForm):
    """Customers opt in to weekly or monthly usage summaries."""

    class Meta:
        model = CustomerUsageSettings
        fields = ["summary_frequency"]
        labels = {"summary_frequency": "Usage summary email"}
