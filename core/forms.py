from django import forms
from django.contrib.auth.forms import AuthenticationForm


class EmailAuthenticationForm(AuthenticationForm):
    """Log in with an email address (case-insensitive) and password."""

    username = forms.EmailField(
        label="Email",
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )

    def clean_username(self):
        return self.cleaned_data["username"].strip().lower()


def axes_username(request, credentials=None) -> str | None:
    """The login name django-axes counts failures against: the email, case-folded."""
    value = (credentials or {}).get("username") or request.POST.get("username")
    return value.strip().lower() if value else None
