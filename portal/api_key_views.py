"""Staff pages for API keys: list, create (the key is shown once), revoke."""

from axes.helpers import get_client_ip_address
from django import forms
from django.contrib import messages
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from core.access import staff_required
from core.models import ApiKey
from core.number_input import GroupedIntegerField
from core.once import ALREADY_SENT, form_key_issue, form_key_use
from core.web import confirm_first, paginate, posted_data

from .api.keys import api_key_create, api_key_revoke


class ApiKeyForm(forms.Form):
    name = forms.CharField(max_length=100, help_text="What will use it, e.g. 'crm-sync'.")
    scope = forms.ChoiceField(choices=ApiKey.Scope.choices, initial=ApiKey.Scope.READ)
    rate_limit_per_minute = GroupedIntegerField(
        label="Rate limit (requests per minute)",
        required=False,
        min_value=1,
        max_value=100_000,
        initial=600,
        help_text="This key's own limit (empty: 600); over it the API answers 429.",
    )
    expires_at = forms.DateTimeField(
        required=False,
        help_text="Optional, UTC, e.g. 2027-01-31 00:00. Leave empty for no expiry.",
    )

    def clean_expires_at(self):
        value = self.cleaned_data["expires_at"]
        if value and value <= timezone.now():
            raise forms.ValidationError("Choose a moment in the future.")
        return value


@staff_required
@never_cache
def api_key_list(request):
    form = ApiKeyForm(posted_data(request))
    issued = None
    status = 200
    if (
        request.method == "POST"
        and form.is_valid()
        and not form_key_use(request=request, purpose="api_key")
    ):
        form.add_error(None, ALREADY_SENT)  # a reload of the page that showed the key
        status = 409
    elif request.method == "POST" and form.is_valid():
        issued = api_key_create(
            name=form.cleaned_data["name"],
            scope=form.cleaned_data["scope"],
            expires_at=form.cleaned_data["expires_at"],
            rate_limit_per_minute=form.cleaned_data["rate_limit_per_minute"],
            created_by=request.user,
            ip=get_client_ip_address(request),
        )
        messages.success(request, f"API key “{issued.api_key.name}” created. Copy it now.")
        form = ApiKeyForm()
    keys = ApiKey.objects.select_related("owner", "created_by").order_by("-created_at")
    page = paginate(request, keys, per_page=50)
    return render(
        request,
        "staff/api_keys.html",
        {
            "form": form,
            "page": page,
            "issued": issued,
            "now": timezone.now(),
            "form_key": form_key_issue(user=request.user, purpose="api_key"),
        },
        status=status,
    )


@staff_required
@require_POST
def api_key_revoke_view(request, pk):
    api_key = get_object_or_404(ApiKey, pk=pk)
    if page := confirm_first(
        request,
        title=f"Revoke the API key “{api_key.name}”?",
        message=f"Scripts using {api_key.display_prefix}…{api_key.last4} get 401 at once. "
        "This cannot be undone.",
        button="Revoke key",
        cancel_url=reverse("staff:api_keys"),
    ):
        return page
    api_key_revoke(api_key=api_key, actor=request.user, ip=get_client_ip_address(request))
    messages.success(request, f"API key “{api_key.name}” revoked. It stops working at once.")
    return redirect("staff:api_keys")
