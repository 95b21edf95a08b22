"""The rotation policy: a customer's tokens replaced every N days (`Customer.rotate_every_days`).

Once a day (`customers.tasks.rotate_tokens_on_schedule`) `rotation_run` does, for each token of
a customer with a policy:

1. **Notice**: `TOKEN_ROTATION_NOTICE_DAYS` (7) before the rotation (at once when the period is
   shorter), one email to the customer's contacts and users: "token X is rotated on <day>".
2. **Rotation**, on the day the token is N days old (counted from its creation; a replacement
   is created when it is revealed) and at least the notice period after the notice: the token
   enters the grace period (`grace_until`, `TOKEN_SCHEDULED_ROTATION_GRACE_DAYS`, 7), which the
   proxy sees through the outbox like any rotation, and a replacement waits for its reveal.
3. **Reminder**, during the grace period while the replacement is not revealed: one email,
   "X ends on <day>: reveal your new token".

**Reveal** (`token_reveal`): a customer user of that customer asks for the replacement on the
tokens page; it is generated then, shown in that one answer, and never again.

Why generated at reveal time, and not generated at the rotation and kept encrypted until then:
a token kept for a later reveal must be kept decryptable, so whoever holds the database and
the key (SECRET_KEY, in every process's environment) holds every token waiting, however long
the customer waits. Generated at the reveal, a waiting replacement does not exist anywhere: the
portal keeps only hashes, as it does for every other token, and there is nothing to leak,
rotate or purge. What it costs: the replacement reaches the proxy when it is revealed (the
outbox delivers it within seconds, as a token created by hand), and its own age counts from
then. The old token's grace period starts on the rotation day whether or not anyone reveals
(starting it at the reveal instead would let an account that never logs in
keep its old token for ever, which is what the policy exists to prevent): no working token of
the account is older than N days plus the grace period.

Concurrency: each step is decided on the row, by a conditional update (the emails: claimed
before sending, released when the send fails, so the next run tries again) or under the token
row's lock (the rotation, the reveal). Two runs at once send each email once and rotate each
token once; two reveals at once generate one token.
"""

import logging
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from .audit import audit_record, token_snapshot
from .models import Customer, Token
from .services import IssuedToken, token_create
from .sync import outbox_enqueue_token

logger = logging.getLogger(__name__)

SOURCE = "rotation policy"


@dataclass
class RotationReport:
    notices: int = 0
    rotated: int = 0
    reminders: int = 0

    def summary(self) -> str:
        return f"{self.notices} notice(s), {self.rotated} rotation(s), {self.reminders} reminder(s)"


def _day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def _start_of(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def notice_days(every_days: int) -> int:
    """Days between the notice and the rotation: the setting, or the whole period if shorter."""
    return max(0, min(settings.TOKEN_ROTATION_NOTICE_DAYS, every_days))


def rotation_day(token: Token, every_days: int | None) -> date | None:
    """The UTC day the policy rotates this token (None: it will not): the day it is
    `every_days` old, but never sooner than the notice period after its notice."""
    if not every_days or token.status != Token.Status.ACTIVE:
        return None
    if token.rotated_on_schedule_at or token.grace_until or token.replaced_by_id:
        return None
    day = _day(token.created_at) + timedelta(days=every_days)
    if token.rotation_notice_sent_at is not None:
        day = max(
            day, _day(token.rotation_notice_sent_at) + timedelta(days=notice_days(every_days))
        )
    return day


def with_rotation_days(tokens, customer: Customer) -> list[Token]:
    """The tokens (a page), each with `rotation_day` for the pages; no query."""
    tokens = list(tokens)
    for token in tokens:
        token.rotation_day = rotation_day(token, customer.rotate_every_days)
    return tokens


def _candidates(every_days: int, now: datetime):
    """Active tokens, never rotated, of active customers with this period."""
    return Token.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now),
        customer__rotate_every_days=every_days,
        customer__status=Customer.Status.ACTIVE,
        status=Token.Status.ACTIVE,
        grace_until__isnull=True,
        replaced_by__isnull=True,
        rotated_on_schedule_at__isnull=True,
    )


def _notice_due(every_days: int, now: datetime):
    tomorrow = _start_of(_day(now) + timedelta(days=1))
    lead = notice_days(every_days)
    return _candidates(every_days, now).filter(
        rotation_notice_sent_at__isnull=True,
        created_at__lt=tomorrow - timedelta(days=every_days - lead),
    )


def _rotation_due(every_days: int, now: datetime):
    tomorrow = _start_of(_day(now) + timedelta(days=1))
    return _candidates(every_days, now).filter(
        rotation_notice_sent_at__lt=tomorrow - timedelta(days=notice_days(every_days)),
        created_at__lt=tomorrow - timedelta(days=every_days),
    )


