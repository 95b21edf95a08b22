"""Two-factor sign-in: enrolment, the code step at login, recovery codes, throttling and the
lockout, the staff requirement, and junk on the code field."""

import re
import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from core import two_factor as tf
from core.models import User
from tests.conftest import TEST_PASSWORD

pytestmark = pytest.mark.django_db


def code_for(device, steps_ahead=0) -> str:
    """The code the user's app shows now (or `steps_ahead` 30-second steps later: a code is
    accepted once, so a second login in the same step uses the next one)."""
    device.refresh_from_db()
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, drift=steps_ahead):06d}"


def unthrottle(user):
    """Pretend the throttle's wait has passed (it doubles after every wrong code)."""
    past = timezone.now() - timedelta(hours=1)
    for model in (TOTPDevice, tf.StaticDevice):
        model.objects.filter(user=user).update(throttling_failure_timestamp=past)


def enrol(client, user) -> list[str]:
    """Enrol through the pages, as the signed-in `user`; returns the recovery codes shown."""
    page = client.get(reverse("two_factor_setup"))
    assert page.status_code == 200
    device = TOTPDevice.objects.get(user=user, confirmed=False)
    response = client.post(reverse("two_factor_setup"), {"code": code_for(device)})
    assert response.status_code == 200, response.content.decode()[:2000]
    return re.findall(r"<code>([a-z2-7]{4}-[a-z2-7]{4})</code>", response.content.decode())


def login(client, user, password=TEST_PASSWORD, **extra):
    return client.post(reverse("login"), {"username": user.email, "password": password, **extra})


def enrolled(user) -> list[str]:
    """Give `user` an authenticator and recovery codes without the pages."""
    device = tf.app_device_for_enrolment(user)
    _, codes = tf.enrol_confirm(user, code_for(device))
    return codes


def test_enrolment_shows_qr_and_secret_and_needs_a_first_code(customer_client, customer_user):
    page = customer_client.get(reverse("two_factor_setup"))
    html = page.content.decode()
    assert page.status_code == 200
    assert "<svg" in html and "<script" not in html.split("<main", 1)[1]
    device = TOTPDevice.objects.get(user=customer_user, confirmed=False)
    from base64 import b32encode

    secret = b32encode(device.bin_key).decode()
    assert " ".join(secret[i : i + 4] for i in range(0, len(secret), 4)) in html
    # A reload shows the same secret until it is confirmed.
    customer_client.get(reverse("two_factor_setup"))
    assert TOTPDevice.objects.filter(user=customer_user).count() == 1

    wrong = customer_client.post(reverse("two_factor_setup"), {"code": "000000"})
    assert wrong.status_code == 400
    assert not tf.has_two_factor(customer_user)
    device.refresh_from_db()
    assert device.throttling_failure_count == 1
    # Right away even the right code waits for the throttle.
    throttled = customer_client.post(reverse("two_factor_setup"), {"code": code_for(device)})
    assert b"Too many wrong codes" in throttled.content

    unthrottle(customer_user)
    codes = enrol(customer_client, customer_user)
    assert len(codes) == 10 and len(set(codes)) == 10
    assert tf.has_two_factor(customer_user)
    assert tf.recovery_codes_left(customer_user) == 10
    # This session stays signed in and counts as verified.
    assert customer_client.get("/app/").status_code == 200


def test_enrolment_ends_the_other_sessions(client, customer_user):
    from django.test import Client

    other = Client()
    other.force_login(customer_user)
    client.force_login(customer_user)
    enrol(client, customer_user)
    assert client.get("/app/").status_code == 200
    assert other.get("/app/").status_code == 302


def test_login_asks_for_the_code_and_accepts_the_right_one(client, customer_user):
    enrolled(customer_user)
    response = login(client, customer_user)
    assert response.status_code == 302
    assert response["Location"] == reverse("login_code")
    # The password alone signs nothing in: no page, no API.
    assert client.get("/app/").status_code == 302
    assert client.get("/api/v1/customers/").status_code in (401, 403)

    device = TOTPDevice.objects.get(user=customer_user)
    response = client.post(reverse("login_code"), {"code": code_for(device, steps_ahead=1)})
    assert response.status_code == 302
    assert response["Location"] == "/"
    assert client.get("/app/").status_code == 200


