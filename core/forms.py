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


class CodeForm(forms.Form):
    """A two-factor code: 6 digits from the authenticator app, or (where `recovery` is on) one
    of the user's recovery codes. Spaces and dashes are ignored."""

    code = forms.CharField(
        label="Code",
        max_length=40,
        widget=forms.TextInput(
            attrs={
                "autofocus": True,
                "autocomplete": "one-time-code",
                "autocapitalize": "none",
                "spellcheck": "false",
            }
        ),
    )

    def __init__(self, *args, recovery: bool = True, **kwargs):
        super().__init__(*args, **kwargs)
        self.recovery = recovery
        self.fields["code"].help_text = (
            "The 6-digit code your authenticator app shows, or one of your recovery codes."
            if recovery
            else "The 6-digit code your authenticator app shows now."
        )

    def clean_code(self):
        from .two_factor import APP_CODE, RECOVERY_CODE, normalize_code

        code = normalize_code(self.cleaned_data["code"])
        if APP_CODE.fullmatch(code) or (self.recovery and RECOVERY_CODE.fullmatch(code)):
            return code
        if self.recovery:
            raise forms.ValidationError(
                "Enter the 6-digit code from your app, or a recovery code (8 letters and digits)."
            )
        raise forms.ValidationError("Enter the 6-digit code from your app.")
