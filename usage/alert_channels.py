"""Alert channels beside email and the signed webhook: the deployment's SNS topic
(ALERTS_SNS_TOPIC_ARN), the customer's Slack-compatible incoming webhook, and the staff one
(ALERTS_SLACK_WEBHOOK_URL).

Each alert gets an AlertDelivery row per channel configured when it is recorded (in the same
transaction), so a delivery is never lost: a delivery is claimed (pending -> sending) with a
conditional update, sent, then marked sent, or failed and retried by later checks with a
growing delay, MAX_ATTEMPTS times at most; a receiver's clear refusal (a Slack 4xx) is not
retried. The alerts of one customer claimed together go out as ONE message per channel.

Slack webhook URLs are credentials (/services/T…/B…/<secret>): they are stored, used, and shown
only masked (`mask_webhook_url`), in pages, the API, logs and the delivery records.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import logging
import urllib.error
import urllib.parse
import urllib.request

from botocore.config import Config
from django.conf import settings
from django.contrib.humanize.templatetags.humanize import intcomma
from django.db.models import F
from django.urls import reverse

from core.aws import aws_client
from core.templatetags.display_tags import period as period_label
from core.text import unprintable
from customers import money

from .models import Alert, AlertDelivery

logger = logging.getLogger(__name__)

Channel = AlertDelivery.Channel
Status = AlertDelivery.Status
MAX_ATTEMPTS = 8
FIRST_RETRY_MINUTES = 2  # then 4, 8, ... 128: eight attempts within about four hours
STALE_SENDING_MINUTES = 10  # a claim this old lost its worker: sent again (at least once)
MAX_URL_LENGTH = 500
SNS_CONFIG = Config(connect_timeout=5, read_timeout=10, retries={"max_attempts": 2})
# Slack's section text holds 3,000 characters: more alerts than this are counted, not listed.
MAX_LISTED = 20
SNS_BATCH = 50


# --- configuration -------------------------------------------------------------------------


def url_problem(url: str) -> str | None:
    """Why `url` cannot be a webhook, or None. https only; http only to a loopback address
    (a receiver on this machine, as tests use)."""
    if len(url) > MAX_URL_LENGTH:
        return f"Use at most {MAX_URL_LENGTH} characters."
    if problem := unprintable(url):
        return f"The URL contains {problem}."
    if any(c.isspace() for c in url):
        return "The URL contains a space."
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018 (raises on a port that is not a number)
    except ValueError:
        return "This is not a valid URL."
    if parts.scheme not in ("https", "http") or not parts.hostname:
        return "Use an https URL."
    if parts.username or parts.password:
        return "The URL cannot carry a user name or password."
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        return "Use an https URL (http only to this machine, 127.0.0.1 or localhost)."
    return None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def mask_webhook_url(url: str) -> str:
    """How a stored webhook URL is shown: its origin and the last 4 characters of its secret,
    "https://hooks.slack.com/…x9Zq"."""
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname or ''}{port}/…{url[-4:]}"


def channels_for(options) -> list[str]:
    """The channels beyond email an alert of a customer with these settings goes to now."""
    found = []
    if settings.ALERTS_SNS_TOPIC_ARN:
        found.append(Channel.SNS)
    if options is not None and options.slack_webhook_url:
        found.append(Channel.SLACK)
    if settings.ALERTS_SLACK_WEBHOOK_URL and (options is None or options.notify_staff):
        found.append(Channel.STAFF_SLACK)
    return found


# --- what is said ----------------------------------------------------------------------------


def alert_line(alert: Alert) -> str:
    """One alert in one line of plain text (Slack, SNS, the grouped email's subject list)."""
    rule, period = alert.rule, period_label(alert.period)
    if alert.is_money:
        value, limit = money.micros_text(alert.value), money.micros_text(alert.limit)
    else:
        value, limit = intcomma(alert.value), intcomma(alert.limit)
    percent = f" ({alert.percent_used}%)" if alert.percent_used is not None else ""
    if rule == Alert.Rule.MONTHLY_TOKENS:
        return (
            f"{alert.threshold}% of the monthly token quota: {value} of {limit} tokens "
            f"for {period}{percent}"
        )
    if rule == Alert.Rule.DAILY_REQUESTS:
        return (
            f"{alert.threshold}% of the daily request limit: {value} of {limit} requests "
            f"on {period} (UTC){percent}"
        )
    if rule == Alert.Rule.MONTHLY_BUDGET:
        whose = f" of {alert.subject}" if alert.subject else ""  # a token's own budget
        # The spend counter includes the holds of calls in flight, which may settle below.
        held = ", reached or held by calls in flight" if alert.threshold >= 100 else ""
        return (
            f"{alert.threshold}% of the monthly budget{whose}: {value} of {limit} for {period}"
            f"{percent}{held}"
        )
    if rule == Alert.Rule.USAGE_ANOMALY:
        return (
            f"Unusual usage on {period} (UTC), a {alert.subject}: {value} requests in one hour "
            f"where about {limit} are usual for that hour of the week"
        )
    if rule == Alert.Rule.HOURLY_TOKENS:
        return (
            f"{value} tokens in the hour from {period} ({alert.subject}), "
            f"threshold {limit} per user, application and model"
        )
    subject = f" ({alert.subject})" if alert.subject else ""
    return f"{alert.get_rule_display()}{subject}: {value} against {limit} for {period}"


def message_title(customer, alerts: list[Alert]) -> str:
    if len(alerts) == 1:
        return f"Usage alert for {customer.name}"
    return f"{len(alerts)} usage alerts for {customer.name}"


def _listed(alerts: list[Alert]) -> list[str]:
    lines = [alert_line(a) for a in alerts[:MAX_LISTED]]
    if len(alerts) > MAX_LISTED:
        lines.append(f"and {len(alerts) - MAX_LISTED} more")
    return lines


def _slack_escape(text: str) -> str:
    """Slack reads &, < and > as markup (links, mentions): a customer name is text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_payload(customer, alerts: list[Alert], link: str) -> dict:
    """A Slack incoming-webhook body: `text` (the notification, and what receivers that read
    only it show) and the same in `blocks`, with a link to the usage page."""
    title = _slack_escape(message_title(customer, alerts))
    lines = "\n".join(f"• {_slack_escape(line)}" for line in _listed(alerts))
    return {
        "text": f"{title}\n{lines}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{lines}"}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"<{link}|See the usage>"}],
            },
        ],
    }


def sns_subject(customer, alerts: list[Alert]) -> str:
    """SNS subjects are ASCII without line breaks, at most 100 characters."""
    title = message_title(customer, alerts).encode("ascii", "replace").decode()
    title = "".join(c if c.isprintable() else "?" for c in title)
    return title[:100]


def sns_message(customer, alerts: list[Alert], link: str) -> str:
    """MessageStructure json: text for people (email subscriptions, the default), the alerts
    as JSON (the signed webhook's fields) for programs (SQS, Lambda, HTTPS)."""
    from .notifications import alert_payload

    text = "\n".join(
        [message_title(customer, alerts), *(f"- {line}" for line in _listed(alerts)), "", link]
    )
    data = json.dumps(
        {
            "type": "usage.thresholds_crossed",
            "customer_id": str(customer.pk),
            "customer_name": customer.name,
            "alerts": [alert_payload(a) for a in alerts],
        },
        sort_keys=True,
    )
    protocols = ("sqs", "lambda", "http", "https", "firehose")
    return json.dumps({"default": text, "email": text, **dict.fromkeys(protocols, data)})


# --- sending -----------------------------------------------------------------------------------


class Refused(Exception):
    """The receiver answered that this will never work (not retried)."""


def slack_post(url: str, payload: dict, opener=urllib.request.urlopen) -> str:
    """POST to a Slack-compatible webhook; the short status recorded. Raises on failure, with
    a text that never holds the URL; Refused for a 4xx other than 408 and 429."""
    shown = mask_webhook_url(url)
    if problem := url_problem(url):
        raise Refused(f"unusable URL {shown}: {problem}")
    request = urllib.request.Request(  # noqa: S310 (scheme checked by url_problem)
        url,
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "bedrock-usage-portal-alerts"},
    )
    try:
        with opener(request, timeout=settings.USAGE_WEBHOOK_TIMEOUT_SECONDS) as response:
            return f"HTTP {response.status}"
    except urllib.error.HTTPError as exc:
        if 400 <= exc.code < 500 and exc.code not in (408, 429):
            raise Refused(f"HTTP {exc.code} from {shown}") from None
        raise OSError(f"HTTP {exc.code} from {shown}") from None
    except Exception as exc:
        reason = str(exc).replace(url, shown)
        raise OSError(f"{type(exc).__name__} from {shown}: {reason}"[:190]) from None


def sns_publish(customer, alerts: list[Alert], link: str, client=None) -> str:
    client = client or aws_client("sns", config=SNS_CONFIG)
    answer = client.publish(
        TopicArn=settings.ALERTS_SNS_TOPIC_ARN,
        Subject=sns_subject(customer, alerts),
        Message=sns_message(customer, alerts, link),
        MessageStructure="json",
        MessageAttributes={
            "type": {"DataType": "String", "StringValue": "usage.thresholds_crossed"},
            "customer_id": {"DataType": "String", "StringValue": str(customer.pk)},
        },
    )
    return f"message {answer['MessageId']}"[:190]


def _links(customer) -> tuple[str, str]:
    base = settings.PORTAL_BASE_URL.rstrip("/")
    return (
        base + reverse("customer:usage_overview"),
        base + reverse("staff:usage_customer", args=[customer.pk]),
    )


def is_due(delivery: AlertDelivery, now: dt.datetime) -> bool:
    """Whether a delivery may be (re)sent now."""
    if delivery.status == Status.PENDING:
        return True
    if delivery.status == Status.SENDING:
        return delivery.claimed_at is None or (
            now - delivery.claimed_at >= dt.timedelta(minutes=STALE_SENDING_MINUTES)
        )
    if delivery.status == Status.FAILED and delivery.attempts < MAX_ATTEMPTS:
        wait = dt.timedelta(minutes=FIRST_RETRY_MINUTES * 2 ** max(delivery.attempts - 1, 0))
        return delivery.claimed_at is None or now - delivery.claimed_at >= wait
    return False


def _claim(deliveries: list[AlertDelivery], now: dt.datetime) -> list[AlertDelivery]:
    """The due deliveries this process won (status and attempts unchanged since read)."""
    won = []
    for d in deliveries:
        if not is_due(d, now):
            continue
        claimed = AlertDelivery.objects.filter(pk=d.pk, status=d.status, attempts=d.attempts)
        if claimed.update(status=Status.SENDING, claimed_at=now, attempts=F("attempts") + 1):
            won.append(d)
    return won


def _send(channel, *, customer, alerts, options, opener, sns) -> str:
    """One message with these alerts to one channel; the short result recorded."""
    customer_link, staff_link = _links(customer)
    if channel == Channel.SNS:
        if not settings.ALERTS_SNS_TOPIC_ARN:
            raise Refused("ALERTS_SNS_TOPIC_ARN is not set any more")
        return sns_publish(customer, alerts, staff_link, client=sns)
    if channel == Channel.SLACK:
        url, link = (options.slack_webhook_url if options else ""), customer_link
    else:
        url, link = settings.ALERTS_SLACK_WEBHOOK_URL, staff_link
    if not url:
        raise Refused("no webhook URL is set any more")
    return slack_post(url, slack_payload(customer, alerts, link), opener)


def _record(claimed: list[AlertDelivery], now, *, detail="", error=None) -> None:
    ids = [d.pk for d in claimed]
    if error is None:
        AlertDelivery.objects.filter(pk__in=ids).update(
            status=Status.SENT, sent_at=now, detail=detail[:200]
        )
    elif isinstance(error, Refused):
        AlertDelivery.objects.filter(pk__in=ids).update(
            status=Status.REJECTED, detail=f"refused: {error}"[:200]
        )
    else:  # retried by later checks (alerts._retry_undelivered), MAX_ATTEMPTS in all
        reason = str(error) or type(error).__name__
        last = [d.pk for d in claimed if d.attempts + 1 >= MAX_ATTEMPTS]
        AlertDelivery.objects.filter(pk__in=ids).exclude(pk__in=last).update(
            status=Status.FAILED, detail=f"failed: {reason}"[:200]
        )
        AlertDelivery.objects.filter(pk__in=last).update(
            status=Status.REJECTED, detail=f"gave up after {MAX_ATTEMPTS}: {reason}"[:200]
        )


def deliver_channels(*, customer, alerts: list[Alert], options, now, opener, sns=None) -> None:
    """One message per channel for the due deliveries of these alerts (one customer). SNS
    takes SNS_BATCH alerts a message (its 256 KB cap holds the JSON once per protocol); a
    Slack post lists MAX_LISTED and counts the rest."""
    by_alert = {a.pk: a for a in alerts}
    waiting = AlertDelivery.objects.filter(alert_id__in=list(by_alert)).exclude(
        status__in=[Status.SENT, Status.REJECTED]
    )
    by_channel: dict[str, list[AlertDelivery]] = {}
    for delivery in waiting:
        by_channel.setdefault(delivery.channel, []).append(delivery)
    for channel, deliveries in by_channel.items():
        claimed = sorted(_claim(deliveries, now), key=lambda d: _order(by_alert[d.alert_id]))
        size = SNS_BATCH if channel == Channel.SNS else len(claimed) or 1
        for batch in (claimed[i : i + size] for i in range(0, len(claimed), size)):
            listed = [by_alert[d.alert_id] for d in batch]
            try:
                detail = _send(
                    channel, customer=customer, alerts=listed, options=options, opener=opener,
                    sns=sns,
                )  # fmt: skip
            except Exception as exc:
                logger.warning("alerts %s to %s failed: %s", [a.pk for a in listed], channel, exc)
                _record(batch, now, error=exc)
            else:
                _record(batch, now, detail=detail)


def _order(alert: Alert):
    return (alert.rule, alert.period, alert.threshold, alert.subject, alert.pk)
