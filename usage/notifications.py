"""Delivery of usage alerts and summaries: email (text + HTML), the optional signed webhook,
and the other channels of alert_channels.py (SNS, Slack). The alerts of one customer recorded
by one check go out together: one email, one message per channel, listing them all.

The webhook body is JSON; `X-Portal-Signature: sha256=<hex>` is the HMAC-SHA256 of
`<timestamp>.<body>` with the customer's webhook secret, and `X-Portal-Timestamp` carries that
timestamp so receivers can reject replays.
"""

import hashlib
import hmac
import json
import logging
import time
import urllib.parse
import urllib.request

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from customers import money

from . import alert_channels
from .models import Alert, CustomerUsageSettings

logger = logging.getLogger(__name__)


def send_templated(*, name: str, to: list[str], bcc: list[str], context: dict) -> None:
    context = {"portal_base_url": settings.PORTAL_BASE_URL.rstrip("/"), **context}
    subject = render_to_string(f"email/{name}_subject.txt", context).strip().replace("\n", " ")
    text = render_to_string(f"email/{name}.txt", context)
    html = render_to_string(f"email/{name}.html", context)
    message = EmailMultiAlternatives(subject, text, settings.DEFAULT_FROM_EMAIL, to, bcc=bcc)
    message.attach_alternative(html, "text/html")
    message.send()


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def webhook_post(*, url: str, secret: str, payload: dict, opener=urllib.request.urlopen) -> str:
    """POST the signed payload; returns a short status for the alert history."""
    body = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    timestamp = str(int(time.time()))
    request = urllib.request.Request(  # noqa: S310 (https URL validated by the form)
        url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "bedrock-usage-portal-webhook",
            "X-Portal-Timestamp": timestamp,
            "X-Portal-Signature": sign(secret, timestamp, body),
        },
    )
    try:
        with opener(request, timeout=settings.USAGE_WEBHOOK_TIMEOUT_SECONDS) as response:
            return f"HTTP {response.status}"
    except Exception as exc:
        shown = webhook_origin(url)
        reason = str(exc).replace(url, shown)
        logger.warning("webhook %s failed: %s", shown, reason)
        return f"failed: {reason}"[:64]


def webhook_origin(url: str) -> str:
    """The URL as logs and alert history may show it: scheme and host only. Webhook URLs often
    carry their credential in the path or query (Slack's /services/T../B../<secret>)."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}/…"


def alert_payload(alert: Alert) -> dict:
    """The webhook body. For a money rule (monthly_budget) `value` and `limit` are integer
    micro-units of `currency`, and `value_amount` / `limit_amount` the same as exact decimal
    strings ("40.000000"): never a float."""
    payload = {
        "type": "usage.threshold_crossed",
        "alert_id": alert.pk,
        "customer_id": str(alert.customer_id),
        "rule": alert.rule,
        "threshold": alert.threshold,
        "period": alert.period,
        "subject": alert.subject,
        "value": alert.value,
        "limit": alert.limit,
        "created_at": alert.created_at.isoformat(),
    }
    if alert.is_money:
        payload.update(
            currency=money.currency(),
            value_amount=str(alert.value_amount),
            limit_amount=str(alert.limit_amount),
        )
    return payload


def _email_context(alert: Alert) -> dict:
    """What the email templates say of one alert (money rules as money)."""
    context = {"alert": alert, "percent_used": alert.percent_used}
    if alert.is_money:  # "40.00 USD of the 50.00 USD monthly budget"
        context["value_money"] = money.micros_text(alert.value)
        context["limit_money"] = money.micros_text(alert.limit)
    return context


def _email(*, customer, alerts: list[Alert], options) -> list[Alert]:
    """ONE email for the alerts not yet emailed (each claimed by its emailed_at, so a second
    sender skips it); the ones sent. A failure releases them for a later check."""
    now = timezone.now()
    claimed = [
        a
        for a in alerts
        if Alert.objects.filter(pk=a.pk, emailed_at__isnull=True).update(emailed_at=now)
    ]
    if not claimed:
        return []
    notify_staff = options.notify_staff if options else True
    context = {
        "customer": customer,
        "usage_url": settings.PORTAL_BASE_URL.rstrip("/") + reverse("customer:usage_overview"),
    }
    if len(claimed) == 1:
        name = "usage_alert"
        context.update(_email_context(claimed[0]))
    else:
        name = "usage_alerts"
        context["lines"] = [alert_channels.alert_line(a) for a in claimed]
        context["limit_reached"] = any(
            a.threshold >= 100 and a.rule in Alert.LIMIT_RULES for a in claimed
        )
        # Unusual usage is found by the import, not by a threshold of the counters.
        context["thresholds_only"] = all(a.rule != Alert.Rule.USAGE_ANOMALY for a in claimed)
    ids = [a.pk for a in claimed]
    try:
        send_templated(
            name=name,
            to=customer.contact_emails,
            bcc=list(settings.STAFF_ALERT_EMAILS) if notify_staff else [],
            context=context,
        )
    except Exception as exc:
        logger.exception("alerts %s email failed", ids)
        Alert.objects.filter(pk__in=ids).update(emailed_at=None, email_error=str(exc)[:500])
        return []
    Alert.objects.filter(pk__in=ids).update(email_error="")
    return claimed


def alerts_deliver(*, alert_ids, opener=urllib.request.urlopen, sns=None) -> int:
    """Deliver alerts, grouped by customer: one email listing those not yet emailed, each to
    the signed webhook (one POST per alert: receivers process alerts by id), and one message
    per other channel (alert_channels.py). Returns how many alerts were emailed now."""
    alerts = Alert.objects.filter(pk__in=list(alert_ids)).select_related("customer")
    by_customer: dict = {}
    for alert in sorted(alerts, key=lambda a: (a.rule, a.period, a.threshold, a.subject, a.pk)):
        by_customer.setdefault(alert.customer_id, []).append(alert)
    emailed = 0
    for group in by_customer.values():
        customer = group[0].customer
        options = CustomerUsageSettings.objects.filter(customer=customer).first()
        sent = _email(customer=customer, alerts=group, options=options)
        emailed += len(sent)
        if sent and options and options.webhook_url:
            for alert in sent:
                status = webhook_post(
                    url=options.webhook_url,
                    secret=options.webhook_secret,
                    payload=alert_payload(alert),
                    opener=opener,
                )
                Alert.objects.filter(pk=alert.pk).update(webhook_status=status)
        alert_channels.deliver_channels(
            customer=customer,
            alerts=group,
            options=options,
            now=timezone.now(),
            opener=opener,
            sns=sns,
        )
    return emailed


def alert_deliver(*, alert_id: int, opener=urllib.request.urlopen, sns=None) -> bool:
    """Deliver one alert (alerts_deliver); whether it was emailed now."""
    return alerts_deliver(alert_ids=[alert_id], opener=opener, sns=sns) > 0
