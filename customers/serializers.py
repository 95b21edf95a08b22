"""API representations of customers, limits, tokens, users and audit events.

Validation of limits calls the services' own `clean_limits`, so the API accepts exactly what
the staff pages accept; a token's hash is never a field of anything here.
"""

from decimal import Decimal

from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from core.api.base import storable_json
from core.models import User
from proxy.contract import MAX_COUNTER_SHARDS

from . import validators
from .models import AuditEvent, Customer, Token
from .money import BUDGET_MAX
from .services import DETAIL_FIELDS, LIMIT_FIELDS, clean_limits

MAX_INT = 2**31 - 1  # the columns of the per-day and per-minute limits
MAX_BIG = 10**15  # the monthly token quota's, as the services' own validator allows
MAX_TPM = 10**12  # tokens per minute, and a token's own monthly quota (customers.validators)


def _service_rule(field: str, value):
    try:
        return clean_limits(**{field: value})[field]
    except DjangoValidationError as exc:
        raise serializers.ValidationError(exc.messages) from None


class BudgetField(serializers.DecimalField):
    """A monthly budget: a decimal string of the portal's currency in whole cents ("1500.00"),
    as the API writes all money; null: no budget. A JSON integer is read exactly too; a JSON
    fraction is refused (a float is not money), as are NaN, Infinity, exponents, signs and
    anything but a string, an integer or null."""

    def __init__(self, **kwargs):
        kwargs.setdefault("help_text", "An amount of the portal's currency; null: no budget.")
        super().__init__(
            max_digits=12,
            decimal_places=2,
            min_value=Decimal("0.01"),
            max_value=BUDGET_MAX,
            allow_null=True,
            required=False,
            **kwargs,
        )

    def to_internal_value(self, data):
        try:
            value = validators.monthly_budget(data, label=self.label or "Monthly budget")
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        if value is None:  # "" or "none" as text
            raise serializers.ValidationError("Send null for no budget, or an amount.")
        return value


class RotationDaysField(serializers.IntegerField):
    """The rotation policy's period in whole days (customers/rotation.py); null: no policy.
    A JSON integer or its digits as text; anything else is refused with the service's message."""

    def __init__(self, **kwargs):
        super().__init__(
            min_value=1,
            max_value=validators.ROTATION_DAYS_MAX,
            allow_null=True,
            required=False,
            **kwargs,
        )

    def to_internal_value(self, data):
        try:
            value = validators.rotation_days(data)
        except DjangoValidationError as exc:
            raise serializers.ValidationError(exc.messages) from None
        if value is None:  # "" or "none" as text
            raise serializers.ValidationError("Send null for no rotation policy, or a number.")
        return value


class LimitsSerializer(serializers.ModelSerializer):
    """What the proxy enforces. null: no limit; an empty allowed_models: every model."""

    daily_request_limit = serializers.IntegerField(
        min_value=1, max_value=MAX_INT, allow_null=True, required=False
    )
    monthly_token_quota = serializers.IntegerField(
        min_value=1, max_value=MAX_BIG, allow_null=True, required=False
    )
    rpm_limit = serializers.IntegerField(
        min_value=1, max_value=MAX_INT, allow_null=True, required=False
    )
    tpm_limit = serializers.IntegerField(
        min_value=1,
        max_value=MAX_TPM,
        allow_null=True,
        required=False,
        help_text="Input + output tokens of priced models per minute (calls in flight count "
        "their estimate); null: no limit.",
    )
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        max_length=1000,
        help_text="Ids or aliases of the model catalog (the price book, GET /api/v1/prices/), "
        "or inference profile ids of them; empty: every model. Another value is refused.",
    )
    ip_allowlist = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, max_length=1000
    )
    default_model_params = serializers.DictField(required=False)
    monthly_budget = BudgetField(
        label="Monthly budget",
        help_text="The most a calendar month's calls may cost at list price (UTC), a decimal "
        'string of the portal\'s currency ("1500.00"); null: no budget.',
    )
    prepaid = serializers.BooleanField(
        required=False, help_text=Customer._meta.get_field("prepaid").help_text
    )
    rotate_every_days = RotationDaysField(
        help_text="Rotation policy: each token is replaced once it is this many days old (the "
        "customer is told ahead by email and reveals the new token once on their tokens page; "
        "the old one works for a grace period); null: tokens are rotated only by hand."
    )

    counter_shards = serializers.IntegerField(
        min_value=1,
        max_value=MAX_COUNTER_SHARDS,
        required=False,
        help_text=Customer._meta.get_field("counter_shards").help_text,
    )

    class Meta:
        model = Customer
        fields = LIMIT_FIELDS

    def validate_allowed_models(self, value):
        return _service_rule("allowed_models", value)

    def validate_ip_allowlist(self, value):
        return _service_rule("ip_allowlist", value)

    def validate_default_model_params(self, value):
        return _service_rule("default_model_params", storable_json(value))


