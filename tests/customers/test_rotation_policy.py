"""The rotation policy (customers/rotation.py): a customer's tokens replaced every N days, the
replacement revealed once on the customer's tokens page, notices and reminders mailed once,
the old token stopping at the end of its grace period, at the proxy too."""

import re
import threading
from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.db import connection, connections
from django.utils import timezone

from customers import rotation, services
from customers.models import AuditEvent, Customer, Token
from proxy import contract

pytestmark = pytest.mark.django_db

TOKEN_RE = re.compile(r"bup_[A-Za-z0-9_-]{12,}")
HOSTILE = ["0", "-5", str(10**20), "thirty", "3\x000", "1.5", "3 0"]


@pytest.fixture
def clock(monkeypatch):
    """timezone.now() as the test sets it (every service and auto_now_add reads it)."""
    # An hour ahead of the real clock, on the minute: rows stamped with the real time when
    # created (the outbox's next attempt: its default is the unpatched timezone.now) are then
    # never in the simulated future, whatever the time of day the test runs.
    start = timezone.now() + timedelta(hours=1)
    moment = {"now": start.replace(second=0, microsecond=0)}

    def now():
        return moment["now"]

    monkeypatch.setattr(timezone, "now", now)
    return moment


def _item(ddb, token_or_plaintext):
    return contract.get_token(ddb, contract.hash_token(token_or_plaintext))


def _usable(ddb, plaintext, moment) -> bool:
    item = _item(ddb, plaintext)
    return item is not None and item.usable_at(moment.timestamp())


def _mails_about(token_label: str, kind: str) -> list:
    words = {"notice": "is rotated on", "reminder": "reveal your new one"}[kind]
    return [m for m in mail.outbox if token_label in m.subject and words in m.subject]


def _days(clock, count):
    """Run the daily job on each of the next `count` days (today included)."""
    start = clock["now"]
    for day in range(count + 1):
        clock["now"] = start + timedelta(days=day)
        rotation.rotation_run()


def _reveal(client, token) -> str | None:
    response = client.post(f"/app/tokens/{token.pk}/reveal/", follow=True)
    assert response.status_code == 200
    found = re.search(r'<code id="new-token">([^<]+)</code>', response.content.decode())
    return found.group(1) if found else None


def test_a_year_of_rotations_every_30_days(ddb, customer, customer_user, client, clock, settings):
    settings.TOKEN_ROTATION_NOTICE_DAYS = 7
    settings.TOKEN_SCHEDULED_ROTATION_GRACE_DAYS = 7
    start = clock["now"]
    services.customer_update_limits(customer=customer, rotate_every_days=30)
    current = services.token_create(customer=customer, label="backend").plaintext
    client.force_login(customer_user)
    mail.outbox.clear()
    revealed, rotation_days, old_ends = [], [], {}

    for day in range(0, 366):
        now = clock["now"] = start + timedelta(days=day)
        report = rotation.rotation_run(now=now)
        token = Token.objects.get(token_hash=contract.hash_token(current))
        if report.rotated:
            rotation_days.append(day)
            assert token.awaiting_reveal and token.grace_until == now + timedelta(days=7)
            # The proxy still takes the old token; the new one does not exist yet.
            assert _usable(ddb, current, now)
            assert _item(ddb, current).expires_at == int(token.grace_until.timestamp())
            client.force_login(customer_user)  # a month later: a new session
            plaintext = _reveal(client, token)
            assert plaintext and plaintext != current
            assert _item(ddb, plaintext).status == "active" and _usable(ddb, plaintext, now)
            old_ends[current] = token.grace_until
            revealed.append(plaintext)
            current = plaintext
        # Every old token works until its grace end, and not a second after.
        for old, ends in old_ends.items():
            assert _usable(ddb, old, now) == (now < ends), (day, ends)
            assert _usable(ddb, old, ends - timedelta(seconds=1))
            assert not _usable(ddb, old, ends)
        assert _usable(ddb, current, now)

    assert rotation_days == list(range(30, 366, 30))  # days 30, 60, ... 360: 12 rotations
    notices = [m for m in mail.outbox if "is rotated on" in m.subject]
    reminders = [m for m in mail.outbox if "reveal your new one" in m.subject]
    assert len(notices) == 12 and len(reminders) == 12  # once per rotation, each
    assert set(notices[0].to) == {"billing@acme.example", customer_user.email}
    assert (start + timedelta(days=30)).strftime("%d %b %Y").lstrip("0") in notices[0].subject
    assert Token.objects.filter(customer=customer).count() == 13
    # Audited: the scheduled rotation, the reveal (by the customer user), the new token.
    assert AuditEvent.objects.filter(action="token.rotate.scheduled").count() == 12
    reveals = AuditEvent.objects.filter(action="token.reveal")
    assert reveals.count() == 12 and {e.actor_id for e in reveals} == {customer_user.pk}
    # No email holds a token: the replacements did not even exist when they were sent.
    for message in mail.outbox:
        text = message.subject + message.body + message.alternatives[0][0]
        assert not TOKEN_RE.search(text)
        for plaintext in revealed:
            assert plaintext not in text


