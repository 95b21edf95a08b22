"""Stripe payments on the pages: a customer pays an invoice or buys prepaid credit (both
redirect to Stripe Checkout), staff email a payment link, and Stripe's webhook. Every view is a
404 while Stripe is not configured. The rules are in billing/payments.py and
billing/stripe_events.py."""

import uuid
from functools import wraps

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from core.access import customer_required, staff_required
from core.number_input import ungroup
from core.web import posted_data

from . import payments, selectors
from .models import Invoice
from .stripe_events import webhook_receive
from .stripe_gateway import PaymentError, billing_currency, stripe_enabled


def stripe_required(view):
    """A 404 while Stripe is not configured (no keys): the portal has no payment pages."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        if not stripe_enabled():
            raise Http404("Card payments are not set up.")
        return view(request, *args, **kwargs)

    return wrapped


class CreditPurchaseForm(forms.Form):
    amount = forms.CharField(
        max_length=20,
        label="Amount",
        widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"}),
    )
    # The form's own reference: sent again by a double click, it gives back the same session.
    reference = forms.CharField(max_length=64, required=False, widget=forms.HiddenInput)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        least, most = payments.credit_purchase_limits()
        self.fields[
            "amount"
        ].help_text = (
            f"In {billing_currency()}, from {least} to {most}, whole cents (e.g. 50 or 49.90)."
        )
        if not self.is_bound:
            self.initial["reference"] = str(uuid.uuid4())

    def clean_amount(self):
        typed = self.cleaned_data["amount"]
        plain = ungroup(typed, decimals=True)  # "1,000.50" as "1000.50", like every page
        try:
            return payments.credit_purchase_amount(typed if plain is None else plain)
        except PaymentError as exc:
            raise forms.ValidationError(str(exc)) from None


def _to_checkout(payment) -> HttpResponseRedirect:
    # 303: the browser follows with a GET to Stripe's payment page.
    response = HttpResponseRedirect(payment.checkout_url)
    response.status_code = 303
    return response


@customer_required
@stripe_required
@require_POST
def invoice_pay(request, invoice_id):
    invoice = selectors.invoice_get_for_customer(request.customer, invoice_id)
    try:
        payment = payments.invoice_checkout_open(invoice=invoice, by=request.user)
    except PaymentError as exc:
        messages.error(request, str(exc))
        return redirect("customer:invoice_detail", invoice_id=invoice.pk)
    return _to_checkout(payment)


@customer_required
@stripe_required
def credit_buy(request):
    form = CreditPurchaseForm(posted_data(request))
    if request.method == "POST" and form.is_valid():
        try:
            payment = payments.credit_checkout_open(
                customer=request.customer,
                amount=form.cleaned_data["amount"],
                reference=form.cleaned_data["reference"],
                by=request.user,
            )
        except PaymentError as exc:
            form.add_error(None, str(exc))
        else:
            return _to_checkout(payment)
    return render(
        request,
        "billing/customer_credit_buy.html",
        {"form": form, "balance": selectors.credit_balance(request.customer.pk)},
        status=400 if form.is_bound and form.errors else 200,
    )


@staff_required
@stripe_required
@require_POST
def invoice_payment_link(request, invoice_id):
    invoice = get_object_or_404(Invoice.objects.select_related("customer"), pk=invoice_id)
    try:
        payment = payments.invoice_payment_link_send(invoice=invoice, by=request.user)
    except PaymentError as exc:
        messages.error(request, str(exc))
    else:
        until = (
            f" It works until {payment.expires_at:%Y-%m-%d %H:%M} UTC."
            if payment.expires_at
            else ""
        )
        messages.success(
            request,
            f"Payment link for {payment.amount} {payment.currency} emailed to "
            f"{', '.join(invoice.customer.contact_emails)}.{until}",
        )
    return redirect("staff:billing_invoice_detail", invoice_id=invoice.pk)


@csrf_exempt
@stripe_required
def stripe_webhook(request):
    """Stripe's events (signed with STRIPE_WEBHOOK_SECRET): 200 once recorded, 400 refused."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    answer = webhook_receive(
        payload=request.body, signature=request.headers.get("Stripe-Signature")
    )
    return JsonResponse(answer.body, status=answer.status)
