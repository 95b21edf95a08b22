from django.contrib import admin
from django.contrib.auth import REDIRECT_FIELD_NAME
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin
from django.db.models import F
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode

from .models import User


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    ordering = ["email"]
    list_display = ["email", "full_name", "is_staff", "customer", "is_active", "last_login"]
    list_filter = ["is_staff", "is_active"]
    search_fields = ["email", "full_name"]
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        ("Profile", {"fields": ["full_name", "customer"]}),
        ("Access", {"fields": ["is_active", "is_staff", "is_superuser", "groups"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [
        (None, {"fields": ["email", "password1", "password2", "is_staff", "customer"]})
    ]
    autocomplete_fields = ["customer"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if change and "is_active" in form.changed_data and not obj.is_active:
            # End every session of the disabled user (a later re-enable does not revive them).
            User.objects.filter(pk=obj.pk).update(session_epoch=F("session_epoch") + 1)


def _login_through_the_portal(request, extra_context=None):
    """django-admin's own login form would sign in on the password alone: the portal's login
    (with its code step and single sign-on) signs in for the admin too."""
    next_url = request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index")
    return redirect(f"{reverse('login')}?{urlencode({REDIRECT_FIELD_NAME: next_url})}")


admin.site.login = _login_through_the_portal