def test_login_keeps_the_next_page(client, customer_user):
    enrolled(customer_user)
    client.post(
        reverse("login"),
        {"username": customer_user.email, "password": TEST_PASSWORD, "next": "/app/account/"},
    )
    device = TOTPDevice.objects.get(user=customer_user)
    response = client.post(reverse("login_code"), {"code": code_for(device, steps_ahead=1)})
    assert response["Location"] == "/app/account/"


def test_wrong_code_is_refused(client, customer_user):
    enrolled(customer_user)
    login(client, customer_user)
    response = client.post(reverse("login_code"), {"code": "000000"})
    assert response.status_code == 400
    assert b"That code is not right" in response.content
    assert client.get("/app/").status_code == 302


def test_a_code_is_accepted_once(client, customer_user):
    enrolled(customer_user)
    device = TOTPDevice.objects.get(user=customer_user)
    code = code_for(device, steps_ahead=1)
    login(client, customer_user)
    assert client.post(reverse("login_code"), {"code": code}).status_code == 302
    client.post(reverse("logout"))
    unthrottle(customer_user)
    login(client, customer_user)
    assert client.post(reverse("login_code"), {"code": code}).status_code == 400


def test_throttling_after_a_wrong_code(client, customer_user):
    enrolled(customer_user)
    login(client, customer_user)
    client.post(reverse("login_code"), {"code": "000000"})
    device = TOTPDevice.objects.get(user=customer_user)
    # Right away even the right code waits for the throttle.
    response = client.post(reverse("login_code"), {"code": code_for(device, steps_ahead=1)})
    assert response.status_code == 400
    assert b"Too many wrong codes" in response.content
    device.refresh_from_db()
    assert device.throttling_failure_count >= 1
    unthrottle(customer_user)
    response = client.post(reverse("login_code"), {"code": code_for(device, steps_ahead=1)})
    assert response.status_code == 302


def test_wrong_codes_count_toward_the_lockout(client, customer_user, settings):
    enrolled(customer_user)
    login(client, customer_user)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        unthrottle(customer_user)
        response = client.post(reverse("login_code"), {"code": "000000"})
    assert response.status_code == 429
    assert b"Too many failed log-in attempts" in response.content
    # The pending sign-in is gone, and the password no longer gets in either.
    response = login(client, customer_user)
    assert response.status_code == 429
    assert not response.wsgi_request.user.is_authenticated


def test_passwords_still_lock_out_users_with_two_factor(client, customer_user, settings):
    enrolled(customer_user)
    for _ in range(settings.AXES_FAILURE_LIMIT):
        login(client, customer_user, password="wrong")
    assert login(client, customer_user).status_code == 429


def test_recovery_code_works_once(client, customer_user):
    codes = enrolled(customer_user)
    login(client, customer_user)
    response = client.post(reverse("login_code"), {"code": tf.display_recovery_code(codes[0])})
    assert response.status_code == 302
    assert client.get("/app/").status_code == 200
    assert tf.recovery_codes_left(customer_user) == 9
    client.post(reverse("logout"))

    login(client, customer_user)
    response = client.post(reverse("login_code"), {"code": codes[0]})
    assert response.status_code == 400
    assert client.get("/app/").status_code == 302


def test_regenerated_recovery_codes_replace_the_old_ones(customer_client, customer_user):
    old = enrol(customer_client, customer_user)
    device = TOTPDevice.objects.get(user=customer_user)
    response = customer_client.post(
        reverse("two_factor"),
        {"action": "recovery_codes", "recovery-code": code_for(device, steps_ahead=1)},
    )
    assert response.status_code == 200
    new = re.findall(r"<code>([a-z2-7]{4}-[a-z2-7]{4})</code>", response.content.decode())
    assert len(new) == 10 and not set(new) & set(old)
    stored = set(
        StaticToken.objects.filter(device__user=customer_user).values_list("token", flat=True)
    )
    assert stored == {c.replace("-", "") for c in new}
    # Sent again (reload), the same code is refused: no third set.
    again = customer_client.post(
        reverse("two_factor"),
        {"action": "recovery_codes", "recovery-code": code_for(device, steps_ahead=1)},
    )
    assert again.status_code == 400


