"""Staff forms. Field values are validated by the same functions the services use."""

import re

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from core import model_catalog
from core.models import User
from core.number_input import MAX_TYPED_CHARS, GroupedFloatField, ungroup
from proxy.models import ALIASES, is_allowed

from . import validators
from .models import Customer

_TEXTAREA = {"rows": 3}


class WholeNumberField(forms.CharField):
    """A whole-number limit typed as "2000000", "2,000,000" or "2 000 000": the group separators
    are taken out (core.number_input.ungroup, the parser of every number input) before the
    limit's own validator (customers.validators) reads the digits. Anything else that is not
    "none" or empty (decimal points, other separators, letters, other scripts' digits) is
    refused with a message saying how to type it."""

    def __init__(self, *, name="", examples=("2000000", "2,000,000"), empty_means="no limit",
                 **kwargs):  # fmt: skip
        kwargs.setdefault("max_length", MAX_TYPED_CHARS)
        kwargs.setdefault(
            "widget", forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"})
        )
        super().__init__(**kwargs)
        self.name, self.examples, self.empty_means = name, examples, empty_means

    def to_python(self, value):
        text = super().to_python(value)  # stripped text
        if text.lower() == "none":
            return text
        plain = ungroup(text, decimals=False)
        if "\x00" in text:
            return text  # refused by CharField's own check: "Null characters are not allowed."
        if plain is None:
            raise ValidationError(
                f"{self.name or self.label} must be a whole number, such as {self.examples[0]} "
                f"or {self.examples[1]} (commas or spaces between groups of three digits), or "
                f"empty for {self.empty_means}."
            )
        return plain


def _limit_field(label, help_text):
    return WholeNumberField(label=label, required=False, help_text=help_text)


class BudgetField(forms.CharField):
    """A monthly budget typed as text ("1500.00" or "1,500.00"): the group separators are taken
    out (core.number_input.ungroup), then validators.monthly_budget reads it (a Decimal); its
    label and help name the portal's currency."""

    def __init__(self, *, label, help_text, **kwargs):
        super().__init__(
            required=False,
            max_length=60,
            widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
            **kwargs,
        )
        self.label_text, self.help = label, help_text

    def to_python(self, value):
        text = super().to_python(value)  # stripped text
        if text.lower() == "none":
            return text
        plain = ungroup(text, decimals=True)
        if "\x00" in text:
            return text  # refused by CharField's own check: "Null characters are not allowed."
        if plain is None:
            raise ValidationError(
                f"{self.label} must be an amount with at most 2 decimals, such as 1500.00 or "
                "1,500.00 (commas or spaces between groups of three digits, a point before the "
                "cents), or empty for no budget."
            )
        return plain

    def currency_labels(self) -> None:
        from .money import currency

        self.label = f"{self.label_text} ({currency()})"
        self.help_text = self.help


def _budget_initial(value) -> str:
    return "" if value is None else str(value)


class ModelsSelect(forms.SelectMultiple):
    """A multiple select of the model catalog. Text posted as one value (ids or aliases
    separated by commas or new lines, as scripts and older clients send it) is read too."""

    def value_from_datadict(self, data, files, name):
        values = data.getlist(name) if hasattr(data, "getlist") else data.get(name)
        if values is None:
            return []
        if isinstance(values, str):
            values = [values]
        return [item for value in values for item in re.split(r"[\s,]+", str(value)) if item]


class AllowedModelsField(forms.Field):
    """The customer's allowed models, picked from the model catalog (core/model_catalog.py);
    entries already set that the list does not show (aliases, inference profile ids) stay
    selectable."""

    widget = ModelsSelect(attrs={"size": 12})

    def __init__(self, **kwargs):
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def offer(self, models, keep=()) -> None:
        groups: dict[str, list] = {"Models": [], "Embeddings models": [], "Free models": []}
        for model in models:
            group = (
                "Free models"
                if model.free
                else "Embeddings models"
                if model.embeddings
                else "Models"
            )
            groups[group].append((model.model_id, model.label))
        choices = [(name, options) for name, options in groups.items() if options]
        offered = {model.model_id for model in models}
        extra = [(entry, entry) for entry in dict.fromkeys(keep) if entry not in offered]
        if extra:
            choices.append(("Set now", extra))
        self.widget.choices = choices

    def to_python(self, value):
        if value in self.empty_values:
            return []
        return [value] if isinstance(value, str) else list(value)