def test_notice_days_ahead_then_rotation_then_one_reminder(ddb, customer, clock, settings):
    settings.TOKEN_ROTATION_NOTICE_DAYS = 7
    start = clock["now"]
    services.customer_update_limits(customer=customer, rotate_every_days=10)
    issued = services.token_create(customer=customer, label="etl")
    mail.outbox.clear()
    sent_on = {}
    for day in range(0, 20):
        clock["now"] = start + timedelta(days=day)
        rotation.rotation_run()
        for message in mail.outbox:
            sent_on.setdefault(message.subject, day)
    assert sorted(sent_on.values()) == [3, 10]
    assert len(mail.outbox) == 2  # each once, though the job ran every day
    token = Token.objects.get(pk=issued.token.pk)
    assert token.rotation_notice_sent_at == start + timedelta(days=3)
    assert token.rotated_on_schedule_at == start + timedelta(days=10)
    assert token.rotation_reminder_sent_at == start + timedelta(days=10)
    reminder = _mails_about("etl", "reminder")[0]
    assert "/app/tokens/" in reminder.body and issued.plaintext not in reminder.body


def test_the_old_token_stops_after_the_grace_even_if_no_one_reveals(
    ddb, customer, customer_user, client, clock, settings
):
    settings.TOKEN_SCHEDULED_ROTATION_GRACE_DAYS = 3
    start = clock["now"]
    services.customer_update_limits(customer=customer, rotate_every_days=5)
    issued = services.token_create(customer=customer, label="web")
    for day in range(0, 12):
        clock["now"] = start + timedelta(days=day)
        rotation.rotation_run()
    token = Token.objects.get(pk=issued.token.pk)
    assert token.rotated_on_schedule_at == start + timedelta(days=5)
    assert token.state() == "expired" and not _usable(ddb, issued.plaintext, clock["now"])
    assert token.awaiting_reveal  # still waiting: revealing late gives a working token
    client.force_login(customer_user)
    page = client.get("/app/tokens/").content.decode()
    assert "A new token is ready for “web”: reveal it once." in page
    plaintext = _reveal(client, token)
    assert plaintext and _usable(ddb, plaintext, clock["now"])


def test_reveal_once_then_nothing_and_404_for_another_customer(
    ddb, customer, customer_user, other_customer, client, clock
):
    from core.models import User

    services.customer_update_limits(customer=customer, rotate_every_days=1)
    issued = services.token_create(customer=customer, label="batch")
    _days(clock, 1)
    token = Token.objects.get(pk=issued.token.pk)
    assert token.awaiting_reveal

    stranger = User.objects.create_user("eve@globex.example", "x" * 20, customer=other_customer)
    client.force_login(stranger)
    assert client.post(f"/app/tokens/{token.pk}/reveal/").status_code == 404
    assert client.get("/app/tokens/").content.decode().count("reveal it once") == 0

    client.force_login(customer_user)
    assert client.get(f"/app/tokens/{token.pk}/reveal/").status_code == 405  # POST only
    response = client.post(f"/app/tokens/{token.pk}/reveal/")
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    first = re.search(r'<code id="new-token">([^<]+)</code>', response.content.decode()).group(1)
    new = Token.objects.get(token_hash=contract.hash_token(first))
    assert new.label == "batch" and new.replaces.pk == token.pk
    assert _item(ddb, first).status == "active"

    again = client.post(f"/app/tokens/{token.pk}/reveal/", follow=True)
    body = again.content.decode()
    assert 'id="new-token"' not in body and first not in body
    assert "was already revealed: it cannot be shown again" in body
    assert "reveal it once" not in body
    assert Token.objects.filter(customer=customer).count() == 2
    assert AuditEvent.objects.filter(action="token.reveal").count() == 1

    token.refresh_from_db()
    assert not token.awaiting_reveal


