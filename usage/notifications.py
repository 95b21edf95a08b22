"""Delivery of usage alerts and summaries: email (text + HTML) and the optional signed webhook.

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


def alert_deliver(*, alert_id: int, opener=urllib.request.urlopen) -> bool:
    """Email (and webhook) one alert, once: the emailed_at claim stops a second sender."""
    claimed = Alert.objects.filter(pk=alert_id, emailed_at__isnull=True).update(
        emailed_at=timezone.now()
    )
    if not claimed:
        return False
    alert = Alert.objects.select_related("customer").get(pk=alert_id)
    customer = alert.customer
    options = CustomerUsageSettings.objects.filter(customer=customer).first()
    notify_staff = options.notify_staff if options else True
    context = {
        "alert": alert,
        "customer": customer,
        "percent_used": alert.percent_used,
        "usage_url": settings.PORTAL_BASE_URL.rstrip("/") + reverse("customer:usage_overview"),
    }
    if alert.is_money:  # "40.00 USD of the 50.00 USD monthly budget"
        context["value_money"] = money.micros_text(alert.value)
        context["limit_money"] = money.micros_text(alert.limit)
    try:
        send_templated(
            name="usage_alert",
            to=customer.contact_emails,
            bcc=list(settings.STAFF_ALERT_EMAILS) if notify_staff else [],
            context=context,
        )
    except Exception as exc:
        logger.exception("alert %s email failed", alert_id)
        Alert.objects.filter(pk=alert_id).update(emailed_at=None, email_error=str(exc)[:500])
        return False
    Alert.objects.filter(pk=alert_id).update(email_error="")
    if options and options.webhook_url:
        status = webhook_post(
            url=options.webhook_url,
            secret=options.webhook_secret,
            payload=alert_payload(alert),
            opener=opener,
        )
        Alert.objects.filter(pk=alert_id).update(webhook_status=status)
    return True
