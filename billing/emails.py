"""Billing emails: a subject / text / html template trio each, in templates/email/billing/."""

from decimal import ROUND_FLOOR, Decimal

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from customers.models import Customer

from .documents import invoice_pdf_bytes
from .models import Invoice
from .selectors import credit_balance


def recipients(customer) -> list[str]:
    """The contact address and the extra ones the customers app keeps, if any."""
    return list(getattr(customer, "contact_emails", None) or [customer.contact_email])


def _message(name: str, context: dict, to: list[str]) -> EmailMultiAlternatives:
    context = {**context, "portal_url": settings.PORTAL_BASE_URL}
    subject = render_to_string(f"email/billing/{name}_subject.txt", context).strip()
    text = render_to_string(f"email/billing/{name}.txt", context)
    html = render_to_string(f"email/billing/{name}.html", context)
    message = EmailMultiAlternatives(" ".join(subject.split()), text, to=to)
    message.attach_alternative(html, "text/html")
    return message


def invoice_issued_email_send(*, invoice_id) -> None:
    invoice = Invoice.objects.select_related("customer").get(pk=invoice_id)
    if invoice.status == Invoice.Status.DRAFT:
        return
    message = _message("invoice_issued", {"invoice": invoice}, recipients(invoice.customer))
    message.attach(f"{invoice.number}.pdf", invoice_pdf_bytes(invoice), "application/pdf")
    message.send()


def low_balance_email_send(*, customer_id, available: str = "") -> None:
    """`available` (a prepaid customer's credit available now, as the reconciler read it) is
    shown instead of the wallet balance, rounded down to the cent."""
    customer = Customer.objects.get(pk=customer_id)
    from .wallet import billing_profile_get

    balance = credit_balance(customer.pk)
    if available:
        balance = Decimal(available).quantize(Decimal("0.01"), rounding=ROUND_FLOOR)
    context = {
        "customer": customer,
        "balance": balance,
        "available_now": bool(available),
        "threshold": billing_profile_get(customer_id=customer.pk).low_balance_threshold,
        "currency": settings.BILLING_CURRENCY,
    }
    _message("low_balance", context, recipients(customer)).send()


def payment_link_email_send(*, payment_id) -> None:
    """Staff's payment link: the invoice's Checkout address, while the session is open."""
    from .models import Payment

    payment = Payment.objects.select_related("invoice__customer").get(pk=payment_id)
    if payment.invoice is None or payment.status != Payment.Status.OPEN:
        return  # paid or closed in the meantime
    context = {"invoice": payment.invoice, "payment": payment}
    _message("payment_link", context, recipients(payment.invoice.customer)).send()
