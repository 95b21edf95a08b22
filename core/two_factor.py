"""Two-factor sign-in: a code from an authenticator app after the password (or after single
sign-on), and single-use recovery codes for a lost phone. The devices are django-otp's: a TOTP
device for the app, a static device holding the recovery codes.

Who is asked: every user with a confirmed authenticator (customer users turn it on for
themselves on their security page), and, with STAFF_REQUIRE_2FA, every staff user, who
enrols at their next login before reaching any page.

The first factor never signs a session in on its own: it leaves a *pending sign-in* in the
session (who, through which backend, the user's session hash, until when) and the code step
completes it with `django.contrib.auth.login`. So no view, API call or admin page ever sees a
user who has only given the password.

Wrong codes are failed logins to django-axes (the lockout per email and address that wrong
passwords already have), and each device keeps django-otp's throttle: after a wrong code the
next try waits 1, 2, 4 ... seconds, from any address.
"""

import math
import re
import time

from django.conf import settings
from django.contrib import auth
from django.db import transaction
from django.db.models import F
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from .models import User

PENDING_KEY = "two_factor_pending"
PENDING_SECONDS = 300
RECOVERY_CODE_COUNT = 10
APP_DEVICE_NAME = "Authenticator app"
RECOVERY_DEVICE_NAME = "Recovery codes"

APP_CODE = re.compile(r"[0-9]{6}")
RECOVERY_CODE = re.compile(r"[a-z2-7]{8}")

WRONG_CODE = "That code is not right. Check the time on your phone, or use a recovery code."
EXPIRED = "Your login took too long. Log in again."


class CodeRefused(Exception):
    """A code was not accepted; the message says why (wrong, or wait before trying again)."""


# --- who needs what -----------------------------------------------------------------------


def has_two_factor(user) -> bool:
    return TOTPDevice.objects.filter(user=user, confirmed=True).exists()


def two_factor_required(user) -> bool:
    return bool(user.is_staff and settings.STAFF_REQUIRE_2FA)


def session_verified(request) -> bool:
    """This session passed a code step (django-otp keeps the device used in the session)."""
    return bool(request.session.get(DEVICE_ID_SESSION_KEY))


