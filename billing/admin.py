from django.contrib import admin

from .forms import PricingPlanForm
from .models import (
    CreditGrant,
    CustomerPlan,
    Invoice,
    InvoiceLine,
    ModelPrice,
    Payment,
    PaymentEvent,
    PricingPlan,
)


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ["model_id", "effective_from", "input_per_1k", "output_per_1k", "source_seen_on"]
    list_filter = ["model_id"]
    search_fields = ["model_id", "display_name"]


@admin.register(PricingPlan)
class PricingPlanAdmin(admin.ModelAdmin):
    form = PricingPlanForm
    list_display = ["name", "code", "kind", "metric", "is_active"]
    prepopulated_fields = {"code": ["name"]}


@admin.register(CustomerPlan)
class CustomerPlanAdmin(admin.ModelAdmin):
    list_display = ["customer", "plan", "effective_from", "effective_to"]
    readonly_fields = ["customer", "plan", "effective_from", "effective_to", "created_by"]

    def has_add_permission(self, request):
        return False  # through the staff page, which closes the previous assignment


@admin.register(CreditGrant)
class CreditGrantAdmin(admin.ModelAdmin):
    list_display = ["customer", "kind", "amount", "remaining", "expires_on", "created_at"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


class InvoiceLineInline(admin.TabularInline):
    model = InvoiceLine
    extra = 0
    can_delete = False

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Invoice)
class InvoiceAdmin(admin.ModelAdmin):
    """Read-only: the lifecycle goes through the staff pages and services."""

    list_display = ["number", "customer", "period_start", "status", "total"]
    list_filter = ["status", "period_start"]
    inlines = [InvoiceLineInline]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class _ReadOnlyAdmin(admin.ModelAdmin):
    """Written only by the payment services and Stripe's webhook (billing/payments.py)."""

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Payment)
class PaymentAdmin(_ReadOnlyAdmin):
    list_display = ["created_at", "customer", "purpose", "amount", "status", "settlement"]
    list_filter = ["purpose", "status", "settlement", "dispute_status"]
    search_fields = ["checkout_session_id", "payment_intent_id", "charge_id"]


@admin.register(PaymentEvent)
class PaymentEventAdmin(_ReadOnlyAdmin):
    list_display = ["received_at", "event_id", "type", "outcome", "deferred"]
    list_filter = ["type", "deferred"]
    search_fields = ["event_id", "deferred_key"]
