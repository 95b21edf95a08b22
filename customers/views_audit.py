"""Staff page: the audit log of every customer (and of API keys and prices), filtered."""

from django import forms
from django.core.exceptions import ValidationError
from django.shortcuts import render

from core.access import staff_required
from core.text import printable, unprintable
from core.web import paginate

from . import selectors
from .audit_display import ACTION_LABELS

PAGE_SIZE = 50


class _ShowsPrintable:
    """Writes a refused value back into the page with its control characters replaced: a NUL or
    an escape sequence is named in the error message, never echoed."""

    def format_value(self, value):
        value = super().format_value(value)
        return printable(str(value)) if value else value


class SearchInput(_ShowsPrintable, forms.TextInput):
    input_type = "search"


class DayInput(_ShowsPrintable, forms.DateInput):
    input_type = "date"


class AuditLogFilterForm(forms.Form):
    """GET filters; each one that is wrong is reported and left out, the others still apply."""

    who = forms.CharField(
        label="Who",
        max_length=200,
        required=False,
        widget=SearchInput({"placeholder": "Email or job"}),
    )
    customer = forms.CharField(
        label="Customer",
        max_length=200,
        required=False,
        widget=SearchInput({"placeholder": "Name or id"}),
    )
    action = forms.ChoiceField(
        label="What",
        required=False,
        choices=[("", "Any change"), *sorted(ACTION_LABELS.items(), key=lambda item: item[1])],
        error_messages={"invalid_choice": "Choose a kind of change from the list."},
    )
    start = forms.DateField(label="From (UTC)", required=False, widget=DayInput)
    end = forms.DateField(label="To (UTC, inclusive)", required=False, widget=DayInput)

    def _clean_text(self, name):
        value = self.cleaned_data[name].strip()
        problem = unprintable(value)
        if problem:
            raise ValidationError(f"This cannot contain {problem}.")
        return value

    def clean_who(self):
        return self._clean_text("who")

    def clean_customer(self):
        return self._clean_text("customer")

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("start"), cleaned.get("end")
        if start and end and start > end:
            self.add_error("end", "This is before the “From” day.")  # drops `end` only
        return cleaned

    def refused(self) -> list[str]:
        """The labels of the filters left out (for the message above the list)."""
        return [self.fields[name].label for name in self.errors if name in self.fields]

    def filters(self) -> dict:
        """The valid filters (an unbound form: none)."""
        if not self.is_bound:
            return {}
        self.is_valid()  # cleaned_data keeps the valid filters even when another is bad
        return {
            "actor": self.cleaned_data.get("who") or "",
            "customer": self.cleaned_data.get("customer") or "",
            "action": self.cleaned_data.get("action") or "",
            "start": self.cleaned_data.get("start"),
            "end": self.cleaned_data.get("end"),
        }


@staff_required
def audit_log(request):
    form = AuditLogFilterForm(request.GET if request.GET.keys() - {"page"} else None)
    page = paginate(request, selectors.audit_log_list(**form.filters()), per_page=PAGE_SIZE)
    return render(
        request,
        "staff/audit_log.html",
        {"form": form, "page": page, "events": selectors.audit_with_changes(page)},
    )
