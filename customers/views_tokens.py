"""Staff pages for tokens: create, rotate and revoke (confirmed), their own limits, and the
one-time display."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.cache import never_cache

from core.access import staff_required
from core.once import ALREADY_SENT, form_key_issue, form_key_use
from core.web import audit_context, posted_data

from . import services
from .forms import RotateForm, TokenCreateForm, TokenLimitsForm
from .views_helpers import get_customer_or_404, get_token_or_404

CURL_MODEL = "sandbox.echo-v1"


@staff_required
def token_create(request, pk):
    customer = get_customer_or_404(pk)
    form = TokenCreateForm(posted_data(request), customer=customer)
    status = 200
    if request.method == "POST" and form.is_valid():
        if not form_key_use(request=request, purpose="token_create"):
            form.add_error(None, ALREADY_SENT)  # a reload of the page that showed the token
            status = 409
        else:
            try:
                issued = services.token_create(
                    customer=customer,
                    label=form.cleaned_data["label"],
                    expires_at=form.expires_at(),
                    limits=form.limits(),
                    **audit_context(request),
                )
            except ValidationError as error:
                for message in error.messages:
                    form.add_error(None, message)
            else:
                return render_issued(request, issued)
    context = {"customer": customer, "form": form, "form_key": _key(request, "token_create")}
    return render(request, "staff/customers/token_create.html", context, status=status)


def _key(request, purpose: str) -> str:
    return form_key_issue(user=request.user, purpose=purpose)


@staff_required
def token_rotate(request, pk, token_id):
    customer = get_customer_or_404(pk)
    token = get_token_or_404(customer, token_id)
    form = RotateForm(posted_data(request))
    if request.method == "POST" and form.is_valid():
        if not form_key_use(request=request, purpose="token_rotate"):
            messages.error(request, ALREADY_SENT)
            return redirect("staff:customer_detail", pk=customer.pk)
        try:
            issued = services.token_rotate(
                token=token, grace_hours=form.cleaned_data["grace_hours"], **audit_context(request)
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return redirect("staff:customer_detail", pk=customer.pk)
        return render_issued(request, issued)
    return render(
        request,
        "staff/customers/token_rotate.html",
        {
            "customer": customer,
            "token": token,
            "form": form,
            "form_key": _key(request, "token_rotate"),
        },
    )


@staff_required
def token_limits(request, pk, token_id):
    """The token's own limits, inside the customer's. Staff may set any value (a number above
    the customer's limit changes nothing: the customer's refuses first); models must be among
    the customer's."""
    customer = get_customer_or_404(pk)
    token = get_token_or_404(customer, token_id)
    form = TokenLimitsForm(
        posted_data(request), initial=TokenLimitsForm.initial_for(token), customer=customer
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.token_update_limits(token=token, **form.limits(), **audit_context(request))
        except ValidationError as error:
            for message in error.messages:
                form.add_error(None, message)
        else:
            messages.success(
                request, f"Limits of token {token.masked} saved; the proxy applies them at once."
            )
            return redirect("staff:customer_detail", pk=customer.pk)
    return render(
        request,
        "staff/customers/token_limits.html",
        {"customer": customer, "token": token, "form": form},
        status=400 if form.is_bound and form.errors else 200,
    )


@staff_required
def token_revoke(request, pk, token_id):
    customer = get_customer_or_404(pk)
    token = get_token_or_404(customer, token_id)
    if request.method == "POST":
        services.token_revoke(token=token, **audit_context(request))
        messages.success(request, f"Token {token.masked} revoked: it stopped working.")
        return redirect("staff:customer_detail", pk=customer.pk)
    return render(
        request, "staff/customers/token_revoke.html", {"customer": customer, "token": token}
    )


def render_issued(request, issued, *, invited: str = ""):
    """The one display of a new token: rendered in the answer to the POST that created it.

    The plaintext is never stored (not in the session, not in a cache): a reload shows a
    browser warning, and leaving the page loses the token, which is the point.
    """
    response = render(
        request,
        "staff/customers/token_issued.html",
        {
            "issued": True,
            "invited": invited,
            "customer": issued.token.customer,
            "token": issued.token,
            "plaintext": issued.plaintext,
            "curl": curl_example(issued.plaintext),
            "proxy_base_url": settings.PROXY_BASE_URL,
            "model": CURL_MODEL,
        },
    )
    add_never_cache_headers(response)
    return response


@staff_required
@never_cache
def token_issued(request):
    """Where a reload or a bookmark of the one-time page lands: the token is not kept."""
    return render(request, "staff/customers/token_issued.html", {"issued": None})


def curl_example(plaintext: str) -> str:
    base = settings.PROXY_BASE_URL.rstrip("/")
    return (
        f"curl -sS {base}/v1/chat/completions \\\n"
        f'  -H "Authorization: Bearer {plaintext}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f'  -d \'{{"model": "{CURL_MODEL}", '
        '"messages": [{"role": "user", "content": "Hello!"}]}\''
    )
