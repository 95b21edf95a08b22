"""Customer self-service pages of the customers app: their own tokens and account.

Only `request.customer`'s tokens and users, ever: another customer's ids are 404. Writes go
through customers.services / customers.onboarding, audited with source "customer portal".
A new token is rendered in the POST response itself and never stored: reloading cannot show
it again (the response is never cached). So is the replacement the rotation policy prepared
(customers/rotation.py): generated when a customer user reveals it, shown that once.
"""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from core.access import customer_required
from core.once import ALREADY_SENT, form_key_issue, form_key_use
from core.web import audit_context, confirm_first, paginate
from customers.snippets import SANDBOX_MODEL, snippets

from . import live, rotation, selectors, services
from .forms import RotateForm, TokenCreateForm, TokenLimitsForm

PAGE_SIZE = 50


def _own_token(request, token_id):
    token = request.customer.tokens.filter(pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    return token


def _tokens_page(request, *, form=None, issued=None, status=200):
    tokens = paginate(request, selectors.token_list(customer=request.customer), per_page=PAGE_SIZE)
    tokens.object_list = rotation.with_rotation_days(
        live.with_last_use(tokens.object_list), request.customer
    )
    context = {
        "tokens": tokens,
        "awaiting_reveal": selectors.tokens_awaiting_reveal(customer=request.customer),
        "rotate_every_days": request.customer.rotate_every_days,
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
                **audit_context(request),
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
            token=token, grace_hours=form.cleaned_data["grace_hours"], **audit_context(request)
        )
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("customer:customer_tokens")
    return _tokens_page(request, issued=issued)


@customer_required
@never_cache
@require_POST
def customer_token_reveal(request, token_id):
    """The one display of a replacement the rotation policy prepared: generated now, rendered
    in this answer only. A second reveal (or a reload) shows nothing: it is gone."""
    token = _own_token(request, token_id)
    try:
        issued = rotation.token_reveal(token=token, **audit_context(request))
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("customer:customer_tokens")
    if issued is None:
        messages.error(
            request,
            f"The new token for “{token.label}” was already revealed: it cannot be shown again. "
            "If no one kept it, rotate or create a token.",
        )
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
                token=token, within_customer=True, **form.limits(), **audit_context(request)
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
    services.token_revoke(token=token, **audit_context(request))
    messages.success(request, f"Token {token.masked} revoked: it stopped working.")
    return redirect("customer:customer_tokens")
