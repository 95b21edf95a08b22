from django.contrib import admin
from django.core.exceptions import ValidationError

from .models import (
    CreditGrant,
    CustomerPlan,
    Invoice,
    InvoiceLine,
    ModelPrice,
    PricingPlan,
)
from .pricing import PricingError, parse_tiers


@admin.register(ModelPrice)
class ModelPriceAdmin(admin.ModelAdmin):
    list_display = ["model_id", "effective_from", "input_per_1k", "output_per_1k", "source_seen_on"]
    list_filter = ["model_id"]
    search_fields = ["model_id", "display_name"]


class PricingPlanForm(admin.ModelAdmin.form):
    def clean(self):
        data = super().clean()
        if data.get("kind") == PricingPlan.Kind.TIERED:
            try:
                parse_tiers(data.get("tiers") or [])
            except (PricingError, TypeError, ValueError, AttributeError) as exc:
                raise ValidationError({"tiers": str(exc)}) from exc
        if data.get("kind") == PricingPlan.Kind.PACKAGE and (data.get("package_size") or 0) <= 0:
            raise ValidationError({"package_size": "A package plan needs a positive size."})
        return data


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