class CustomerSerializer(LimitsSerializer):
    """A customer with its limits. `status` changes through the suspend/reactivate actions."""

    name = serializers.CharField(max_length=200)
    contact_email = serializers.EmailField(max_length=254)
    extra_contact_emails = serializers.ListField(
        child=serializers.EmailField(max_length=254), required=False, max_length=50
    )
    billing_name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    billing_address = serializers.CharField(max_length=2000, required=False, allow_blank=True)
    tax_id = serializers.CharField(max_length=64, required=False, allow_blank=True)
    notes = serializers.CharField(max_length=10000, required=False, allow_blank=True)
    sync_state = serializers.SerializerMethodField()

    class Meta:
        model = Customer
        fields = [
            "id",
            "name",
            "contact_email",
            "extra_contact_emails",
            "status",
            "billing_name",
            "billing_address",
            "tax_id",
            "notes",
            *LIMIT_FIELDS,
            "sync_state",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "status", "sync_state", "created_at", "updated_at"]

    def validate_name(self, value):
        if not value.strip():
            raise serializers.ValidationError("A customer needs a name.")
        return value.strip()

    @extend_schema_field(
        serializers.ChoiceField(choices=["in sync", "pending", "failing"], allow_null=True)
    )
    def get_sync_state(self, customer):
        """Whether the proxy's copy is up to date (null where not computed)."""
        return getattr(customer, "sync_state", None)

    def split(self) -> tuple[dict, dict]:
        """Validated data as (details for customer_update, limits for customer_update_limits)."""
        data = self.validated_data
        return (
            {k: v for k, v in data.items() if k in DETAIL_FIELDS},
            {k: v for k, v in data.items() if k in LIMIT_FIELDS},
        )


class CustomerForCustomerSerializer(CustomerSerializer):
    """What a customer user sees of their own account: no staff notes."""

    class Meta(CustomerSerializer.Meta):
        fields = [f for f in CustomerSerializer.Meta.fields if f != "notes"]


TOKEN_LIMIT_FIELDS = [
    "daily_request_limit",
    "rpm_limit",
    "monthly_token_quota",
    "tpm_limit",
    "allowed_models",
    "monthly_budget",
]


class TokenLimitsSerializer(serializers.Serializer):
    """A token's own limits, inside its customer's (a request must pass both). null: only the
    customer's limit applies; an empty allowed_models: the customer's models."""

    daily_request_limit = serializers.IntegerField(
        min_value=1, max_value=MAX_INT, allow_null=True, required=False
    )
    rpm_limit = serializers.IntegerField(
        min_value=1, max_value=MAX_INT, allow_null=True, required=False
    )
    monthly_token_quota = serializers.IntegerField(
        min_value=1, max_value=MAX_TPM, allow_null=True, required=False
    )
    tpm_limit = serializers.IntegerField(
        min_value=1, max_value=MAX_TPM, allow_null=True, required=False
    )
    allowed_models = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        max_length=1000,
        help_text="Some of the customer's allowed models (any catalog model when the customer "
        "allows all); empty: the customer's models. A model outside them is refused.",
    )
    monthly_budget = BudgetField(
        label="Token's monthly budget",
        help_text="The most this token's calls may cost in a calendar month (UTC), a decimal "
        "string of the portal's currency; null: only the customer's budget applies.",
    )

    def validate_allowed_models(self, value):
        return _service_rule("allowed_models", value)