def safe_next(request, url: str | None) -> str:
    if url and url_has_allowed_host_and_scheme(
        url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return url
    return reverse(settings.LOGIN_REDIRECT_URL)


# --- the pending sign-in --------------------------------------------------------------------


def begin_login(request, user, *, backend: str, next_url: str | None):
    """The first factor (password or single sign-on) accepted `user`: log in now if no code is
    needed, else keep a pending sign-in and answer with a redirect to the code or enrolment
    page. Returns the response to send, or None when the user is now logged in."""
    if has_two_factor(user):
        step = "login_code"
    elif two_factor_required(user):
        step = "two_factor_setup"
    else:
        request.session.pop(PENDING_KEY, None)
        auth.login(request, user, backend=backend)
        return None
    request.session.cycle_key()  # a session key planted before the password is of no use
    request.session[PENDING_KEY] = {
        "user": user.pk,
        "backend": backend,
        "hash": user.get_session_auth_hash(),
        "until": time.time() + PENDING_SECONDS,
        "next": safe_next(request, next_url),
    }
    return redirect(step)


def pending_user(request):
    """The user whose sign-in waits for a code in this session, if it is still valid: not
    expired, the user still active, their password and role unchanged since the first step."""
    data = request.session.get(PENDING_KEY)
    if not isinstance(data, dict):
        return None
    user = None
    if float(data.get("until") or 0) >= time.time():
        user = User.objects.filter(pk=data.get("user"), is_active=True).first()
    if user is None or not constant_time_compare(
        user.get_session_auth_hash(), str(data.get("hash"))
    ):
        request.session.pop(PENDING_KEY, None)
        return None
    return user


def pending_drop(request) -> None:
    request.session.pop(PENDING_KEY, None)


def complete_login(request, user, device) -> str:
    """Finish the pending sign-in of `user`, who just gave a code of `device`: log in (a new
    session key) and record the device in the session. Returns where to go next."""
    data = request.session.pop(PENDING_KEY)
    user.otp_device = device  # django-otp stores it in the session as `login` runs
    auth.login(request, user, backend=data["backend"])
    return data.get("next") or reverse(settings.LOGIN_REDIRECT_URL)


def mark_verified(request, device) -> None:
    """A signed-in session (one from before STAFF_REQUIRE_2FA, or after enrolment) passed
    the code step."""
    request.session[DEVICE_ID_SESSION_KEY] = device.persistent_id


# --- codes ----------------------------------------------------------------------------------


def normalize_code(value: str) -> str:
    return re.sub(r"[\s-]", "", value or "").lower()


def _refuse_if_throttled(device) -> None:
    allowed, info = device.verify_is_allowed()
    if not allowed:
        until = (info or {}).get("locked_until")
        seconds = max(1, math.ceil((until - timezone.now()).total_seconds())) if until else 1
        raise CodeRefused(
            f"Too many wrong codes. Wait {seconds} second{'s' if seconds != 1 else ''} "
            "before trying again."
        )


def verify_code(user, code: str):
    """The device that accepts `code` (6 digits: the authenticator app; 8 letters and digits:
    a recovery code, used up), else CodeRefused. A wrong code counts on the device's throttle."""
    code = normalize_code(code)
    if APP_CODE.fullmatch(code):
        devices = TOTPDevice.objects.filter(user=user, confirmed=True)
    elif RECOVERY_CODE.fullmatch(code):
        devices = StaticDevice.objects.filter(user=user, confirmed=True)
    else:
        raise CodeRefused(WRONG_CODE)
    with transaction.atomic():
        for device in devices.select_for_update().order_by("pk"):
            _refuse_if_throttled(device)
            if device.verify_token(code):
                return device
    raise CodeRefused(WRONG_CODE)


# --- enrolment, recovery codes, turning it off ----------------------------------------------


def app_device_for_enrolment(user) -> TOTPDevice:
    """The unconfirmed authenticator device of `user`: the same secret on every reload of the
    enrolment page until a first code confirms it."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("-pk").first()
    if device is None:
        device = TOTPDevice.objects.create(user=user, name=APP_DEVICE_NAME, confirmed=False)
    return device


def enrol_confirm(user, code: str) -> tuple[TOTPDevice, list[str]]:
    """Confirm the enrolment of `user` with a first code from their app: the device becomes
    the one used at login (any older one is removed), ten new recovery codes are made, and the
    user's other sessions end. Returns the device and the recovery codes (shown once)."""
    code = normalize_code(code)
    codes = None
    with transaction.atomic():
        device = (
            TOTPDevice.objects.select_for_update()
            .filter(user=user, confirmed=False)
            .order_by("-pk")
            .first()
        )
        if device is None:
            raise CodeRefused("Start again: open the set-up page to get a new QR code.")
        _refuse_if_throttled(device)
        # A wrong code is counted on the device's throttle (committed: no raise in here).
        if APP_CODE.fullmatch(code) and device.verify_token(code):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            TOTPDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
            codes = recovery_codes_replace(user)
            User.objects.filter(pk=user.pk).update(session_epoch=F("session_epoch") + 1)
    if codes is None:
        raise CodeRefused("That code is not right. Enter the 6-digit code your app shows now.")
    user.refresh_from_db(fields=["session_epoch"])
    return device, codes


def recovery_codes_replace(user) -> list[str]:
    """Ten new single-use recovery codes for `user`; the old ones stop working."""
    with transaction.atomic():
        device = StaticDevice.objects.filter(user=user).order_by("pk").first()
        if device is None:
            device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME)
        StaticDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.token_set.all().delete()
        codes: set[str] = set()
        while len(codes) < RECOVERY_CODE_COUNT:
            codes.add(StaticToken.random_token())
        StaticToken.objects.bulk_create(StaticToken(device=device, token=c) for c in codes)
        device.confirmed = True
        device.throttle_reset(commit=False)
        device.save()
    return sorted(codes)


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def two_factor_remove(user) -> None:
    """Turn two-factor sign-in off for `user`: their app and recovery codes stop working."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user).delete()
        StaticDevice.objects.filter(user=user).delete()


def display_recovery_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


# --- the staff requirement, for sessions that started before it -----------------------------


class StaffTwoFactorMiddleware:
    """With STAFF_REQUIRE_2FA on, a signed-in staff session that has not given a code (one
    that started before the setting was turned on) reaches only the code and enrolment pages,
    log out and static files. Logins since then give the code before the session exists."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if settings.STAFF_REQUIRE_2FA and not self._exempt(request.path):
            user = request.user
            if user.is_authenticated and user.is_staff and not session_verified(request):
                target = "login_code" if has_two_factor(user) else "two_factor_setup"
                query = urlencode({"next": request.get_full_path()[:500]})
                return redirect(f"{reverse(target)}?{query}")
        return self.get_response(request)

    @staticmethod
    def _exempt(path: str) -> bool:
        allowed = [reverse(name) for name in ("login_code", "two_factor_setup", "logout")]
        allowed.append(reverse("login"))
        return path in allowed or path.startswith((settings.STATIC_URL, "/static/", "/healthz"))
