from datetime import date
from decimal import Decimal

from django import forms

from .models import BillingProfile, CreditGrant, PricingPlan
from .pricing import PricingError, parse_tiers

MONEY_FIELD = {"max_digits": 14, "decimal_places": 2}


class ManualLineForm(forms.Form):
    description = forms.CharField(max_length=300)
    amount = forms.DecimalField(
        **MONEY_FIELD, help_text="A negative amount is a discount.", min_value=Decimal("-1000000")
    )


class VoidForm(forms.Form):
    reason = forms.CharField(max_length=300, help_text="Shown on the void invoice.")
    reissue = forms.BooleanField(
        required=False, help_text="Create a corrected draft copying this invoice's lines."
    )


class CreditNoteForm(forms.Form):
    amount = forms.DecimalField(
        **MONEY_FIELD, min_value=Decimal("0.01"), help_text="Before tax; tax is credited too."
    )
    reason = forms.CharField(max_length=250)


class CreditGrantForm(forms.Form):
    amount = forms.DecimalField(**MONEY_FIELD, min_value=Decimal("0.01"))
    kind = forms.ChoiceField(
        choices=[c for c in CreditGrant.Kind.choices if c[0] != CreditGrant.Kind.CREDIT_NOTE]
    )
    expires_on = forms.DateField(
        required=False, widget=forms.DateInput(attrs={"type": "date"}), help_text="Optional."
    )
    note = forms.CharField(max_length=300, required=False)


class PlanAssignForm(forms.Form):
    plan = forms.ModelChoiceField(queryset=PricingPlan.objects.filter(is_active=True))
    effective_from = forms.DateField(
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="Plans apply to whole months: the run uses the plan in force on the 1st.",
    )


class BillingProfileForm(forms.ModelForm):
    class Meta:
        model = BillingProfile
        fields = ["low_balance_threshold", "suspend_at_zero"]


class InvoiceRunForm(forms.Form):
    month = forms.CharField(
        max_length=7,
        widget=forms.TextInput(attrs={"type": "month"}),
        help_text="YYYY-MM; drafts are created for active customers that have none yet.",
    )

    def clean_month(self) -> date:
        value = self.cleaned_data["month"]
        try:
            year, month = (int(part) for part in value.split("-"))
            return date(year, month, 1)
        except ValueError as exc:
            raise forms.ValidationError("Enter a month as YYYY-MM.") from exc


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
            "tiers",
            "monthly_fee",
            "included_units",
            "overage_unit_price",
            "package_size",
            "package_price",
            "minimum_commitment",
            "is_active",
            "description",
        ]
        help_texts = {
            "tiers": 'JSON, e.g. [{"up_to": 5, "unit_price": "7"}, {"up_to": 10, "unit_price":'
            ' "6.5"}, {"unit_price": "6"}]; the last tier has no up_to.',
            "metric": "What tiered, subscription and package plans count.",
        }

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind == PricingPlan.Kind.TIERED:
            tiers = data.get("tiers")
            try:
                if not isinstance(tiers, list) or not all(isinstance(t, dict) for t in tiers):
                    raise PricingError("Tiers must be a list of objects.")
                parse_tiers(tiers)
            except (PricingError, TypeError, ValueError) as exc:
                self.add_error("tiers", str(exc))
        if kind == PricingPlan.Kind.PACKAGE and (data.get("package_size") or 0) <= 0:
            self.add_error("package_size", "A package plan needs a positive size.")
        for name in ("markup_percent", "per_request_price", "monthly_fee", "overage_unit_price"):
            value = data.get(name)
            if value is not None and value < 0:
                self.add_error(name, "Must not be negative.")
        return data
