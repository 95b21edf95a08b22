from django.contrib import admin

from .models import Customer


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = ["name", "contact_email", "status", "created_at"]
    list_filter = ["status"]
    search_fields = ["name", "contact_email"]