def test_staff_see_the_policy_and_the_pending_reveal(
    ddb, customer, staff_client, staff_user, clock
):
    services.customer_update_limits(customer=customer, rotate_every_days=14)
    issued = services.token_create(customer=customer, label="crm")
    page = staff_client.get(f"/staff/customers/{customer.pk}/").content.decode()
    assert "every 14 days" in page and "rotation due on" in page
    _days(clock, 14)
    staff_client.force_login(staff_user)  # two weeks later: a new session
    page = staff_client.get(f"/staff/customers/{customer.pk}/").content.decode()
    assert "awaiting reveal" in page
    assert issued.plaintext not in page
    assert staff_client.post(f"/app/tokens/{issued.token.pk}/reveal/").status_code == 403
    api = _api(staff_user).get(f"/api/v1/customers/{customer.pk}/tokens/{issued.token.pk}/")
    assert api.status_code == 200, api.content
    assert api.json()["awaiting_reveal"] is True and "token" not in api.json()


def test_revoking_or_rotating_by_hand_ends_the_pending_reveal(ddb, customer, clock):
    services.customer_update_limits(customer=customer, rotate_every_days=2)
    a = services.token_create(customer=customer, label="a")
    b = services.token_create(customer=customer, label="b")
    _days(clock, 2)
    services.token_revoke(token=a.token)
    assert rotation.token_reveal(token=a.token) is None
    grace_end = Token.objects.get(pk=b.token.pk).grace_until
    services.token_rotate(token=b.token, grace_hours=24 * 30)
    token = Token.objects.get(pk=b.token.pk)
    assert token.grace_until == grace_end  # not lengthened by the manual rotation
    assert rotation.token_reveal(token=b.token) is None


def test_no_rotation_for_suspended_accounts_or_without_a_policy(ddb, customer, clock):
    services.customer_update_limits(customer=customer, rotate_every_days=3)
    issued = services.token_create(customer=customer)
    other = Customer.objects.create(name="No policy", contact_email="np@example.com")
    services.token_create(customer=other)
    services.customer_suspend(customer=customer)
    clock["now"] += timedelta(days=30)
    assert rotation.rotation_run().summary() == "0 notice(s), 0 rotation(s), 0 reminder(s)"
    services.customer_reactivate(customer=customer)
    report = rotation.rotation_run()
    # Told first: the rotation follows the notice by the notice period (here: the period).
    assert (report.notices, report.rotated) == (1, 0)
    clock["now"] += timedelta(days=3)
    assert rotation.rotation_run().rotated == 1
    assert Token.objects.get(pk=issued.token.pk).awaiting_reveal


def test_a_failed_email_is_tried_again_on_the_next_run(ddb, customer, clock, monkeypatch):
    from customers import emails

    services.customer_update_limits(customer=customer, rotate_every_days=30)
    issued = services.token_create(customer=customer)
    clock["now"] += timedelta(days=25)

    def down(**kwargs):
        raise ConnectionRefusedError

    monkeypatch.setattr(emails, "send_templated", down)
    assert rotation.rotation_run().notices == 0
    assert Token.objects.get(pk=issued.token.pk).rotation_notice_sent_at is None
    monkeypatch.undo()
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])
    assert rotation.rotation_run().notices == 1


def test_the_reveal_is_refused_while_the_account_is_suspended(
    ddb, customer, customer_user, client, clock
):
    services.customer_update_limits(customer=customer, rotate_every_days=1)
    issued = services.token_create(customer=customer)
    _days(clock, 1)
    services.customer_suspend(customer=customer)
    client.force_login(customer_user)
    body = client.post(f"/app/tokens/{issued.token.pk}/reveal/", follow=True).content.decode()
    assert "This account is suspended" in body and 'id="new-token"' not in body
    assert Token.objects.get(pk=issued.token.pk).awaiting_reveal  # still there once reactivated


# --- the setting: form, API, command -----------------------------------------------------------


