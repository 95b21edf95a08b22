"""The login page and the two-factor pages: the code step, enrolment (QR code and secret,
confirmed by a first code, then the recovery codes shown once) and the security page where a
signed-in user makes new recovery codes or turns two-factor sign-in off.

The rules live in core/two_factor.py; docs/architecture.md ("Sign-in") describes the flow.
"""

from base64 import b32encode

import segno
from axes.handlers.proxy import AxesProxyHandler
from axes.helpers import get_lockout_response
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.signals import user_login_failed
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_totp.models import TOTPDevice

from . import two_factor as tf
from .forms import CodeForm, EmailAuthenticationForm
from .sso import sso_login_link
from .web import posted_data


class LoginView(auth_views.LoginView):
    """Email and password; then the code step when the user needs one (core/two_factor.py)."""

    authentication_form = EmailAuthenticationForm
    redirect_authenticated_user = True

    def form_valid(self, form):
        user = form.get_user()
        response = tf.begin_login(
            self.request, user, backend=user.backend, next_url=self.get_redirect_url()
        )
        return response or HttpResponseRedirect(self.get_success_url())

    def get_context_data(self, **kwargs):
        return super().get_context_data(**kwargs) | {"sso": sso_login_link()}


def _who(request):
    """(the user asked for a code, whether their sign-in is pending): a pending sign-in, or a
    signed-in session that has not given a code yet."""
    pending = tf.pending_user(request)
    if pending is not None:
        return pending, True
    if request.user.is_authenticated and not tf.session_verified(request):
        return request.user, False
    return None, False


@never_cache
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def login_code(request):
    expired = tf.PENDING_KEY in request.session and tf.pending_user(request) is None
    user, pending = _who(request)
    if user is None:
        if expired:
            messages.error(request, tf.EXPIRED)
        elif request.user.is_authenticated:
            return redirect(tf.safe_next(request, request.GET.get("next")))
        return redirect("login")
    if not tf.has_two_factor(user):
        if tf.two_factor_required(user):
            return redirect("two_factor_setup")
        tf.pending_drop(request)
        return redirect("login")
    credentials = {"username": user.email}
    if AxesProxyHandler.is_locked(request, credentials):
        tf.pending_drop(request)
        return get_lockout_response(request, credentials=credentials)
    form = CodeForm(posted_data(request))
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                device = tf.verify_code(user, form.cleaned_data["code"])
            except tf.CodeRefused as refused:
                form.add_error("code", str(refused))
                # A failed login to django-axes: the same lockout as wrong passwords.
                user_login_failed.send(sender=__name__, credentials=credentials, request=request)
                if getattr(request, "axes_locked_out", False):
                    tf.pending_drop(request)
            else:
                if pending:
                    return redirect(tf.complete_login(request, user, device))
                tf.mark_verified(request, device)
                return redirect(tf.safe_next(request, request.GET.get("next")))
        status = 400
    return render(
        request,
        "registration/login_code.html",
        {"form": form, "pending": pending, "email": user.email},
        status=status,
    )


def _qr_svg(device: TOTPDevice) -> str:
    qr = segno.make(device.config_url, error="m")
    svg = qr.svg_inline(scale=4, border=4, dark="#000", light="#fff", title="QR code")
    return mark_safe(svg)  # noqa: S308 - segno's own markup: paths only, no script


def _secret(device: TOTPDevice) -> str:
    secret = b32encode(device.bin_key).decode()
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _recovery_codes_page(request, codes, *, next_url, enrolled):
    return render(
        request,
        "registration/two_factor_recovery_codes.html",
        {
            "codes": [tf.display_recovery_code(c) for c in codes],
            "next_url": next_url,
            "enrolled": enrolled,
        },
    )


@never_cache
@sensitive_post_parameters("code")
@require_http_methods(["GET", "POST"])
def two_factor_setup(request):
    expired = tf.PENDING_KEY in request.session and tf.pending_user(request) is None
    pending = tf.pending_user(request)
    user = pending or (request.user if request.user.is_authenticated else None)
    if user is None:
        if expired:
            messages.error(request, tf.EXPIRED)
        return redirect("login")
    if tf.has_two_factor(user):
        if pending is not None:
            return redirect("login_code")
        messages.info(request, "Two-factor sign-in is already on.")
        return redirect("two_factor")
    device = tf.app_device_for_enrolment(user)
    form = CodeForm(posted_data(request), recovery=False)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                device, codes = tf.enrol_confirm(user, form.cleaned_data["code"])
            except tf.CodeRefused as refused:
                form.add_error("code", str(refused))
            else:
                if pending is not None:
                    next_url = tf.complete_login(request, user, device)
                else:
                    tf.mark_verified(request, device)
                    update_session_auth_hash(request, user)  # other sessions end; not this one
                    wanted = request.GET.get("next")
                    next_url = tf.safe_next(request, wanted) if wanted else reverse("two_factor")
                return _recovery_codes_page(request, codes, next_url=next_url, enrolled=True)
        status = 400
    context = {
        "form": form,
        "qr_svg": _qr_svg(device),
        "secret": _secret(device),
        "email": user.email,
        "required": tf.two_factor_required(user),
        "pending": pending is not None,
    }
    return render(request, "registration/two_factor_setup.html", context, status=status)


ACTIONS = {"recovery_codes": "recovery", "turn_off": "off"}


@never_cache
@login_required
@sensitive_post_parameters("recovery-code", "off-code")
@require_http_methods(["GET", "POST"])
def two_factor(request):
    """The security page: is two-factor sign-in on, new recovery codes, turn it off."""
    user = request.user
    enabled = tf.has_two_factor(user)
    forms = {action: CodeForm(prefix=prefix) for action, prefix in ACTIONS.items()}
    status = 200
    if request.method == "POST":
        status = 400
        action = request.POST.get("action")
        if not enabled:
            messages.error(request, "Two-factor sign-in is off: set it up first.")
        elif action not in ACTIONS:
            messages.error(request, "Choose what to do: new recovery codes, or turn it off.")
        else:
            form = forms[action] = CodeForm(request.POST, prefix=ACTIONS[action])
            if form.is_valid():
                try:
                    tf.verify_code(user, form.cleaned_data["code"])
                except tf.CodeRefused as refused:
                    form.add_error("code", str(refused))
                else:
                    if action == "recovery_codes":
                        codes = tf.recovery_codes_replace(user)
                        return _recovery_codes_page(
                            request, codes, next_url=reverse("two_factor"), enrolled=False
                        )
                    tf.two_factor_remove(user)
                    request.session.pop(DEVICE_ID_SESSION_KEY, None)
                    messages.success(request, "Two-factor sign-in is off.")
                    return redirect("two_factor")
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
    context = {
        "enabled": enabled,
        "since": getattr(device, "created_at", None),
        "required": tf.two_factor_required(user),
        "recovery_left": tf.recovery_codes_left(user) if enabled else 0,
        "recovery_form": forms["recovery_codes"],
        "off_form": forms["turn_off"],
    }
    return render(request, "registration/two_factor.html", context, status=status)
