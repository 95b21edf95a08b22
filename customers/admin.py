"""Read-only admin: every change goes through the services (staff pages, commands, API), so it
is audited and synced to DynamoDB. Deleting here would be worse than editing: a deleted token's
item would keep working at the proxy until the nightly reconciliation, and a deleted customer
would take its audit trail with it (cascade)."""

from django.contrib import admin

from .models import AuditEvent, Customer, SyncOutbox, Token


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Customer)
class CustomerAdmin(ReadOnlyAdmin):
    list_display = ["name", "contact_email", "status", "sync_version", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "contact_email"]
    readonly_fields = ["sync_version", "created_at", "updated_at"]


@admin.register(Token)
class TokenAdmin(ReadOnlyAdmin):
    list_display = ["label", "customer", "display_prefix", "last4", "status", "expires_at"]
    list_filter = ["status"]
    search_fields = ["label", "customer__name", "display_prefix"]
    exclude = ["token_hash"]


@admin.register(SyncOutbox)
class SyncOutboxAdmin(ReadOnlyAdmin):
    list_display = ["id", "customer", "kind", "version", "attempts", "delivered_at", "last_error"]
    list_filter = ["kind", ("delivered_at", admin.EmptyFieldListFilter)]


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "actor_label", "action", "customer", "source_ip"]
    list_filter = ["action"]
    search_fields = ["actor_label", "customer__name", "object_id"]
