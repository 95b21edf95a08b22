from datetime import date
from decimal import Decimal
from types import SimpleNamespace

from django import forms

from .models import BillingProfile, CreditGrant, PricingPlan
from .pricing import plan_problems

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
        **MONEY_FIELD,
        min_value=Decimal("0.01"),
        help_text="Before tax; its share of the tax charged is credited too.",
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
        """The plan rule (pricing.plan_problems), the one PricingPlan.save() enforces: no NaN,
        Infinity or negative price, fee or minimum, whole and increasing tier bounds (5.7 is
        refused, not cut to 5), finite non-negative tier prices. A field that already failed
        its own validation is not reported twice."""
        data = super().clean()
        terms = {f.name: getattr(self.instance, f.name) for f in PricingPlan._meta.fields}
        terms.update({name: data.get(name) for name in self.fields})
        for name, message in plan_problems(SimpleNamespace(**terms)).items():
            if name not in self.errors:
                self.add_error(name if name in self.fields else None, message)
        return data
