"""Parsing and validation of limits and imported tokens, shared by forms, services and commands.

Each function accepts what a person types (strings) or already-parsed values, and returns the
normalised value or raises ValidationError with a message fit to show.
"""

import ipaddress
import json
import re
from decimal import Decimal

from django.core.exceptions import ValidationError

from core import model_catalog
from proxy import contract
from proxy.contract import MAX_COUNTER_SHARDS
from proxy.models import ALIASES, is_allowed

MODEL_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,199}$")
TOKEN_IMPORT_RE = re.compile(r"^[\x21-\x7e]{20,256}$")
MAX_LIST_ITEMS = 200
MAX_PARAMS_CHARS = 4000


def _items(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = re.split(r"[\s,]+", value)
    return [str(v).strip() for v in value if str(v).strip()]


INT32_MAX = 2**31 - 1  # PositiveIntegerField columns (daily and per-minute limits)
INT64_MAX = 2**63 - 1  # PositiveBigIntegerField columns (the monthly token quota)
TPM_MAX = 10**12  # tokens per minute: far above any model's quota, far below the column's
TOKEN_QUOTA_MAX = 10**12  # a token's own monthly token quota (a trillion tokens)
ROTATION_DAYS_MAX = 3650  # a rotation policy's period: ten years at most


def positive_int_or_none(value, *, label: str, maximum: int = INT32_MAX) -> int | None:
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
        return None
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        raise ValidationError(f"{label} must be a whole number, or empty for no limit.") from None
    if number <= 0:
        raise ValidationError(f"{label} must be a positive number, or empty for no limit.")
    if number > maximum:
        raise ValidationError(f"{label} is too large: at most {maximum:,}.")
    return number


def _whole_number(value, how: str) -> int | None:
    """An int or its digits as text (at most 40 ASCII digits, a minus sign allowed so the
    caller can say why it is refused); None for None or blank text. A bool, a float, a list,
    an object or any other text is refused with `how`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValidationError(how)
    text = value.strip() if isinstance(value, str) else str(value)
    if text == "":
        return None
    if len(text) > 40 or not re.fullmatch(r"-?[0-9]+", text):
        raise ValidationError(how)
    return int(text)


def counter_shards(value, *, label: str = "Admission shards") -> int:
    """How many items the proxy spreads a customer's admissions over: a whole number from 1
    to contract.MAX_COUNTER_SHARDS; None or "" mean 1."""
    how = f"{label} must be a whole number from 1 to {MAX_COUNTER_SHARDS} (1 for most customers)."
    number = _whole_number(value, how)
    if number is None:
        return 1
    if not 1 <= number <= MAX_COUNTER_SHARDS:
        raise ValidationError(how)
    return number


def rotation_days(value, *, label: str = "Rotation period") -> int | None:
    """A rotation policy's period in whole days, 1 to ROTATION_DAYS_MAX; None, "" or "none"
    turn the policy off. Text or an int; never a bool, a float, a list or an object."""
    how = (
        f"{label} must be a whole number of days from 1 to {ROTATION_DAYS_MAX:,}, "
        "or empty for no rotation policy."
    )
    if isinstance(value, str) and value.strip().lower() == "none":
        return None
    number = _whole_number(value, how)
    if number is None:
        return None
    if number < 1:
        raise ValidationError(f"{label} must be at least 1 day, or empty for no rotation policy.")
    if number > ROTATION_DAYS_MAX:
        raise ValidationError(f"{label} is too large: at most {ROTATION_DAYS_MAX:,} days.")
    return number


# An amount as typed: ASCII digits, at most one decimal point; no sign, exponent, separator,
# space or other digit (Decimal() itself would take "1e999", "NaN", "1_000" and "١٢").
AMOUNT_RE = re.compile(r"[0-9]{1,40}(?:\.[0-9]{1,40})?")


def monthly_budget(value, *, label: str = "Monthly budget") -> Decimal | None:
    """A monthly budget in the portal's currency: whole cents, more than 0, at most
    money.BUDGET_MAX; None, "" or "none" for no budget. Text, an int or a Decimal; never a
    float (an inexact number is not money), a bool, a list or an object."""
    from .money import BUDGET_MAX, CENT, currency

    unit = currency()
    how = (
        f"{label} must be an amount of {unit} with at most 2 decimals, such as 1500.00, "
        "or empty for no budget."
    )
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        if isinstance(value, float):
            how += ' Send it as text ("1500.00"), not as a floating-point number.'
        raise ValidationError(how)
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in ("", "none"):
            return None
        if text.startswith("-") and AMOUNT_RE.fullmatch(text[1:]):
            raise ValidationError(f"{label} must be more than 0 {unit}, or empty for no budget.")
        if not AMOUNT_RE.fullmatch(text):
            raise ValidationError(how)
        value = Decimal(text)
    number = Decimal(value)
    if not number.is_finite():
        raise ValidationError(how)
    if number <= 0:
        raise ValidationError(f"{label} must be more than 0 {unit}, or empty for no budget.")
    if number > BUDGET_MAX:
        raise ValidationError(f"{label} is too large: at most {BUDGET_MAX:,} {unit}.")
    if number != number.quantize(CENT):
        raise ValidationError(f"{label} must be a whole number of cents (at most 2 decimals).")
    return number.quantize(CENT)


def flag(value, *, label: str) -> bool:
    """A yes/no setting: True or False only (forms and the API parse their own input)."""
    if not isinstance(value, bool):
        raise ValidationError(f"{label} must be true or false.")
    return value


def allowed_models(value) -> list[str]:
    """Models of the catalog (core/model_catalog.py): ids, aliases or inference profile ids of
    them, kept as given; empty means every model."""
    out: list[str] = []
    for item in _items(value):
        if not MODEL_NAME_RE.match(item):
            raise ValidationError(f"“{item[:60]}” is not a model alias or model id.")
        if item not in out:
            out.append(item)
    if len(out) > MAX_LIST_ITEMS:
        raise ValidationError(f"At most {MAX_LIST_ITEMS} models.")
    known = model_catalog.catalog() if out else []
    unknown = [item for item in out if model_catalog.find(item, known) is None]
    if unknown:
        names = ", ".join(f"“{item[:60]}”" for item in unknown[:5])
        raise ValidationError(
            f"Unknown model{'s' if len(unknown) > 1 else ''} {names}: allowed models are the "
            f"models of {model_catalog.where()}, by id or alias, or an inference profile id of one "
            "(such as us.anthropic.claude-3-haiku-20240307-v1:0)."
        )
    return out


def models_within(models: list[str], customer_models: list[str]) -> list[str]:
    """A token's models (already validated by `allowed_models`) must be among its customer's:
    decided by the proxy's own rule (proxy.models.is_allowed: ids or aliases of one model are
    the same model, the sandboxes are always allowed). The customer's empty list allows all."""
    if not customer_models:
        return models

    outside = [
        item
        for item in models
        if not is_allowed(ALIASES.get(item, item), item if item in ALIASES else "", customer_models)
    ]
    if outside:
        names = ", ".join(f"“{item[:60]}”" for item in outside[:5])
        listed = ", ".join(customer_models[:20]) + (", …" if len(customer_models) > 20 else "")
        raise ValidationError(
            f"{names} {'is' if len(outside) == 1 else 'are'} not among the account's allowed "
            f"models ({listed}): a token's models can only narrow the account's."
        )
    return models


