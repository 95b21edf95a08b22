"""Threshold alerts, checked every few minutes from the live counters (and, for the
hourly rule, from the usage events).

The monthly budget rule is checked for the customer's budget and for each token's own budget
(the token's MONTH counter, at the customer's budget thresholds; the alert's subject names the
token). Both compare the proxy's spend counter, which includes the holds of calls in flight: the
100 % alert says "reached, or held by calls in flight" (docs/usage.md, Alerts).

Exactly once per period: an Alert row is inserted before anything is sent, and its unique key
(customer, rule, threshold, period, subject) makes a second or concurrent check fail to insert
instead of sending again. Delivery runs after commit, from a task: one per customer for what
one check recorded, so three thresholds crossed at once make one email (and one message per
other channel) listing the three.
"""

import datetime as dt
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from core.text import printable
from customers.models import Customer, Token
from customers.money import budget_micros

from . import alert_channels, counters
from .models import Alert, AlertDelivery, CustomerUsageSettings

logger = logging.getLogger(__name__)
Status = AlertDelivery.Status


def _settings_by_customer(customers) -> dict:
    found = CustomerUsageSettings.objects.filter(customer__in=customers)
    return {s.customer_id: s for s in found}


def _percents(values) -> list[int]:
    return sorted({int(v) for v in values or [] if 0 < int(v) <= 1000})


def alert_record(
    *,
    customer,
    rule: str,
    threshold: int,
    period: str,
    value: int,
    limit: int,
    subject: str = "",
    deliver: bool = True,
) -> Alert | None:
    """Insert the crossing, with a pending delivery for each channel configured now; None
    when this crossing was already recorded (by any process). `deliver=False`: the caller
    queues the delivery of what it recorded, together (alerts_check: one message a customer)."""
    try:
        with transaction.atomic():
            alert = Alert.objects.create(
                customer=customer,
                rule=rule,
                threshold=threshold,
                period=period,
                subject=subject[:600],
                value=value,
                limit=limit,
            )
            options = CustomerUsageSettings.objects.filter(customer=customer).first()
            AlertDelivery.objects.bulk_create(
                AlertDelivery(alert=alert, channel=channel)
                for channel in alert_channels.channels_for(options)
            )
    except IntegrityError:
        return None
    if deliver:
        _queue_delivery([alert])
    return alert


def _queue_delivery(alerts) -> None:
    """One delivery task per customer, after commit: its alerts go out together."""
    from .tasks import deliver_alerts_task

    by_customer: dict = {}
    for alert in alerts:
        by_customer.setdefault(alert.customer_id, []).append(alert.pk)
    for ids in by_customer.values():
        transaction.on_commit(lambda ids=ids: deliver_alerts_task.delay(ids))


def quota_alerts_for(*, customer, options, today_totals, month_totals, now) -> list[Alert]:
    """The quota, daily limit and budget rules of one customer. The budget rule compares
    integers: the MONTH item's spend_micros (holds of calls in flight included) with the budget
    in micro-units, so 80 % of 50.00 is crossed at exactly 40.00, never by a float's rounding."""
    created = []
    month_percents = _percents(options.monthly_token_percents if options else [50, 80, 100])
    day_percents = _percents(options.daily_request_percents if options else [50, 80, 100])
    budget_percents = _percents(options.monthly_budget_percents if options else [50, 80, 100])
    checks = [
        (Alert.Rule.MONTHLY_TOKENS, customer.monthly_token_quota, month_totals.quota_used,
         month_percents, f"{now:%Y-%m}"),
        (Alert.Rule.DAILY_REQUESTS, customer.daily_request_limit, today_totals.requests,
         day_percents, f"{now:%Y-%m-%d}"),
        (Alert.Rule.MONTHLY_BUDGET, budget_micros(customer.monthly_budget),
         month_totals.spend_micros, budget_percents, f"{now:%Y-%m}"),
    ]  # fmt: skip
    for rule, limit, value, percents, period in checks:
        if not limit:
            continue
        for percent in percents:
            if value * 100 >= limit * percent:
                alert = alert_record(
                    customer=customer,
                    rule=rule,
                    threshold=percent,
                    period=period,
                    value=value,
                    limit=limit,
                    deliver=False,
                )
                if alert:
                    created.append(alert)
    return created


def token_subject(token) -> str:
    """The alert's subject for a token's own budget: its masked form, which people recognise,
    and its id, which keeps two tokens with the same masked form apart in the unique key; both
    stable for the token's life (a new label would otherwise alert again)."""
    return printable(f"token {token.masked} (id {token.pk})")[:600]


def token_budget_alerts_for(*, token, options, month_totals, now) -> list[Alert]:
    """A token's own monthly budget, at its customer's budget thresholds: one alert per
    threshold, token and month (the subject keeps the tokens apart in the unique key)."""
    limit = budget_micros(token.monthly_budget)
    if not limit:
        return []
    percents = _percents(options.monthly_budget_percents if options else [50, 80, 100])
    value = month_totals.spend_micros
    created = []
    for percent in percents:
        if value * 100 >= limit * percent:
            alert = alert_record(
                customer=token.customer,
                rule=Alert.Rule.MONTHLY_BUDGET,
                threshold=percent,
                period=f"{now:%Y-%m}",
                subject=token_subject(token),
                value=value,
                limit=limit,
                deliver=False,
            )
            if alert:
                created.append(alert)
    return created


