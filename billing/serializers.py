"""API representations of the price book, plans, the credit wallet and invoices.
Money is a decimal string (never a float)."""

from decimal import Decimal

from rest_framework import serializers

from .models import CreditGrant, Invoice, InvoiceLine, ModelPrice, PricingPlan


class ModelPriceSerializer(serializers.ModelSerializer):
    source_url = serializers.CharField(read_only=True, help_text="Where the price was read.")

    class Meta:
        model = ModelPrice
        fields = [
            "id",
            "model_id",
            "display_name",
            "effective_from",
            "input_per_1k",
            "output_per_1k",
            "cache_read_per_1k",
            "cache_write_per_1k",
            "per_request",
            "source_url",
            "source_seen_on",
            "note",
        ]
        read_only_fields = fields


class PricingPlanSerializer(serializers.ModelSerializer):
    class Meta:
        model = PricingPlan
        fields = [
            "id",
            "code",
            "name",
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
        read_only_fields = fields


class PlanAssignSerializer(serializers.Serializer):
    customer = serializers.UUIDField()
    effective_from = serializers.DateField(
        help_text="Plans apply to whole months: the run uses the plan in force on the 1st."
    )


class PlanAssignmentSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    customer = serializers.UUIDField(source="customer_id")
    plan = serializers.IntegerField(source="plan_id")
    effective_from = serializers.DateField()
    effective_to = serializers.DateField(allow_null=True)


class CreditGrantSerializer(serializers.ModelSerializer):
    class Meta:
        model = CreditGrant
        fields = ["id", "kind", "amount", "remaining", "expires_on", "note", "created_at"]
        read_only_fields = fields


class CreditGrantCreateSerializer(serializers.Serializer):
    amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, min_value=Decimal("0.01"), max_value=Decimal("1e11")
    )
    kind = serializers.ChoiceField(
        choices=[CreditGrant.Kind.PURCHASE, CreditGrant.Kind.PROMOTIONAL],
        default=CreditGrant.Kind.PURCHASE,
    )
    expires_on = serializers.DateField(required=False, allow_null=True)
    note = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class CreditsSerializer(serializers.Serializer):
    customer = serializers.UUIDField()
    balance = serializers.DecimalField(
        max_digits=14, decimal_places=2, help_text="Usable prepaid credit today."
    )
    grants = CreditGrantSerializer(many=True)


class InvoiceLineSerializer(serializers.ModelSerializer):
    class Meta:
        model = InvoiceLine
        fields = [
            "position",
            "kind",
            "model_id",
            "description",
            "quantity",
            "unit",
            "unit_price",
            "amount",
        ]
        read_only_fields = fields


INVOICE_FIELDS = [
    "id",
    "number",
    "customer",
    "kind",
    "status",
    "period_start",
    "period_end",
    "currency",
    "plan_name",
    "subtotal",
    "credits_applied",
    "tax_rate",
    "tax",
    "total",
    "replaces",
    "credited_invoice",
    "created_at",
    "issued_at",
    "paid_at",
    "voided_at",
    "void_reason",
]


class InvoiceSerializer(serializers.ModelSerializer):
    class Meta:
        model = Invoice
        fields = INVOICE_FIELDS
        read_only_fields = fields


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = InvoiceLineSerializer(many=True, read_only=True)

    class Meta(InvoiceSerializer.Meta):
        fields = [*INVOICE_FIELDS, "lines"]
        read_only_fields = fields


class LineAddSerializer(serializers.Serializer):
    description = serializers.CharField(max_length=300)
    amount = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("-1000000"),
        max_value=Decimal("1e11"),
        help_text="A negative amount is a discount.",
    )


class CreditNoteSerializer(serializers.Serializer):
    amount = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        min_value=Decimal("0.01"),
        max_value=Decimal("1e11"),
        help_text="Before tax; its share of the tax charged is credited too.",
    )
    reason = serializers.CharField(max_length=250)


class VoidSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=300, help_text="Shown on the void invoice.")
    reissue = serializers.BooleanField(
        default=False, help_text="Create a corrected draft copying this invoice's lines."
    )


class VoidResultSerializer(serializers.Serializer):
    voided = InvoiceSerializer()
    reissued_draft = InvoiceSerializer(allow_null=True)
