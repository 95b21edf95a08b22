"""Threshold alerts, checked every few minutes from the live counters (and, for the
hourly rule, from the usage events).

Exactly once per period: an Alert row is inserted before anything is sent, and its unique key
(customer, rule, threshold, period, subject) makes a second or concurrent check fail to insert
instead of sending again. Delivery runs after commit, from a task.
"""

import datetime as dt
import logging

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from customers.models import Customer
from customers.money import budget_micros
from portal.text import printable

from . import counters
from .models import Alert, CustomerUsageSettings

logger = logging.getLogger(__name__)


def _settings_by_customer(customers) -> dict:
    found = CustomerUsageSettings.objects.filter(customer__in=customers)
    return {s.customer_id: s for s in found}


def _percents(values) -> list[int]:
    return sorted({int(v) for v in values or [] if 0 < int(v) <= 1000})


def alert_record(
    *, customer, rule: str, threshold: int, period: str, value: int, limit: int, subject: str = ""
) -> Alert | None:
    """Insert the crossing; None when this crossing was already recorded (by any process)."""
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
    except IntegrityError:
        return None
    from .tasks import deliver_alert_task

    transaction.on_commit(lambda: deliver_alert_task.delay(alert.pk))
    return alert


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
                )
                if alert:
                    created.append(alert)
    return created


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
    created: list[Alert] = []
    if limited:
        keys = []
        for c in limited:
            pk = counters.customer_pk(c.pk)
            keys += [(pk, counters.day_sk(now.date())), (pk, counters.month_sk(now.date()))]
        totals = counters.read_counters(keys, client=client)
        for c in limited:
            pk = counters.customer_pk(c.pk)
            created += quota_alerts_for(
                customer=c,
                options=options_by_customer.get(c.pk),
                today_totals=totals[(pk, counters.day_sk(now.date()))],
                month_totals=totals[(pk, counters.month_sk(now.date()))],
                now=now,
            )
    try:
        created += hourly_alerts(
            customers=customers, options_by_customer=options_by_customer, now=now, engine=engine
        )
    except Exception:  # the quota alerts above must not be lost to an engine failure
        logger.exception("hourly token rule check failed")
    _retry_undelivered(now=now)
    return len(created)


def _retry_undelivered(*, now: dt.datetime) -> None:
    """Alerts whose email failed are retried by later checks, for a day."""
    from .tasks import deliver_alert_task

    stale = now - dt.timedelta(minutes=2)
    pending = Alert.objects.filter(
        emailed_at__isnull=True, created_at__lt=stale, created_at__gte=now - dt.timedelta(days=1)
    ).values_list("pk", flat=True)
    for alert_id in pending:
        transaction.on_commit(lambda a=alert_id: deliver_alert_task.delay(a))
