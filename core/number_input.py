"""Numbers as people type them in the portal's forms: "1000", "1,000", "1 000" or "1,000.50".

One parser (`ungroup`) and the form fields built on it, used by every number input of the
pages: group separators are commas or spaces (a space, a no-break space or a narrow no-break
space), one kind in a number, between groups of exactly three digits; a point goes before the
decimals. Anything else ("1.000,50", "1,00", "1,0,0", "1_000", "1e6", "NaN", "Infinity", other
scripts' digits, control characters) is refused with a message saying how to type the number.
Money stays Decimal: "1,000.50" is Decimal("1000.50"), never a float.

The REST API does not use these fields: it takes JSON numbers (and, where it documents text,
plain digits only), so a script never depends on a separator (docs/api.md).
"""

import re

from django import forms
from django.core.exceptions import ValidationError

MAX_TYPED_CHARS = 60  # far more than any limit or amount needs, far less than a page of text

_FRACTION = r"(?:\.[0-9]+)?"
_PLAIN_RE = re.compile(rf"-?[0-9]+{_FRACTION}")
_GROUPED_RE = re.compile(
    rf"-?[0-9]{{1,3}}(?P<sep>[, \u00a0\u202f])[0-9]{{3}}(?:(?P=sep)[0-9]{{3}})*{_FRACTION}"
)
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def ungroup(value, *, decimals: bool) -> str | None:
    """The plain text of a number as typed: "1,000.50" -> "1000.50", " -1 000 " -> "-1000";
    "" for blank text; None when the text is not a number written that way (or has decimals
    where `decimals` is False). The caller turns None into its own message."""
    text = str(value).strip()
    if text == "":
        return ""
    if len(text) > MAX_TYPED_CHARS or _CONTROL_RE.search(text):
        return None
    if _PLAIN_RE.fullmatch(text):
        plain = text
    elif _GROUPED_RE.fullmatch(text):
        plain = re.sub(r"[, \u00a0\u202f]", "", text)
    else:
        return None
    if not decimals and "." in plain:
        return None
    return plain


def control_character_error(value) -> ValidationError | None:
    if isinstance(value, str) and _CONTROL_RE.search(value):
        return ValidationError("A number cannot contain control characters (such as NUL).")
    return None


class _Grouped:
    """Ungroups the typed text ("1,000.50" -> "1000.50") before the Django field's own
    parsing, bounds and messages; `decimals` says whether a point is allowed."""

    decimals = True

    def to_python(self, value):
        if value in self.empty_values:
            return None
        if error := control_character_error(value):
            raise error
        plain = ungroup(value, decimals=self.decimals)
        if plain is None:
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(plain)


class GroupedIntegerField(_Grouped, forms.IntegerField):
    """A whole number: Django's IntegerField (its bounds and messages), typed with or without
    group separators; a text input, since a browser's number input refuses "1,000"."""

    decimals = False
    widget = forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"})
    default_error_messages = {
        "invalid": "Enter a whole number, such as 2000 or 2,000 (commas or spaces between "
        "groups of three digits)."
    }


class GroupedDecimalField(_Grouped, forms.DecimalField):
    """An amount: Django's DecimalField (digits, decimal places, bounds), typed with or without
    group separators: "1,000.50" is Decimal("1000.50")."""

    widget = forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"})
    default_error_messages = {
        "invalid": "Enter an amount such as 1500.00 or 1,500.00 (commas or spaces between "
        "groups of three digits, a point before the decimals)."
    }


class GroupedFloatField(_Grouped, forms.FloatField):
    """A quantity that is not money (such as hours), typed with or without group separators."""

    widget = forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"})
    default_error_messages = {
        "invalid": "Enter a number such as 24, 1.5 or 1,000 (commas or spaces between groups "
        "of three digits, a point before the decimals)."
    }
