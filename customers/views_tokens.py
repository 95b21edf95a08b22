"""Staff pages for tokens: create, rotate and revoke (confirmed), and the one-time display."""

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache

from portal.access import staff_required

from . import services
from .forms import RotateForm, TokenCreateForm
from .models import Customer
from .views_helpers import (
    audit_context,
    get_customer_or_404,
    get_token_or_404,
    pop_issued,
    remember_issued,
)

CURL_MODEL = "sandbox.echo-v1"


@staff_required
def token_create(request, pk):
    customer = get_customer_or_404(pk)
    form = TokenCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.token_create(
                customer=customer,
                label=form.cleaned_data["label"],
                expires_at=form.expires_at(),
                **audit_context(request),
            )
        except ValidationError as error:
            for message in error.messages:
                form.add_error(None, message)
        else:
            remember_issued(request, issued)
            return redirect("staff:token_issued")
    return render(
        request, "staff/customers/token_create.html", {"customer": customer, "form": form}
    )


@staff_required
def token_rotate(request, pk, token_id):
    customer = get_customer_or_404(pk)
    token = get_token_or_404(customer, token_id)
    form = RotateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            issued = services.token_rotate(
                token=token, grace_hours=form.cleaned_data["grace_hours"], **audit_context(request)
            )
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
            return redirect("staff:customer_detail", pk=customer.pk)
        remember_issued(request, issued)
        return redirect("staff:token_issued")
    return render(
        request,
        "staff/customers/token_rotate.html",
        {"customer": customer, "token": token, "form": form},
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


@staff_required
@never_cache
def token_issued(request):
    """Shows a new token once: the session entry is removed as it is read."""
    issued = pop_issued(request)
    context = {"issued": None}
    if issued:
        customer = Customer.objects.filter(pk=issued["customer_id"]).first()
        token = customer.tokens.filter(pk=issued["token_id"]).first() if customer else None
        if token is not None:
            context = {
                "issued": issued,
                "customer": customer,
                "token": token,
                "plaintext": issued["plaintext"],
                "curl": curl_example(issued["plaintext"]),
                "proxy_base_url": settings.PROXY_BASE_URL,
                "model": CURL_MODEL,
            }
    return render(request, "staff/customers/token_issued.html", context)


def curl_example(plaintext: str) -> str:
    base = settings.PROXY_BASE_URL.rstrip("/")
    return (
        f"curl -sS {base}/v1/chat/completions \\\n"
        f'  -H "Authorization: Bearer {plaintext}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        f'  -d \'{{"model": "{CURL_MODEL}", '
        '"messages": [{"role": "user", "content": "Hello!"}]}\''
    )
