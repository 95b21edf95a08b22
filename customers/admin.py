"""Read-mostly admin: changes go through the staff pages so they are audited and synced."""

from django.contrib import admin

from .models import AuditEvent, Customer, SyncOutbox, Token


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["name", "contact_email", "status", "sync_version", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "contact_email"]
    readonly_fields = ["sync_version", "created_at", "updated_at"]

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(Token)
class TokenAdmin(admin.ModelAdmin):
    list_display = ["label", "customer", "display_prefix", "last4", "status", "expires_at"]
    list_filter = ["status"]
    search_fields = ["label", "customer__name", "display_prefix"]
    exclude = ["token_hash"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(SyncOutbox)
class SyncOutboxAdmin(admin.ModelAdmin):
    list_display = ["id", "customer", "kind", "version", "attempts", "delivered_at", "last_error"]
    list_filter = ["kind", ("delivered_at", admin.EmptyFieldListFilter)]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "actor_label", "action", "customer", "source_ip"]
    list_filter = ["action"]
    search_fields = ["actor_label", "customer__name", "object_id"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False
