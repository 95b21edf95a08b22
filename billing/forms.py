from datetime import date
from decimal import Decimal

from django import forms

from core.number_input import GroupedDecimalField

from .models import BillingProfile, CreditGrant, DecimalDigits, PricingPlan
from .plan_form import PricingPlanForm  # noqa: F401 (the admin and the staff page)

MONEY_FIELD: DecimalDigits = {"max_digits": 14, "decimal_places": 2}


class ManualLineForm(forms.Form):
    description = forms.CharField(max_length=300)
    amount = GroupedDecimalField(
        **MONEY_FIELD, help_text="A negative amount is a discount.", min_value=Decimal("-1000000")
    )


class VoidForm(forms.Form):
    reason = forms.CharField(max_length=300, help_text="Shown on the void invoice.")
    reissue = forms.BooleanField(
        required=False, help_text="Create a corrected draft copying this invoice's lines."
    )


class CreditNoteForm(forms.Form):
    amount = GroupedDecimalField(
        **MONEY_FIELD,
        min_value=Decimal("0.01"),
        help_text="Before tax; its share of the tax charged is credited too.",
    )
    reason = forms.CharField(max_length=250)


class CreditGrantForm(forms.Form):
    amount = GroupedDecimalField(**MONEY_FIELD, min_value=Decimal("0.01"))
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
        field_classes = {"low_balance_threshold": GroupedDecimalField}


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