class TokenSerializer(serializers.ModelSerializer):
    """A token as listed: never its hash or plaintext, only a masked form."""

    state = serializers.SerializerMethodField()
    masked = serializers.CharField(read_only=True)
    last_used_at = serializers.SerializerMethodField(
        help_text="The token's last call: the proxy's live record (customers/live.py, read once "
        "per page), or the nightly import's when the live record is older or unavailable; null: "
        "never used."
    )
    effective_expires_at = serializers.DateTimeField(read_only=True, allow_null=True)
    allowed_models = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="The token's own models (some of the customer's); empty: the customer's.",
    )
    monthly_budget = serializers.DecimalField(
        max_digits=12,
        decimal_places=2,
        read_only=True,
        allow_null=True,
        help_text="The token's own monthly budget (a decimal string); null: the customer's.",
    )
    rotated_on_schedule_at = serializers.DateTimeField(
        read_only=True,
        allow_null=True,
        help_text="When the customer's rotation policy rotated it (its grace period began).",
    )
    awaiting_reveal = serializers.BooleanField(
        read_only=True,
        help_text="Rotated by the policy, and its replacement not revealed yet: a customer user "
        "reveals it, once, on the tokens page (it is generated then; the API never shows it).",
    )

    class Meta:
        model = Token
        fields = [
            "id",
            "customer",
            "label",
            "masked",
            "display_prefix",
            "last4",
            "status",
            "state",
            "expires_at",
            "grace_until",
            "effective_expires_at",
            "replaced_by",
            "created_at",
            "revoked_at",
            "last_used_at",
            *TOKEN_LIMIT_FIELDS,
            "rotated_on_schedule_at",
            "awaiting_reveal",
        ]
        read_only_fields = fields

    @extend_schema_field(
        serializers.ChoiceField(choices=["active", "rotating", "expired", "revoked"])
    )
    def get_state(self, token):
        return token.state()

    @extend_schema_field(serializers.DateTimeField(allow_null=True))
    def get_last_used_at(self, token):
        """`last_use` when the view read the live figures for its page (customers.live), else
        the nightly import's value."""
        value = getattr(token, "last_use", token.last_used_at)
        return serializers.DateTimeField().to_representation(value) if value else None


class IssuedTokenSerializer(TokenSerializer):
    """A token just created or rotated in: `token` is the plaintext, shown this once."""

    # Not read-only so that the schema marks it optional: an Idempotency-Key replay answers
    # without it (the plaintext is never stored). Only ever used to answer, never to read input.
    token = serializers.CharField(
        required=False,
        help_text="The plaintext; never shown again (absent from an Idempotency-Key replay).",
    )

    class Meta(TokenSerializer.Meta):
        fields = [*TokenSerializer.Meta.fields, "token"]
        read_only_fields = fields

    @classmethod
    def of(cls, issued) -> dict:
        return {**cls(issued.token).data, "token": issued.plaintext}


class TokenCreateSerializer(TokenLimitsSerializer):
    label = serializers.CharField(max_length=100, required=False, default="default")
    import_token = serializers.CharField(
        max_length=256,
        required=False,
        write_only=True,
        help_text="Bring an existing token (as the first version's --token did) instead of "
        "generating one; only its hash is kept.",
    )
    expires_at = serializers.DateTimeField(
        required=False,
        allow_null=True,
        help_text="Omit for the configured default lifetime; null for no expiry.",
    )


class TokenRotateSerializer(serializers.Serializer):
    grace_hours = serializers.FloatField(
        required=False,
        min_value=0,
        max_value=24 * 90,
        help_text="How long the old token keeps working (default: the configured grace).",
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class CustomerUserSerializer(serializers.ModelSerializer):
    invitation_pending = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = [
            "id",
            "email",
            "full_name",
            "is_active",
            "invitation_pending",
            "date_joined",
            "last_login",
        ]
        read_only_fields = fields

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_invitation_pending(self, user) -> bool:
        """True until the user has chosen a password."""
        return not user.has_usable_password()


class InviteSerializer(serializers.Serializer):
    email = serializers.EmailField(max_length=254)
    full_name = serializers.CharField(max_length=200, required=False, default="", allow_blank=True)


class AuditEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = AuditEvent
        fields = [
            "id",
            "customer",
            "actor",
            "actor_label",
            "action",
            "object_type",
            "object_id",
            "before",
            "after",
            "source_ip",
            "created_at",
        ]
        read_only_fields = fields


class CustomerListQuery(serializers.Serializer):
    """Filters of the customer list (the staff page's own selector applies them)."""

    search = serializers.CharField(
        required=False, max_length=200, help_text="Part of the name or contact email."
    )
    status = serializers.ChoiceField(choices=Customer.Status.choices, required=False)