def _periods() -> list[int]:
    return list(
        Customer.objects.filter(rotate_every_days__isnull=False, status=Customer.Status.ACTIVE)
        .values_list("rotate_every_days", flat=True)
        .distinct()
    )


def _claim_and_send(token_id, field: str, now: datetime, send) -> bool:
    """Set `field` if it is still empty (one run wins), then send; a failed send empties it
    again so the next run retries instead of losing the email."""
    if not Token.objects.filter(pk=token_id, **{f"{field}__isnull": True}).update(**{field: now}):
        return False
    token = Token.objects.select_related("customer").get(pk=token_id)
    try:
        send(token)
    except Exception as error:
        Token.objects.filter(pk=token_id, **{field: now}).update(**{field: None})
        logger.warning(
            "rotation email (%s) for token %s not sent (%s); will retry on the next run",
            field,
            token_id,
            type(error).__name__,
        )
        return False
    return True


def _rotate(token_id, every_days: int, now: datetime) -> bool:
    """Start the grace period of one due token, decided again under its lock."""
    grace = timedelta(days=settings.TOKEN_SCHEDULED_ROTATION_GRACE_DAYS)
    with transaction.atomic():
        token = (
            _rotation_due(every_days, now)
            .select_for_update(of=("self",))
            .filter(pk=token_id)
            .first()
        )
        if token is None:  # another run rotated it, or it changed meanwhile
            return False
        before = token_snapshot(token)
        token.grace_until = now + grace
        token.rotated_on_schedule_at = now
        token.save(update_fields=["grace_until", "rotated_on_schedule_at"])
        outbox_enqueue_token(token=token)
        audit_record(
            customer=token.customer,
            actor=None,
            action="token.rotate.scheduled",
            object_type="token",
            object_id=token.pk,
            before=before,
            after={**token_snapshot(token), "rotated_on_schedule_at": now.isoformat()},
            source=SOURCE,
        )
    return True


def rotation_run(*, now: datetime | None = None) -> RotationReport:
    """The daily job: notices, rotations and reminders that are due (see the module's doc)."""
    from .emails import send_rotation_notice, send_rotation_reminder

    now = now or timezone.now()
    report = RotationReport()
    for every_days in _periods():
        for token_id in _notice_due(every_days, now).values_list("pk", flat=True):
            if _claim_and_send(
                token_id,
                "rotation_notice_sent_at",
                now,
                lambda token, n=every_days: send_rotation_notice(
                    token=token, rotate_on=rotation_day(token, n)
                ),
            ):
                report.notices += 1
        for token_id in _rotation_due(every_days, now).values_list("pk", flat=True):
            report.rotated += _rotate(token_id, every_days, now)
    waiting = Token.objects.filter(
        rotated_on_schedule_at__isnull=False,
        replaced_by__isnull=True,
        status=Token.Status.ACTIVE,
        rotation_reminder_sent_at__isnull=True,
        grace_until__gt=now,
        customer__status=Customer.Status.ACTIVE,
    )
    for token_id in waiting.values_list("pk", flat=True):
        if _claim_and_send(
            token_id,
            "rotation_reminder_sent_at",
            now,
            lambda token: send_rotation_reminder(token=token),
        ):
            report.reminders += 1
    return report


def token_reveal(
    *, token: Token, actor=None, ip: str | None = None, source: str = ""
) -> IssuedToken | None:
    """Generate the replacement of a token the policy rotated, once: None when it was revealed
    already (or the token was revoked or rotated by hand meanwhile). The replacement has the
    old token's label and limits and the default lifetime; the old one keeps its grace end.
    Refused (ValidationError) while the account is suspended or closed, as any new token."""
    with transaction.atomic():
        old = Token.objects.select_for_update().get(pk=token.pk)
        if not old.awaiting_reveal:
            return None
        issued = token_create(
            customer=old.customer,
            label=old.label,
            actor=actor,
            ip=ip,
            source=source,
            _action="token.rotate.new",
            _limits_from=old,
        )
        old.replaced_by = issued.token
        old.save(update_fields=["replaced_by"])
        audit_record(
            customer=old.customer,
            actor=actor,
            action="token.reveal",
            object_type="token",
            object_id=old.pk,
            before={"masked": old.masked},
            after={
                "masked": old.masked,
                "replaced_by": str(issued.token.pk),
                "grace_until": old.grace_until.isoformat() if old.grace_until else None,
            },
            ip=ip,
            source=source,
        )
    token.refresh_from_db()
    return issued
