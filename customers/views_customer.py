"""Customer self-service pages of the customers app: their own tokens and account.

Only `request.customer`'s tokens and users, ever: another customer's ids are 404. Writes go
through customers.services / customers.onboarding, audited with source "customer portal".
A new token is rendered in the POST response itself and never stored: reloading cannot show
it again (the response is never cached).
"""

from axes.helpers import get_client_ip_address
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from portal.access import customer_required
from portal.dashboard.snippets import SANDBOX_MODEL, snippets
from portal.once import ALREADY_SENT, form_key_issue, form_key_use
from portal.web import confirm_first, paginate
from usage.forms import UsageSettingsForm
from usage.selectors import usage_settings_for
from usage.services import usage_settings_update

from . import selectors, services
from .forms import InviteForm, RotateForm, TokenCreateForm, TokenLimitsForm
from .onboarding import customer_user_invite

PAGE_SIZE = 50


def _audit(request) -> dict:
    return {
        "actor": request.user,
        "ip": get_client_ip_address(request),
        "source": "customer portal",
    }


def _own_token(request, token_id):
    token = request.customer.tokens.filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    return token


def _tokens_page(request, *, form=None, issued=None, status=200):
    from usage.selectors import with_last_use

    tokens = paginate(request, selectors.token_list(customer=request.customer), per_page=PAGE_SIZE)
    tokens.object_list = with_last_use(tokens.object_list)
    context = {
        "tokens": tokens,
        "form": form or TokenCreateForm(customer=request.customer),
        "rotate_form": RotateForm(),
        "issued": issued,
        "snippets": snippets(issued.plaintext) if issued else snippets(),
        "model": SANDBOX_MODEL,
        "form_key": form_key_issue(user=request.user, purpose="customer_token"),
    }
    return render(request, "customer/tokens.html", context, status=status)


@customer_required
@never_cache
def customer_tokens(request):
    if request.method != "POST":
        return _tokens_page(request)
    form = TokenCreateForm(request.POST, customer=request.customer)
    if form.is_valid() and not form_key_use(request=request, purpose="customer_token"):
        form.add_error(None, ALREADY_SENT)  # a reload of the page that showed the token
        return _tokens_page(request, form=form, status=409)
    if form.is_valid():
        try:
            issued = services.token_create(
                customer=request.customer,
                label=form.cleaned_data["label"],
                expires_at=form.expires_at(),
                limits=form.limits(),
                within_customer=True,
                **_audit(request),
            )
        except ValidationError as error:
            for message in error.messages:
                form.add_error(None, message)
        else:
            return _tokens_page(request, issued=issued)
    return _tokens_page(request, form=form, status=400)


@customer_required
@never_cache
@require_POST
def customer_token_rotate(request, token_id):
    token = _own_token(request, token_id)
    form = RotateForm(request.POST)
    if not form.is_valid():
        messages.error(request, "The grace period must be between 0 hours and 90 days.")
        return redirect("customer:customer_tokens")
    hours = form.cleaned_data["grace_hours"]
    if page := confirm_first(
        request,
        title=f"Rotate token “{token.label}”?",
        message=f"You get a new token, shown once. {token.masked} keeps working for "
        f"{hours:g} hour(s), then stops: switch your programs to the new token before then.",
        button="Rotate token",
        cancel_url=reverse("customer:customer_tokens"),
        danger=False,
    ):
        return page
    if not form_key_use(request=request, purpose="customer_token"):
        messages.error(request, ALREADY_SENT)
        return redirect("customer:customer_tokens")
    try:
        issued = services.token_rotate(
            token=token, grace_hours=form.cleaned_data["grace_hours"], **_audit(request)
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("customer:customer_tokens")
    return _tokens_page(request, issued=issued)


@customer_required
@never_cache
def customer_token_limits(request, token_id):
    """A token's own limits, within the account's: no number above the account's limit, only
    models the account may use. Empty fields: the account's limits alone apply."""
    token = _own_token(request, token_id)
    form = TokenLimitsForm(
        request.POST if request.method == "POST" else None,
        initial=TokenLimitsForm.initial_for(token),
        customer=request.customer,
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.token_update_limits(
                token=token, within_customer=True, **form.limits(), **_audit(request)
            )
        except ValidationError as error:
            for message in error.messages:
                form.add_error(None, message)
        else:
            messages.success(request, f"Limits of token {token.masked} saved.")
            return redirect("customer:customer_tokens")
    return render(
        request,
        "customer/token_limits.html",
        {"customer": request.customer, "token": token, "form": form},
        status=400 if form.is_bound and form.errors else 200,
    )


@customer_required
@require_POST
def customer_token_revoke(request, token_id):
    token = _own_token(request, token_id)
    if page := confirm_first(
        request,
        title=f"Revoke token “{token.label}”?",
        message=f"Requests with {token.masked} are refused at once. This cannot be undone.",
        button="Revoke token",
        cancel_url=reverse("customer:customer_tokens"),
    ):
        return page
    services.token_revoke(token=token, **_audit(request))
    messages.success(request, f"Token {token.masked} revoked: it stopped working.")
    return redirect("customer:customer_tokens")


class AlertSettingsForm(UsageSettingsForm):
    """What a customer may set: its alert thresholds and summary emails (staff set the rest)."""

    class Meta(UsageSettingsForm.Meta):
        fields = [
            "monthly_token_percents",
            "daily_request_percents",
            "monthly_budget_percents",
            "summary_frequency",
        ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        del self.fields["regenerate_secret"]
        self.fields["monthly_token_percents"].label = "Alert at % of the monthly token quota"
        self.fields["daily_request_percents"].label = "Alert at % of the daily request limit"
        self.fields["monthly_budget_percents"].label = "Alert at % of the monthly budget"
        self.fields["summary_frequency"].label = "Usage summary email"


@customer_required
def customer_account(request):
    customer = request.customer
    invite_form = InviteForm(prefix="invite")
    settings_form = AlertSettingsForm(instance=usage_settings_for(customer=customer))
    status = 200
    if request.method == "POST" and request.POST.get("action") == "invite":
        invite_form = InviteForm(request.POST, prefix="invite")
        if invite_form.is_valid():
            try:
                user = customer_user_invite(
                    customer=customer,
                    email=invite_form.cleaned_data["email"],
                    full_name=invite_form.cleaned_data["full_name"],
                    **_audit(request),
                )
            except ValidationError as error:
                for message in error.messages:
                    invite_form.add_error(None, message)
            else:
                messages.success(request, f"Invitation sent to {user.email}.")
                return redirect("customer:customer_account")
        status = 400
    elif request.method == "POST" and request.POST.get("action") == "alerts":
        settings_form = AlertSettingsForm(
            request.POST, instance=usage_settings_for(customer=customer)
        )
        if settings_form.is_valid():
            usage_settings_update(
                customer=customer,
                **{
                    name: settings_form.cleaned_data[name] for name in AlertSettingsForm.Meta.fields
                },
            )
            messages.success(request, "Your alert and email preferences are saved.")
            return redirect("customer:customer_account")
        status = 400
    context = {
        "customer": customer,
        "users": paginate(request, customer.users.order_by("email", "pk"), per_page=PAGE_SIZE),
        "invite_form": invite_form,
        "settings_form": settings_form,
    }
    return render(request, "customer/account.html", context, status=status)