def _budgeted_tokens() -> list[Token]:
    """Active tokens with a budget of their own, of the active customers (those checked)."""
    return list(
        Token.objects.filter(
            customer__status=Customer.Status.ACTIVE,
            status=Token.Status.ACTIVE,
            monthly_budget__isnull=False,
        ).select_related("customer")
    )


def hourly_alerts(*, customers, options_by_customer, now, engine=None) -> list[Alert]:
    """The hourly rule from the events: tokens per user/application/model in a clock hour."""
    thresholds = {}
    for customer in customers:
        options = options_by_customer.get(customer.pk)
        value = options.hourly_token_threshold if options else None
        if value is None and not options:
            value = settings.USAGE_HOURLY_TOKEN_THRESHOLD or None
        if value:
            thresholds[str(customer.pk)] = (customer, value)
    if not thresholds:
        return []
    if engine is None:
        from .services import get_engine

        engine = get_engine()
        if hasattr(engine, "timeout"):
            # Finish well inside the check interval: the next check covers the same hour.
            engine.timeout = min(engine.timeout, settings.USAGE_ALERT_CHECK_MINUTES * 60 - 30)
    minimum = min(v for _, v in thresholds.values())
    created = []
    for customer_id, hour, user_id, app_id, model_id, tokens in engine.hourly_token_rows(
        now, minimum
    ):
        customer, threshold = thresholds.get(str(customer_id), (None, None))
        if customer is None or tokens < threshold:
            continue
        alert = alert_record(
            customer=customer,
            rule=Alert.Rule.HOURLY_TOKENS,
            threshold=threshold,
            # Text from the events: a control character would not store (NUL on PostgreSQL).
            period=printable(str(hour)[:13]),
            subject=printable(
                f"user={user_id or '-'} application={app_id or '-'} model={model_id}"
            ),
            value=int(tokens),
            limit=threshold,
            deliver=False,
        )
        if alert:
            created.append(alert)
    return created


def alerts_check(*, now: dt.datetime | None = None, client=None, engine=None) -> int:
    """Record (and queue the delivery of) every threshold crossed since the last check."""
    now = (now or timezone.now()).astimezone(dt.UTC)
    customers = list(Customer.objects.filter(status=Customer.Status.ACTIVE))
    options_by_customer = _settings_by_customer(customers)
    limited = [
        c
        for c in customers
        if c.monthly_token_quota or c.daily_request_limit or c.monthly_budget is not None
    ]
    tokens = _budgeted_tokens()
    created: list[Alert] = []
    month = counters.month_sk(now.date())
    if limited or tokens:
        keys = []
        for c in limited:
            pk = counters.customer_pk(c.pk)
            keys += [(pk, counters.day_sk(now.date())), (pk, month)]
        keys += [(counters.token_pk(t.pk), month) for t in tokens]
        totals = counters.read_counters(keys, client=client)  # one batched read for all
        for c in limited:
            pk = counters.customer_pk(c.pk)
            created += quota_alerts_for(
                customer=c,
                options=options_by_customer.get(c.pk),
                today_totals=totals[(pk, counters.day_sk(now.date()))],
                month_totals=totals[(pk, month)],
                now=now,
            )
        for token in tokens:
            created += token_budget_alerts_for(
                token=token,
                options=options_by_customer.get(token.customer_id),
                month_totals=totals[(counters.token_pk(token.pk), month)],
                now=now,
            )
    try:
        created += hourly_alerts(
            customers=customers, options_by_customer=options_by_customer, now=now, engine=engine
        )
    except Exception:  # the quota alerts above must not be lost to an engine failure
        logger.exception("hourly token rule check failed")
    _queue_delivery(created)
    _retry_undelivered(now=now)
    return len(created)


def _retry_undelivered(*, now: dt.datetime) -> None:
    """Alerts of the last day not delivered everywhere yet, retried by later checks: an email
    that failed, a delivery still pending (its task was lost), failed (once its delay is over:
    alert_channels.is_due) or claimed by a worker that stopped. Grouped per customer."""
    recent = {"created_at__lt": now - dt.timedelta(minutes=2)}
    recent["created_at__gte"] = now - dt.timedelta(days=1)
    unmailed = Alert.objects.filter(emailed_at__isnull=True, **recent)
    waiting = AlertDelivery.objects.filter(
        status__in=[Status.PENDING, Status.SENDING, Status.FAILED],
        **{f"alert__{name}": value for name, value in recent.items()},
    ).select_related("alert")
    due = {d.alert for d in waiting if alert_channels.is_due(d, now)}
    _queue_delivery(set(unmailed) | due)