def test_customer_may_turn_it_off(customer_client, customer_user):
    codes = enrol(customer_client, customer_user)
    page = customer_client.get(reverse("two_factor"))
    assert b"10 unused recovery codes" in page.content
    response = customer_client.post(
        reverse("two_factor"), {"action": "turn_off", "off-code": codes[3]}
    )
    assert response.status_code == 302
    assert not tf.has_two_factor(customer_user)
    assert tf.recovery_codes_left(customer_user) == 0
    customer_client.post(reverse("logout"))
    response = login(customer_client, customer_user)
    assert response["Location"] == "/"


def test_two_factor_is_optional_for_customers(client, customer_user, settings):
    settings.STAFF_REQUIRE_2FA = True
    response = login(client, customer_user)
    assert response["Location"] == "/"
    assert client.get("/app/").status_code == 200
    assert client.get(reverse("two_factor")).status_code == 200


def test_account_page_links_to_the_security_page(customer_client):
    page = customer_client.get(reverse("customer:customer_account"))
    assert reverse("two_factor").encode() in page.content


def test_staff_log_in_with_a_password_when_not_required(client, staff_user):
    response = login(client, staff_user)
    assert response["Location"] == "/"
    assert client.get("/staff/").status_code == 200


def test_staff_must_enrol_when_required(client, staff_user, settings):
    settings.STAFF_REQUIRE_2FA = True
    response = login(client, staff_user)
    assert response["Location"] == reverse("two_factor_setup")
    assert client.get("/staff/").status_code == 302
    assert client.get("/staff/")["Location"].startswith("/accounts/login/")

    codes = enrol(client, staff_user)
    assert len(codes) == 10
    assert client.get("/staff/").status_code == 200

    # The next login asks for the code.
    client.post(reverse("logout"))
    response = login(client, staff_user)
    assert response["Location"] == reverse("login_code")
    device = TOTPDevice.objects.get(user=staff_user)
    client.post(reverse("login_code"), {"code": code_for(device, steps_ahead=1)})
    assert client.get("/staff/").status_code == 200


def test_staff_session_from_before_the_requirement_is_sent_to_enrol(
    staff_client, staff_user, settings
):
    settings.STAFF_REQUIRE_2FA = True
    for url in ("/staff/", "/staff/customers/", "/api/v1/customers/", "/accounts/two-factor/"):
        response = staff_client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("two_factor_setup")), url
    enrol(staff_client, staff_user)
    assert staff_client.get("/staff/").status_code == 200


def test_staff_session_with_a_device_but_no_code_is_asked_for_one(client, staff_user, settings):
    enrolled(staff_user)
    settings.STAFF_REQUIRE_2FA = True
    client.force_login(User.objects.get(pk=staff_user.pk))
    response = client.get("/staff/customers/")
    assert response["Location"] == reverse("login_code") + "?next=%2Fstaff%2Fcustomers%2F"
    device = TOTPDevice.objects.get(user=staff_user)
    response = client.post(response["Location"], {"code": code_for(device, steps_ahead=1)})
    assert response["Location"] == "/staff/customers/"
    assert client.get("/staff/customers/").status_code == 200


def test_pending_sign_in_expires(client, customer_user, monkeypatch):
    enrolled(customer_user)
    login(client, customer_user)
    later = time.time() + tf.PENDING_SECONDS + 1
    monkeypatch.setattr(tf.time, "time", lambda: later)
    device = TOTPDevice.objects.get(user=customer_user)
    response = client.post(reverse("login_code"), {"code": code_for(device, steps_ahead=1)})
    assert response["Location"] == reverse("login")
    assert client.get("/app/").status_code == 302


def test_pending_sign_in_ends_when_the_password_changes(client, customer_user):
    enrolled(customer_user)
    login(client, customer_user)
    customer_user.set_password("another-password-0123")
    customer_user.save()
    device = TOTPDevice.objects.get(user=customer_user)
    response = client.post(reverse("login_code"), {"code": code_for(device, steps_ahead=1)})
    assert response["Location"] == reverse("login")
    assert client.get("/app/").status_code == 302


def test_code_pages_without_a_sign_in_go_to_login(client):
    for name in ("login_code", "two_factor_setup", "two_factor"):
        response = client.get(reverse(name))
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


HOSTILE = [
    "\x00",
    "12\x0034",
    str(10**100),
    "abcdef",
    "x" * 5000,
    "",
    "  ",
    "\uff11\uff12\uff13\uff14\uff15\uff16",
    "-1",
]


