"""Single sign-on for staff through OpenID Connect (django-allauth's provider), off unless
OIDC_PROVIDER_URL, OIDC_CLIENT_ID and OIDC_CLIENT_SECRET are set.

Who may sign in this way: an existing, active staff user (not a service account) whose email
the provider says is verified (`email_verified` true) and equal, ignoring case, to theirs. Nobody
is created or linked: allauth reads the provider's answer, and `pre_social_login` below takes
over before allauth would log in, sign up or connect anything. Customer users and unknown
emails are refused with a page that says why; customer users keep email and password.

A staff user matched this way goes on like a password login: the two-factor code step when
they have an authenticator or STAFF_REQUIRE_2FA asks for one (core/two_factor.py).
"""

import logging

from allauth.account.adapter import DefaultAccountAdapter
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.providers.openid_connect import views as oidc_views
from django.conf import settings
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path, reverse
from django.views.decorators.http import require_http_methods
from requests import RequestException

from .models import User
from .two_factor import begin_login, safe_next

log = logging.getLogger(__name__)

BACKEND = "allauth.account.auth_backends.AuthenticationBackend"
NOT_STAFF = "Single sign-on is for staff. Customer accounts log in with their email and password."
UNVERIFIED = (
    "Your sign-in provider did not confirm that your email address is verified, so it cannot "
    "be matched to a staff account."
)
UNREACHABLE = (
    "The sign-in provider cannot be reached just now. Try again, or log in with a password."
)
FAILED = "Single sign-on did not complete. Try again, or log in with your email and password."


def sso_enabled() -> bool:
    return bool(
        settings.OIDC_PROVIDER_URL and settings.OIDC_CLIENT_ID and settings.OIDC_CLIENT_SECRET
    )


def sso_login_link() -> dict | None:
    """What the login page shows: the button's label and address, or None when it is off."""
    if not sso_enabled():
        return None
    return {
        "name": settings.OIDC_PROVIDER_NAME,
        "url": reverse("openid_connect_login", kwargs={"provider_id": settings.SSO_PROVIDER_ID}),
    }


def refusal(request, message: str, status: int = 403):
    return render(request, "registration/sso_refused.html", {"message": message}, status=status)


def user_for_verified_email(emails: list[str]):
    """The user (of any role) one of these verified emails belongs to, or None."""
    for email in emails:
        user = User.objects.filter(email__iexact=email.strip()).first()
        if user is not None:
            return user
    return None


class StaffSocialAccountAdapter(DefaultSocialAccountAdapter):
    """Lets allauth talk to the provider, then decides itself who signs in."""

    def pre_social_login(self, request, sociallogin):
        verified = [a.email for a in sociallogin.email_addresses if a.verified and a.email]
        if not verified:
            raise ImmediateHttpResponse(refusal(request, UNVERIFIED))
        user = user_for_verified_email(verified)
        if user is None or not user.is_active or user.is_service_account:
            log.warning("single sign-on refused: no active staff account for %s", verified[0])
            raise ImmediateHttpResponse(
                refusal(
                    request,
                    f"There is no active staff account for {verified[0]}. Ask an "
                    "administrator to add you as staff first.",
                )
            )
        if not user.is_staff:
            log.warning("single sign-on refused: %s is a customer user", user.email)
            raise ImmediateHttpResponse(refusal(request, NOT_STAFF))
        next_url = sociallogin.get_redirect_url(request)
        response = begin_login(request, user, backend=BACKEND, next_url=next_url)
        raise ImmediateHttpResponse(response or redirect(safe_next(request, next_url)))

    def is_open_for_signup(self, request, sociallogin):
        return False

    def on_authentication_error(self, request, provider, error=None, exception=None, **kwargs):
        log.warning("single sign-on failed: %s %r", error, exception)
        raise ImmediateHttpResponse(refusal(request, FAILED, status=400))


class NoSignupAccountAdapter(DefaultAccountAdapter):
    """Accounts are made by staff (onboarding, invitations), never by allauth."""

    def is_open_for_signup(self, request):
        return False


@require_http_methods(["GET", "POST"])
def sso_login(request, provider_id):
    """Start single sign-on (a POST from the login page's button; a GET goes to that page)."""
    if not sso_enabled() or provider_id != settings.SSO_PROVIDER_ID:
        raise Http404("Single sign-on is not configured.")
    if request.method != "POST":
        return redirect("login")
    try:
        return oidc_views.login(request, provider_id)
    except RequestException:
        log.warning("single sign-on: the provider's configuration could not be read")
        return refusal(request, UNREACHABLE, status=502)


def sso_callback(request, provider_id):
    """Where the provider sends the browser back; allauth checks state, code and id token."""
    if not sso_enabled() or provider_id != settings.SSO_PROVIDER_ID:
        raise Http404("Single sign-on is not configured.")
    try:
        return oidc_views.callback(request, provider_id)
    except RequestException:
        log.warning("single sign-on: the provider could not be reached on the way back")
        return refusal(request, UNREACHABLE, status=502)


# The names are allauth's: it reverses them for the redirect URI.
urlpatterns = [
    path("sso/<str:provider_id>/login/", sso_login, name="openid_connect_login"),
    path("sso/<str:provider_id>/login/callback/", sso_callback, name="openid_connect_callback"),
]
