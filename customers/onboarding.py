"""Writes that span several entities: onboarding, inviting customer users, bulk actions."""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F

from core.models import User

from .audit import audit_record
from .models import Customer
from .services import (
    DEFAULT,
    IssuedToken,
    customer_create,
    customer_reactivate,
    customer_suspend,
    customer_update_limits,
    token_create,
)


def customer_user_invite(
    *,
    customer: Customer,
    email: str,
    full_name: str = "",
    actor=None,
    ip: str | None = None,
    source: str = "",
) -> User:
    """A login for the customer, without a password: the invitation email links to set one."""
    from .tasks import send_customer_invite

    email = User.objects.normalize_email((email or "").strip()).lower()
    from django.core.validators import validate_email

    validate_email(email)
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationError("A user with this email address already exists.")
    with transaction.atomic():
        user = User(email=email, full_name=(full_name or "").strip(), customer=customer)
        user.set_unusable_password()
        user.save()
        audit_record(
            customer=customer,
            actor=actor,
            action="user.invite",
            object_type="user",
            object_id=user.pk,
            after={"email": email, "full_name": user.full_name},
            ip=ip,
            source=source,
        )
        transaction.on_commit(lambda: send_customer_invite.delay(user.pk))
    return user


def customer_user_set_active(
    *, user: User, active: bool, actor=None, ip: str | None = None, source: str = ""
) -> User:
    """Disable or re-enable a customer's login; a disabled user is signed out at once."""
    if user.is_staff or user.customer_id is None:
        raise ValidationError("Only customer users are managed here.")
    with transaction.atomic():
        if user.is_active != active:
            changes = {"is_active": active}
            if not active:  # every session ends now, and stays ended after a re-enable
                changes["session_epoch"] = F("session_epoch") + 1
            User.objects.filter(pk=user.pk).update(**changes)
            audit_record(
                customer=user.customer,
                actor=actor,
                action="user.enable" if active else "user.disable",
                object_type="user",
                object_id=user.pk,
                before={"email": user.email, "is_active": user.is_active},
                after={"email": user.email, "is_active": active},
                ip=ip,
                source=source,
            )
    user.refresh_from_db()
    return user


def customer_user_resend_invite(
    *, user: User, actor=None, ip: str | None = None, source: str = ""
) -> None:
    """A fresh set-password link, for a user who has not chosen a password yet."""
    from .tasks import send_customer_invite

    if user.is_staff or user.customer_id is None or user.has_usable_password():
        raise ValidationError("Only a customer user who has not set a password can be re-invited.")
    if not user.is_active:
        raise ValidationError("This user is disabled; enable it first.")
    with transaction.atomic():
        audit_record(
            customer=user.customer,
            actor=actor,
            action="user.reinvite",
            object_type="user",
            object_id=user.pk,
            after={"email": user.email},
            ip=ip,
            source=source,
        )
        transaction.on_commit(lambda: send_customer_invite.delay(user.pk))


def customer_onboard(
    *,
    name: str,
    contact_email: str,
    user_email: str,
    user_full_name: str = "",
    token_label: str = "default",  # noqa: S107 (a label, not a secret)
    token_expires_at=DEFAULT,
    actor=None,
    ip: str | None = None,
    source: str = "",
    **fields,
) -> tuple[Customer, User, IssuedToken]:
    """Customer, first user (invited by email) and first token, all or nothing."""
    with transaction.atomic():
        customer = customer_create(
            name=name, contact_email=contact_email, actor=actor, ip=ip, source=source, **fields
        )
        user = customer_user_invite(
            customer=customer,
            email=user_email,
            full_name=user_full_name,
            actor=actor,
            ip=ip,
            source=source,
        )
        issued = token_create(
            customer=customer,
            label=token_label,
            expires_at=token_expires_at,
            actor=actor,
            ip=ip,
            source=source,
        )
    return customer, user, issued


def customers_bulk_suspend(*, customers, actor=None, ip=None, source="") -> int:
    changed = 0
    with transaction.atomic():
        for customer in customers:
            if customer.status == Customer.Status.ACTIVE:
                customer_suspend(customer=customer, actor=actor, ip=ip, source=source)
                changed += 1
    return changed


def customers_bulk_reactivate(*, customers, actor=None, ip=None, source="") -> int:
    changed = 0
    with transaction.atomic():
        for customer in customers:
            if customer.status == Customer.Status.SUSPENDED:
                customer_reactivate(customer=customer, actor=actor, ip=ip, source=source)
                changed += 1
    return changed


def customers_bulk_set_limits(*, customers, actor=None, ip=None, source="", **limits) -> int:
    """The same limits on every selected customer, all or nothing."""
    with transaction.atomic():
        for customer in customers:
            customer_update_limits(customer=customer, actor=actor, ip=ip, source=source, **limits)
    return len(customers)


def customer_create_with_token(
    *,
    name: str,
    contact_email: str,
    plaintext: str | None = None,
    label: str = "default",
    expires_at=DEFAULT,
    actor=None,
    ip: str | None = None,
    source: str = "",
    **limits,
) -> tuple[Customer, IssuedToken]:
    """`customers create` on the command line: a customer (with `limits`, see customer_create)
    and its first token, all or nothing."""
    with transaction.atomic():
        customer = customer_create(
            name=name, contact_email=contact_email, actor=actor, ip=ip, source=source, **limits
        )
        issued = token_create(
            customer=customer,
            label=label,
            expires_at=expires_at,
            plaintext=plaintext,
            actor=actor,
            ip=ip,
            source=source,
        )
    return customer, issued
