"""Emails to customers: the invitation to set a password, and token expiry warnings.

Each email is three templates: <name>_subject.txt, <name>.txt and <name>.html.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.tokens import default_token_generator
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from core.models import User

from .models import Customer, Token

logger = logging.getLogger(__name__)


def send_templated(*, name: str, to: list[str], context: dict) -> None:
    context = {"portal_base_url": settings.PORTAL_BASE_URL, **context}
    subject = render_to_string(f"email/{name}_subject.txt", context).strip().replace("\n", " ")
    text = render_to_string(f"email/{name}.txt", context)
    html = render_to_string(f"email/{name}.html", context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, to)
    message.attach_alternative(html, "text/html")
    message.send()


def set_password_url(user: User) -> str:
    path = reverse(
        "password_reset_confirm",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )
    return settings.PORTAL_BASE_URL.rstrip("/") + path


def send_invite_email(*, user_id: int) -> None:
    user = User.objects.select_related("customer").filter(pk=user_id).first()
    if user is None or user.has_usable_password():
        return  # gone, or already set a password
    send_templated(
        name="customer_invite",
        to=[user.email],
        context={
            "user": user,
            "customer": user.customer,
            "set_password_url": set_password_url(user),
        },
    )
    logger.info("invitation sent to user %s", user.pk)


def token_expiry_warnings_send(*, now=None) -> int:
    """Mail each customer once per token that expires within TOKEN_EXPIRY_WARNING_DAYS."""
    now = now or timezone.now()
    horizon = now + timedelta(days=settings.TOKEN_EXPIRY_WARNING_DAYS)
    due = (
        Token.objects.filter(
            status=Token.Status.ACTIVE,
            grace_until__isnull=True,
            expiry_warning_sent_at__isnull=True,
            expires_at__gt=now,
            expires_at__lte=horizon,
            customer__status=Customer.Status.ACTIVE,
        )
        .select_related("customer")
        .order_by("expires_at")
    )
    sent = 0
    for token in due:
        # Claim the warning first, so two workers never mail the same one.
        claimed = Token.objects.filter(pk=token.pk, expiry_warning_sent_at__isnull=True).update(
            expiry_warning_sent_at=now
        )
        if not claimed:
            continue
        customer = token.customer
        recipients = customer.contact_emails + list(
            customer.users.filter(is_active=True).values_list("email", flat=True)
        )
        try:
            send_templated(
                name="token_expiry_warning",
                to=sorted(set(recipients)),
                context={"customer": customer, "token": token},
            )
        except Exception as error:
            # Release the claim so tomorrow's run tries again; a mail server that is down must
            # not silently cost the customer their only warning. The other tokens still go.
            Token.objects.filter(pk=token.pk, expiry_warning_sent_at=now).update(
                expiry_warning_sent_at=None
            )
            logger.warning(
                "token expiry warning for token %s not sent (%s); will retry on the next run",
                token.pk,
                type(error).__name__,
            )
            continue
        sent += 1
    return sent


def _token_recipients(customer: Customer) -> list[str]:
    users = customer.users.filter(is_active=True).values_list("email", flat=True)
    return sorted(set(customer.contact_emails + list(users)))


def _tokens_page_url() -> str:
    return settings.PORTAL_BASE_URL.rstrip("/") + reverse("customer:customer_tokens")


def send_rotation_notice(*, token: Token, rotate_on) -> None:
    """Before a scheduled rotation (customers/rotation.py): which token, and on which day.
    Names the token by label and masked form only: there is no new token yet."""
    customer = token.customer
    send_templated(
        name="token_rotation_notice",
        to=_token_recipients(customer),
        context={
            "customer": customer,
            "token": token,
            "rotate_on": rotate_on,
            "grace_days": settings.TOKEN_SCHEDULED_ROTATION_GRACE_DAYS,
            "every_days": customer.rotate_every_days,
            "tokens_url": _tokens_page_url(),
        },
    )


def send_rotation_reminder(*, token: Token) -> None:
    """During the grace period of a scheduled rotation: the old token's end, and where to
    reveal the new one. Never the new token: it is generated only when revealed."""
    customer = token.customer
    send_templated(
        name="token_rotation_reminder",
        to=_token_recipients(customer),
        context={"customer": customer, "token": token, "tokens_url": _tokens_page_url()},
    )