class LimitsForm(forms.Form):
    daily_request_limit = _limit_field("Daily request limit", "Requests per UTC day; empty: none.")
    monthly_token_quota = _limit_field(
        "Monthly token quota", "Input + output tokens per month; empty: none."
    )
    rpm_limit = _limit_field("Requests per minute", "Empty: no per-minute limit.")
    tpm_limit = _limit_field(
        "Tokens per minute",
        "Input + output tokens of priced models per minute (calls in flight count their "
        "estimate); empty: none.",
    )
    allowed_models = AllowedModelsField(
        help_text="Pick from the model catalog (the price book); none selected: every model. "
        "Ctrl or ⌘ + click picks several. An inference profile id (us.…) of a catalog model "
        "can be set through the API or the customers command.",
    )
    ip_allowlist = forms.CharField(
        label="IP allowlist",
        required=False,
        widget=forms.Textarea(attrs=_TEXTAREA),
        help_text="CIDR blocks such as 203.0.113.0/24; empty: any address.",
    )
    default_model_params = forms.CharField(
        label="Default model parameters",
        required=False,
        widget=forms.Textarea(attrs=_TEXTAREA),
        help_text='A JSON object applied when a request omits them, e.g. {"max_tokens": 512}.',
    )
    monthly_budget = BudgetField(
        label="Monthly budget",
        help_text="The most a calendar month's calls may cost at list price (UTC month, calls "
        "in flight count their most); then calls are refused until the 1st. Empty: no budget.",
    )
    prepaid = forms.BooleanField(
        label="Prepaid",
        required=False,
        help_text=Customer._meta.get_field("prepaid").help_text,
    )
    rotate_every_days = WholeNumberField(
        label="Rotate tokens every (days)",
        required=False,
        name="Rotation period",
        examples=("90", "1,000"),
        empty_means="no rotation policy",
        help_text="Each token is replaced once it is this many days old: the customer is told "
        "ahead by email and reveals the new token, once, on their tokens page; the old one "
        "keeps working for a grace period. Empty: tokens are rotated only by hand.",
    )

    counter_shards = WholeNumberField(
        label="Admission shards",
        required=False,
        examples=("4", "16"),
        empty_means="1",
        help_text=Customer._meta.get_field("counter_shards").help_text,
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["monthly_budget"].currency_labels()
        field = self.fields["allowed_models"]
        keep = list(self.initial.get("allowed_models") or [])
        if self.is_bound:
            keep += field.widget.value_from_datadict(self.data, self.files, "allowed_models")
        field.offer(model_catalog.catalog(), keep)

    def clean_daily_request_limit(self):
        value = self.cleaned_data["daily_request_limit"]
        return validators.positive_int_or_none(value, label="Daily request limit")

    def clean_monthly_token_quota(self):
        value = self.cleaned_data["monthly_token_quota"]
        return validators.positive_int_or_none(
            value, label="Monthly token quota", maximum=validators.INT64_MAX
        )

    def clean_rpm_limit(self):
        value = self.cleaned_data["rpm_limit"]
        return validators.positive_int_or_none(value, label="Requests per minute")

    def clean_tpm_limit(self):
        value = self.cleaned_data["tpm_limit"]
        return validators.positive_int_or_none(
            value, label="Tokens per minute", maximum=validators.TPM_MAX
        )

    def clean_allowed_models(self):
        return validators.allowed_models(self.cleaned_data["allowed_models"])

    def clean_ip_allowlist(self):
        return validators.ip_allowlist(self.cleaned_data["ip_allowlist"])

    def clean_default_model_params(self):
        return validators.default_model_params(self.cleaned_data["default_model_params"])

    def clean_monthly_budget(self):
        return validators.monthly_budget(self.cleaned_data["monthly_budget"])

    def clean_rotate_every_days(self):
        return validators.rotation_days(self.cleaned_data["rotate_every_days"])

    def clean_counter_shards(self):
        return validators.counter_shards(self.cleaned_data["counter_shards"])

    @classmethod
    def initial_for(cls, customer: Customer) -> dict:
        import json

        return {
            "daily_request_limit": customer.daily_request_limit or "",
            "monthly_token_quota": customer.monthly_token_quota or "",
            "rpm_limit": customer.rpm_limit or "",
            "tpm_limit": customer.tpm_limit or "",
            "allowed_models": list(customer.allowed_models),
            "ip_allowlist": "\n".join(customer.ip_allowlist),
            "default_model_params": json.dumps(customer.default_model_params)
            if customer.default_model_params
            else "",
            "monthly_budget": _budget_initial(customer.monthly_budget),
            "prepaid": customer.prepaid,
            "rotate_every_days": customer.rotate_every_days or "",
            "counter_shards": customer.counter_shards,
        }


class CustomerDetailsForm(forms.ModelForm):
    extra_contact_emails = forms.CharField(
        label="Other contact emails",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Copied on notices; comma or newline separated.",
    )

    class Meta:
        model = Customer
        fields = [
            "name",
            "contact_email",
            "extra_contact_emails",
            "billing_name",
            "billing_address",
            "tax_id",
            "notes",
        ]
        widgets = {
            "billing_address": forms.Textarea(attrs=_TEXTAREA),
            "notes": forms.Textarea(attrs=_TEXTAREA),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["extra_contact_emails"] = "\n".join(self.instance.extra_contact_emails)

    def clean_extra_contact_emails(self):
        try:
            return validators.emails(self.cleaned_data["extra_contact_emails"])
        except ValidationError:
            raise ValidationError("Enter valid email addresses.") from None


class TokenExpiryMixin(forms.Form):
    expires_on = forms.DateField(
        label="Expires on",
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="UTC. Empty: the default lifetime.",
    )
    never_expires = forms.BooleanField(label="Never expires", required=False)

    def clean_expires_on(self):
        from django.utils import timezone

        day = self.cleaned_data["expires_on"]
        if day is not None and day <= timezone.now().date():
            raise ValidationError("Choose a date in the future.")
        return day

    def expires_at(self):
        from datetime import UTC, datetime, time

        from .services import DEFAULT

        if self.cleaned_data.get("never_expires"):
            return None
        day = self.cleaned_data.get("expires_on")
        return datetime.combine(day, time.min, tzinfo=UTC) if day else DEFAULT


class TokenLimitsForm(forms.Form):
    """A token's own limits, inside its customer's: each empty field means the customer's limit
    alone applies, no model picked means the customer's models. The models offered are the
    customer's when it has a list, else the catalog."""

    LIMITS = ["daily_request_limit", "rpm_limit", "monthly_token_quota", "tpm_limit"]

    daily_request_limit = _limit_field(
        "Token's daily request limit", "Requests per UTC day with this token; empty: none."
    )
    rpm_limit = _limit_field("Token's requests per minute", "Empty: none.")
    monthly_token_quota = _limit_field(
        "Token's monthly token quota", "Input + output tokens per month; empty: none."
    )
    tpm_limit = _limit_field(
        "Token's tokens per minute", "Input + output tokens per minute; empty: none."
    )
    allowed_models = AllowedModelsField(
        widget=ModelsSelect(attrs={"size": 6}),
        label="Token's models",
        help_text="Only these of the account's models; none selected: all of the account's. "
        "Ctrl or ⌘ + click picks several.",
    )
    monthly_budget = BudgetField(
        label="Token's monthly budget",
        help_text="The most this token's calls may cost in a calendar month (UTC), inside the "
        "account's budget; empty: only the account's.",
    )

    def __init__(self, *args, customer=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.customer = customer
        self.fields["monthly_budget"].currency_labels()
        field = self.fields["allowed_models"]
        keep = list(self.initial.get("allowed_models") or [])
        if self.is_bound:
            keep += field.widget.value_from_datadict(self.data, self.files, "allowed_models")
        offered = model_catalog.catalog()
        account = list(getattr(customer, "allowed_models", None) or [])
        if account:  # the account's models only, and its entries the catalog does not list
            offered = [model for model in offered if is_allowed(model.model_id, "", account)]
            ids = {model.model_id for model in offered}
            keep += [entry for entry in account if ALIASES.get(entry, entry) not in ids]
        field.offer(offered, keep)

    def clean_daily_request_limit(self):
        return validators.positive_int_or_none(
            self.cleaned_data["daily_request_limit"], label="Daily request limit"
        )

    def clean_rpm_limit(self):
        return validators.positive_int_or_none(
            self.cleaned_data["rpm_limit"], label="Requests per minute"
        )

    def clean_monthly_token_quota(self):
        return validators.positive_int_or_none(
            self.cleaned_data["monthly_token_quota"],
            label="Monthly token quota",
            maximum=validators.TOKEN_QUOTA_MAX,
        )

    def clean_tpm_limit(self):
        return validators.positive_int_or_none(
            self.cleaned_data["tpm_limit"], label="Tokens per minute", maximum=validators.TPM_MAX
        )

    def clean_allowed_models(self):
        models = validators.allowed_models(self.cleaned_data["allowed_models"])
        if self.customer is not None:
            models = validators.models_within(models, list(self.customer.allowed_models or []))
        return models

    def clean_monthly_budget(self):
        return validators.monthly_budget(
            self.cleaned_data["monthly_budget"], label="Token's monthly budget"
        )

    def limits(self) -> dict:
        """The cleaned limits, for services.token_create / token_update_limits."""
        names = [*self.LIMITS, "allowed_models", "monthly_budget"]
        return {name: self.cleaned_data.get(name) for name in names}

    @classmethod
    def initial_for(cls, token) -> dict:
        initial = {name: getattr(token, name) or "" for name in cls.LIMITS}
        initial["allowed_models"] = list(token.allowed_models or [])
        initial["monthly_budget"] = _budget_initial(token.monthly_budget)
        return initial


class TokenCreateForm(TokenExpiryMixin, TokenLimitsForm):
    label = forms.CharField(max_length=100, initial="default", help_text="E.g. the application.")
    field_order = [
        "label",
        "expires_on",
        "never_expires",
        "daily_request_limit",
        "rpm_limit",
        "monthly_token_quota",
        "tpm_limit",
        "monthly_budget",
        "allowed_models",
    ]


class OnboardForm(TokenExpiryMixin, LimitsForm):
    name = forms.CharField(max_length=200, label="Customer name")
    contact_email = forms.EmailField(label="Contact email")
    user_email = forms.EmailField(
        label="First user's email", help_text="Receives an invitation to choose a password."
    )
    user_full_name = forms.CharField(label="First user's name", max_length=200, required=False)
    token_label = forms.CharField(label="First token's label", max_length=100, initial="default")
    field_order = [
        "name",
        "contact_email",
        "user_email",
        "user_full_name",
        "token_label",
        "expires_on",
        "never_expires",
        "daily_request_limit",
        "monthly_token_quota",
        "rpm_limit",
        "tpm_limit",
        "monthly_budget",
        "prepaid",
        "allowed_models",
    ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("ip_allowlist", "default_model_params"):
            del self.fields[name]  # set later, on the customer page

    def clean_user_email(self):
        email = self.cleaned_data["user_email"].lower()
        if User.objects.filter(email__iexact=email).exists():
            raise ValidationError("A user with this email address already exists.")
        return email


class RotateForm(forms.Form):
    grace_hours = GroupedFloatField(
        label="Grace period (hours)",
        min_value=0,
        max_value=24 * 90,
        help_text="The old token keeps working this long; 0 stops it at once.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["grace_hours"].initial = settings.TOKEN_ROTATION_GRACE_HOURS


class InviteForm(forms.Form):
    email = forms.EmailField()
    full_name = forms.CharField(max_length=200, required=False)


class CustomerFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=200, label="Search")
    status = forms.ChoiceField(
        required=False, choices=[("", "Any status"), *Customer.Status.choices]
    )
    sync = forms.ChoiceField(
        required=False,
        label="Sync",
        choices=[
            ("", "Any sync state"),
            ("failing", "Failing"),
            ("pending", "Pending"),
            ("in sync", "In sync"),
        ],
    )
    sort = forms.ChoiceField(
        required=False,
        choices=[
            ("name", "Name A to Z"),
            ("-name", "Name Z to A"),
            ("-created", "Newest"),
            ("created", "Oldest"),
            ("status", "Status"),
            ("email", "Email"),
        ],
    )


class BulkForm(forms.Form):
    ACTIONS = [("suspend", "Suspend"), ("reactivate", "Reactivate"), ("set_limits", "Set limits")]
    action = forms.ChoiceField(choices=ACTIONS)
    ids = forms.CharField(required=False)  # read with getlist(); validated in clean()

    def clean(self):
        import uuid

        cleaned = super().clean()
        ids = []
        for value in self.data.getlist("ids") if hasattr(self.data, "getlist") else []:
            try:
                ids.append(uuid.UUID(value))
            except ValueError:
                continue
        if not ids:
            raise ValidationError("Select at least one customer.")
        if len(ids) > 500:
            raise ValidationError("Select at most 500 customers at a time.")
        cleaned["ids"] = ids
        return cleaned