def test_staff_set_the_policy_on_the_limits_form(customer, staff_client):
    url = f"/staff/customers/{customer.pk}/limits/"
    assert "Rotate tokens every (days)" in staff_client.get(url).content.decode()
    response = staff_client.post(url, {"rotate_every_days": "90"})
    assert response.status_code == 302
    customer.refresh_from_db()
    assert customer.rotate_every_days == 90
    assert customer.sync_version == 0  # the proxy does not need it: no outbox row
    event = AuditEvent.objects.get(action="customer.limits")
    assert event.after == {"rotate_every_days": 90}
    staff_client.post(url, {"rotate_every_days": ""})
    customer.refresh_from_db()
    assert customer.rotate_every_days is None


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_on_the_form_are_refused(customer, staff_client, value):
    response = staff_client.post(
        f"/staff/customers/{customer.pk}/limits/", {"rotate_every_days": value}
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "Rotation period" in body or "Null characters are not allowed" in body
    customer.refresh_from_db()
    assert customer.rotate_every_days is None


def _api(staff_user):
    from tests.api import conftest as api

    return api._client_with_key(staff_user, api.ApiKey.Scope.READ_WRITE)


def test_the_api_reads_and_writes_the_policy(customer, staff_user):
    rw = _api(staff_user)
    url = f"/api/v1/customers/{customer.pk}/limits/"
    response = rw.patch(url, {"rotate_every_days": 45}, format="json")
    assert response.status_code == 200, response.content
    assert response.json()["rotate_every_days"] == 45
    assert rw.get(f"/api/v1/customers/{customer.pk}/").json()["rotate_every_days"] == 45
    assert rw.patch(url, {"rotate_every_days": None}, format="json").status_code == 200
    customer.refresh_from_db()
    assert customer.rotate_every_days is None


@pytest.mark.parametrize("value", [0, -5, 10**20, "thirty", "3\x000", 1.5, True, [30], {}, ""])
def test_hostile_values_on_the_api_are_a_400_naming_the_field(customer, staff_user, value):
    from tests.api.conftest import error_of

    rw = _api(staff_user)
    response = rw.patch(
        f"/api/v1/customers/{customer.pk}/limits/", {"rotate_every_days": value}, format="json"
    )
    assert response.status_code == 400, response.content
    error = error_of(response)
    assert "rotate_every_days" in error["fields"]
    customer.refresh_from_db()
    assert customer.rotate_every_days is None


def test_the_command_sets_and_clears_the_policy(customer):
    out = StringIO()
    call_command(
        "customers", "update-limits", "--customer-id", str(customer.pk),
        "--rotate-every-days", "30", stdout=out,
    )  # fmt: skip
    assert "rotate tokens every 30 days" in out.getvalue()
    customer.refresh_from_db()
    assert customer.rotate_every_days == 30
    call_command(
        "customers", "update-limits", "--customer-id", str(customer.pk),
        "--rotate-every-days", "none", stdout=out,
    )  # fmt: skip
    customer.refresh_from_db()
    assert customer.rotate_every_days is None


@pytest.mark.parametrize("value", HOSTILE)
def test_hostile_values_on_the_command_are_one_clear_line(customer, value):
    with pytest.raises(CommandError) as raised:
        call_command(
            "customers", "update-limits", "--customer-id", str(customer.pk),
            "--rotate-every-days", value, stdout=StringIO(),
        )  # fmt: skip
    message = str(raised.value)
    assert message.startswith("Rotation period") and "\n" not in message
    customer.refresh_from_db()
    assert customer.rotate_every_days is None


# --- two runs at once ----------------------------------------------------------------------------


def _at_once(count, work):
    barrier, results, errors = threading.Barrier(count), [], []

    def run():
        try:
            barrier.wait()
            results.append(work())
        except Exception as error:  # surfaced below
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return results


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs a server database")
def test_two_runs_at_once_rotate_once_and_mail_once(ddb, customer, settings):
    settings.TOKEN_ROTATION_NOTICE_DAYS = 7
    services.customer_update_limits(customer=customer, rotate_every_days=30)
    tokens = [services.token_create(customer=customer, label=f"t{n}") for n in range(5)]
    now = timezone.now()
    Token.objects.filter(customer=customer).update(created_at=now - timedelta(days=40))
    mail.outbox.clear()
    reports = _at_once(2, lambda: rotation.rotation_run(now=now))
    assert sum(r.notices for r in reports) == 5 and sum(r.rotated for r in reports) == 0
    later = now + timedelta(days=7)
    reports = _at_once(3, lambda: rotation.rotation_run(now=later))
    assert sum(r.rotated for r in reports) == 5 and sum(r.reminders for r in reports) == 5
    assert len(mail.outbox) == 10
    assert AuditEvent.objects.filter(action="token.rotate.scheduled").count() == 5
    for issued in tokens:
        token = Token.objects.get(pk=issued.token.pk)
        assert token.grace_until == later + timedelta(
            days=settings.TOKEN_SCHEDULED_ROTATION_GRACE_DAYS
        )


@pytest.mark.django_db(transaction=True)
@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs a server database")
def test_two_reveals_at_once_create_one_token(ddb, customer):
    services.customer_update_limits(customer=customer, rotate_every_days=1)
    issued = services.token_create(customer=customer, label="x")
    Token.objects.filter(pk=issued.token.pk).update(
        created_at=timezone.now() - timedelta(days=3),
        rotation_notice_sent_at=timezone.now() - timedelta(days=2),
    )
    assert rotation.rotation_run().rotated == 1
    results = _at_once(
        4, lambda: rotation.token_reveal(token=Token.objects.get(pk=issued.token.pk))
    )
    assert len([r for r in results if r is not None]) == 1
    assert Token.objects.filter(customer=customer).count() == 2
