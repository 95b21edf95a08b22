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
    prepaid = serializers.BooleanField(
        help_text="Calls are refused when the credit available now reaches zero."
    )
    available_now = serializers.DecimalField(
        max_digits=40,
        decimal_places=6,
        allow_null=True,
        help_text="Prepaid customers: the credit the proxy admits calls against now (balance "
        "less usage not yet invoiced), to the micro-unit. Null when the customer is not prepaid "
        "or the live figure could not be read (`live` false).",
    )
    usage_not_invoiced = serializers.DecimalField(
        max_digits=40,
        decimal_places=6,
        allow_null=True,
        help_text="Prepaid customers: what calls cost at list price since the last invoiced "
        "month, as the proxy counts it. Null like `available_now`.",
    )
    live = serializers.BooleanField(
        help_text="Whether `available_now` was read from the proxy's figure just now."
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


class PaymentStateSerializer(serializers.Serializer):
    """How an invoice was paid (billing/payments.py, docs/billing.md "Getting paid with
    Stripe"). Read-only."""

    paid_via = serializers.ChoiceField(
        choices=["stripe", "manual", "nothing_due"],
        allow_null=True,
        help_text="stripe: a card payment through Stripe Checkout; manual: marked paid by staff; "
        "nothing_due: settled when issued (total 0.00); null: not paid.",
    )
    amount_paid = serializers.DecimalField(
        max_digits=14,
        decimal_places=2,
        allow_null=True,
        help_text="Received through Stripe and applied to this invoice.",
    )
    stripe_paid_at = serializers.DateTimeField(allow_null=True)
    refunded_amount = serializers.DecimalField(
        max_digits=14, decimal_places=2, help_text="Refunded through Stripe, in total."
    )
    refund_state = serializers.ChoiceField(choices=["none", "partial", "full"])
    dispute_status = serializers.CharField(
        allow_null=True,
        help_text="Stripe's status of the latest dispute (needs_response, under_review, won, "
        "lost, ...); null: none.",
    )
    needs_attention = serializers.BooleanField(
        help_text="A payment staff must look at: received but not applied (the invoice was "
        "already paid or void, or the amount differed), or a dispute still open."
    )


class InvoiceSerializer(serializers.ModelSerializer):
    payment = PaymentStateSerializer(source="payment_state", read_only=True)

    class Meta:
        model = Invoice
        fields = [*INVOICE_FIELDS, "payment"]
        read_only_fields = fields


class InvoiceDetailSerializer(InvoiceSerializer):
    lines = InvoiceLineSerializer(many=True, read_only=True)

    class Meta(InvoiceSerializer.Meta):
        fields = [*INVOICE_FIELDS, "payment", "lines"]
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