@pytest.mark.parametrize("code", HOSTILE)
def test_hostile_codes_give_a_form_error(client, customer_user, code):
    codes = enrolled(customer_user)
    login(client, customer_user)
    response = client.post(reverse("login_code"), {"code": code})
    assert response.status_code == 400
    assert b'role="alert"' in response.content
    assert client.get("/app/").status_code == 302

    client.force_login(customer_user)
    for data in (
        {"action": "turn_off", "off-code": code},
        {"action": "recovery_codes", "recovery-code": code},
        {"action": code, "off-code": code},
        {},
    ):
        response = client.post(reverse("two_factor"), data)
        assert response.status_code == 400, data
    assert tf.has_two_factor(customer_user)
    assert tf.recovery_codes_left(customer_user) == len(codes)


@pytest.mark.parametrize("code", HOSTILE)
def test_hostile_codes_on_enrolment_give_a_form_error(customer_client, customer_user, code):
    response = customer_client.post(reverse("two_factor_setup"), {"code": code})
    assert response.status_code == 400
    assert b'role="alert"' in response.content
    assert not tf.has_two_factor(customer_user)


def test_pages_answer_junk_queries(customer_client):
    for name in ("login_code", "two_factor_setup", "two_factor", "login"):
        for query in ({"next": "https://evil.example/"}, {"next": "\x00"}, {"next": "x" * 5000}):
            assert customer_client.get(reverse(name), query).status_code < 500


def test_next_never_leaves_the_site(client, customer_user):
    enrolled(customer_user)
    client.post(
        reverse("login"),
        {
            "username": customer_user.email,
            "password": TEST_PASSWORD,
            "next": "https://evil.example/",
        },
    )
    device = TOTPDevice.objects.get(user=customer_user)
    response = client.post(reverse("login_code"), {"code": code_for(device, steps_ahead=1)})
    assert response["Location"] == "/"


def test_codes_are_not_kept_in_axes_records(client, customer_user):
    from axes.models import AccessAttempt

    enrolled(customer_user)
    login(client, customer_user)
    client.post(reverse("login_code"), {"code": "987654"})
    attempt = AccessAttempt.objects.get()
    assert "987654" not in attempt.post_data


def test_reset_command_for_a_lost_phone(client, customer_user):
    from io import StringIO

    from django.core.management import CommandError, call_command

    enrolled(customer_user)
    client.force_login(customer_user)
    out = StringIO()
    call_command("two_factor_reset", customer_user.email.upper(), stdout=out)
    assert "is off" in out.getvalue()
    assert not tf.has_two_factor(customer_user)
    assert client.get("/app/").status_code == 302  # the session ended
    assert login(client, customer_user)["Location"] == "/"
    with pytest.raises(CommandError):
        call_command("two_factor_reset", "nobody@example.com")


def test_locked_out_code_page_answers_with_the_lockout(client, customer_user, settings):
    enrolled(customer_user)
    login(client, customer_user)
    from axes.handlers.proxy import AxesProxyHandler

    assert not AxesProxyHandler.is_locked(
        client.get(reverse("login_code")).wsgi_request, {"username": customer_user.email}
    )
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        unthrottle(customer_user)
        client.post(reverse("login_code"), {"code": "000000"})
    # A second browser on the same address: the password is right, the lockout still holds.
    from django.test import Client

    other = Client()
    login(other, customer_user)
    unthrottle(customer_user)
    assert other.post(reverse("login_code"), {"code": "000000"}).status_code == 429
    # The first browser's pending sign-in answers with the lockout, then is gone.
    assert client.get(reverse("login_code")).status_code == 429
    assert client.get(reverse("login_code")).status_code == 302


def test_django_admin_logs_in_through_the_portal_login(client, staff_user):
    staff_user.is_superuser = True
    staff_user.save()
    enrolled(staff_user)
    response = client.post(
        "/django-admin/login/?next=/django-admin/",
        {"username": staff_user.email, "password": TEST_PASSWORD},
    )
    assert response.status_code == 302
    assert response["Location"] == "/accounts/login/?next=%2Fdjango-admin%2F"
    assert client.get("/django-admin/").status_code == 302
    assert client.get("/staff/").status_code == 302


def test_the_password_step_gives_a_new_session_key(client, customer_user):
    enrolled(customer_user)
    client.get(reverse("login"))
    client.session.save()
    before = client.cookies["sessionid"].value
    login(client, customer_user)
    assert client.cookies["sessionid"].value != before