def ip_allowlist(value) -> list[str]:
    """CIDR blocks (IPv4 or IPv6); a bare address means that one address."""
    out: list[str] = []
    for item in _items(value):
        try:
            network = ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValidationError(f"“{item[:60]}” is not an IP address or CIDR block.") from None
        text = str(network)
        if text not in out:
            out.append(text)
    if len(out) > MAX_LIST_ITEMS:
        raise ValidationError(f"At most {MAX_LIST_ITEMS} CIDR blocks.")
    return out


def default_model_params(value) -> dict:
    """A JSON object of default inference parameters, e.g. {"max_tokens": 512}."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise ValidationError("Default model parameters must be valid JSON.") from None
    if not isinstance(value, dict):
        raise ValidationError('Default model parameters must be a JSON object, like {"a": 1}.')
    for key, item in value.items():
        if isinstance(item, float):
            continue
        if not isinstance(item, str | int | bool | list | dict) and item is not None:
            raise ValidationError(f"Unsupported value for {key}.")
    if len(json.dumps(value)) > MAX_PARAMS_CHARS:
        raise ValidationError("Default model parameters are too long.")
    return value


def importable_token(value: str) -> str:
    """A token brought from elsewhere (`customers create-token --token`): printable, 20 to 256
    characters."""

    token = (value or "").strip()
    if token.startswith(contract.TOKEN_PREFIX) and not contract.token_has_valid_checksum(token):
        raise ValidationError(
            f"A token starting with {contract.TOKEN_PREFIX} must carry a valid checksum; "
            "leave the token empty to generate one."
        )
    if len(token) < contract.IMPORTED_TOKEN_MIN:
        raise ValidationError(
            f"An imported token must be at least {contract.IMPORTED_TOKEN_MIN} characters long; "
            "leave the token empty to generate one."
        )
    if not TOKEN_IMPORT_RE.match(token) or not contract.token_is_well_formed(token):
        raise ValidationError(
            "An imported token must be 20 to 256 printable characters, without spaces."
        )
    return token


def emails(value) -> list[str]:
    from django.core.validators import validate_email

    out = []
    for item in _items(value):
        validate_email(item)
        if item.lower() not in [e.lower() for e in out]:
            out.append(item)
    return out


def one_email(value) -> str:
    from django.core.validators import validate_email

    value = (value or "").strip()
    validate_email(value)
    return value
