"""Forms of the usage pages: date ranges (validated, never a 500), re-ingest, alert settings."""

import datetime as dt

from django import forms
from django.core.exceptions import ValidationError
from django.db import models

from core.number_input import GroupedIntegerField
from customers.models import Customer

from .alert_channels import mask_webhook_url, url_problem
from .models import CustomerUsageSettings
from .services import utc_today, validate_ingest_range

MAX_VIEW_DAYS = 3 * 366
DATE_WIDGET = forms.DateInput(attrs={"type": "date"})


DEFAULT_VIEW_DAYS = 30


def default_range(today: dt.date) -> tuple[dt.date, dt.date]:
    """This month so far, and at least the last DEFAULT_VIEW_DAYS days: on the 1st the month
    so far is today alone (nothing billed yet), which would show an empty page."""
    start = min(today.replace(day=1), today - dt.timedelta(days=DEFAULT_VIEW_DAYS - 1))
    return start, today


class DateRangeForm(forms.Form):
    """GET form; defaults to default_range(): this month so far, at least the last 30 days."""

    start = forms.DateField(label="From", widget=DATE_WIDGET)
    end = forms.DateField(label="To (inclusive)", widget=DATE_WIDGET)
    max_days = MAX_VIEW_DAYS

    def __init__(self, data=None, **kwargs):
        start, end = default_range(utc_today())
        initial = {"start": start, "end": end}
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
    """URLs assume https; whole numbers take group separators ("1,000"), like every number
    input of the pages (core/number_input.py)."""
    if isinstance(field, models.URLField):
        kwargs["assume_scheme"] = "https"
    if isinstance(field, models.IntegerField):
        kwargs["form_class"] = GroupedIntegerField
    return field.formfield(**kwargs)


class UsageSettingsForm(forms.ModelForm):
    """Staff edit a customer's alert thresholds, staff copy, webhooks (signed, Slack) and
    summary emails."""

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
        fields = list(CustomerUsageSettings.EDITABLE)
        labels = {
            "hourly_token_threshold": "Tokens per user, application and model per hour",
            "anomaly_alerts": "Alert on unusual usage (a spike or a silence)",
        }
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
        if "webhook_url" in self.fields:  # the staff form: the Slack webhook goes with it
            self._add_slack_fields()

    def _add_slack_fields(self):
        """The Slack webhook URL is a credential: typed, never shown again (masked), never
        filled into the form; empty keeps the current one."""
        current = self.instance.slack_webhook_url
        shown = mask_webhook_url(current)
        self.fields["slack_webhook_url"] = forms.CharField(
            required=False,
            strip=True,
            label="Slack webhook URL",
            widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
            help_text=(
                f"Set: {shown}. Type a new URL to replace it (empty keeps it)."
                if current
                else "Optional: a Slack (or compatible) incoming webhook, https. Alerts are "
                "posted there, several at once in one message. It is not shown again."
            ),
        )
        if current:
            self.fields["remove_slack_webhook"] = forms.BooleanField(
                required=False, label="Remove the Slack webhook"
            )

    def clean_slack_webhook_url(self):
        url = self.cleaned_data.get("slack_webhook_url") or ""
        if url and (problem := url_problem(url)):
            raise ValidationError(problem)
        return url

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

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("slack_webhook_url") and cleaned.get("remove_slack_webhook"):
            raise ValidationError("Type a new Slack webhook URL or remove it, not both.")
        return cleaned

    def save(self, commit=True):
        raise NotImplementedError(
            "Write usage settings with usage.services.usage_settings_update(**form.changes())."
        )

    def changes(self) -> dict:
        """What the valid form asks to change, for usage_settings_update (the one write path
        of these settings: staff page, customer pages and API alike)."""
        fields = [name for name in self._meta.fields or () if name in self.fields]
        changes = {name: self.cleaned_data[name] for name in fields}
        for name in ("regenerate_secret", "remove_slack_webhook"):
            if name in self.fields:
                changes[name] = bool(self.cleaned_data.get(name))
        if self.cleaned_data.get("slack_webhook_url"):
            changes["slack_webhook_url"] = self.cleaned_data["slack_webhook_url"]
        return changes


class SummaryForm(forms.ModelForm):
    """Customers opt in to weekly or monthly usage summaries (written, like every usage
    setting, by usage.services.usage_settings_update)."""

    class Meta:
        model = CustomerUsageSettings
        fields = ["summary_frequency"]
        labels = {"summary_frequency": "Usage summary email"}


class AlertSettingsForm(UsageSettingsForm):
    """What a customer may set: its alert thresholds and summary emails (staff set the rest)."""

    class Meta(UsageSettingsForm.Meta):
        fields = [
            "monthly_token_percents",
            "daily_request_percents",
            "monthly_budget_percents",
            "summary_frequency",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["regenerate_secret"]
        self.fields["monthly_token_percents"].label = "Alert at % of the monthly token quota"
        self.fields["daily_request_percents"].label = "Alert at % of the daily request limit"
        self.fields["monthly_budget_percents"].label = "Alert at % of the monthly budget"
        self.fields["summary_frequency"].label = "Usage summary email"


MAX_TEXT = 200


def _plain_text(value: str, *, what: str) -> str:
    """Text a query may carry: no NUL (PostgreSQL refuses it: a 500, not "not found")."""
    if "\x00" in value:
        raise ValidationError(f"The {what} cannot contain a NUL character.")
    return value.strip()


class AnomalyFilterForm(forms.Form):
    """GET filters of the unusual-usage page; defaults: the last 7 days, both kinds."""

    days = GroupedIntegerField(
        label="Last days", min_value=1, max_value=366, required=False, initial=7
    )
    kind = forms.ChoiceField(
        choices=[("", "Spikes and silences"), ("spike", "Spikes"), ("silence", "Silences")],
        required=False,
    )
    customer = CustomerChoiceField(queryset=Customer.objects.all(), required=False)

    def filters(self) -> dict:
        data = self.cleaned_data if self.is_bound else {}
        return {
            "days": data.get("days") or 7,
            "kind": data.get("kind") or "",
            "customer": data.get("customer"),
        }


class LatencyFilterForm(DateRangeForm):
    """GET filters of the latency page: a range (default: the last 14 finished days), a model
    id (exact) and a customer (else every customer)."""

    max_days = 366
    model = forms.CharField(required=False, max_length=MAX_TEXT, label="Model id")
    customer = CustomerChoiceField(queryset=Customer.objects.all(), required=False)

    def __init__(self, data=None, **kwargs):
        yesterday = utc_today() - dt.timedelta(days=1)
        default = {"start": yesterday - dt.timedelta(days=13), "end": yesterday}
        if data is not None and not any(data.get(k) for k in ("start", "end", "model", "customer")):
            data = None
        elif data is not None and not (data.get("start") or data.get("end")):
            data = data.copy()  # a model or customer alone: over the default range
            for key, value in default.items():
                data[key] = value.isoformat()
        super().__init__(data, **kwargs)
        self.initial.update(default)

    def clean_model(self):
        return _plain_text(self.cleaned_data["model"], what="model id")

    def filters(self) -> dict:
        start, end = self.range()
        data = self.cleaned_data if self.is_bound else {}
        return {"start": start, "end": end, "model_id": data.get("model") or "",
                "customer": data.get("customer")}  # fmt: skip
