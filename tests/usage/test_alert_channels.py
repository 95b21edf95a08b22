"""Alerts to the SNS topic and to Slack-compatible webhooks (usage/alert_channels.py): several
thresholds crossed in one check make one message per channel, each delivery is recorded per
alert and retried until sent, and Slack webhook URLs (credentials) are never shown whole."""

import datetime as dt
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import boto3
import pytest
from django.core import mail
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from usage import alert_channels
from usage.alerts import alerts_check
from usage.duckdb_engine import DuckDBEngine
from usage.models import Alert, AlertDelivery, CustomerUsageSettings

from .conftest import put_counter

NOW = dt.datetime(2026, 11, 23, 14, 30, tzinfo=dt.UTC)
SECRET = "hush0hush1hush2hush3"
Status = AlertDelivery.Status


class Receiver(ThreadingHTTPServer):
    """A Slack-compatible webhook on loopback: records each POST, answers `statuses` in turn
    (then 200)."""

    def __init__(self):
        self.posts: list[tuple[str, dict]] = []
        self.statuses: list[int] = []
        super().__init__(("127.0.0.1", 0), _Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.posts.append((self.path, json.loads(body)))
        status = self.server.statuses.pop(0) if self.server.statuses else 200
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok" if status == 200 else b"no_service")

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    server = Receiver()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def topic(dynamodb, settings):
    """The alert topic in moto, with an SQS queue subscribed: what the topic published."""
    sns = boto3.client("sns", region_name=settings.AWS_REGION)
    sqs = boto3.client("sqs", region_name=settings.AWS_REGION)
    arn = sns.create_topic(Name="bedrock-usage-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alerts")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"])
    settings.ALERTS_SNS_TOPIC_ARN = arn

    def published() -> list[dict]:
        found = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)
        return [json.loads(m["Body"]) for m in found.get("Messages", [])]

    return published


@pytest.fixture
def staff_api(staff_user):
    from rest_framework.test import APIClient

    from core.models import ApiKey
    from portal.api.keys import api_key_create

    issued = api_key_create(name="t", scope=ApiKey.Scope.READ_WRITE, created_by=staff_user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    return client


@pytest.fixture
def limited(customer):
    customer.monthly_token_quota = 1000
    customer.save()
    return customer


@pytest.fixture
def slack(limited, receiver, settings):
    """The customer's Slack webhook and the staff one, on the loopback receiver."""
    CustomerUsageSettings.objects.create(
        customer=limited, slack_webhook_url=receiver.url(f"/services/T1/B2/{SECRET}")
    )
    settings.ALERTS_SLACK_WEBHOOK_URL = receiver.url("/services/T9/B9/staff-secret")
    return receiver


def _check(dynamodb, now=NOW):
    return alerts_check(now=now, client=dynamodb, engine=DuckDBEngine())


def _three_crossed(dynamodb, customer):
    put_counter(
        dynamodb, customer.pk, "MONTH#2026-11", requests=1, input_tokens=1200,
        quota_tokens=1200,
    )  # fmt: skip


def _later():
    """A check once the first retry delay is over (the alerts and claims made that long ago;
    they carry the real clock's time)."""
    ago = dt.timedelta(minutes=alert_channels.FIRST_RETRY_MINUTES + 1)
    Alert.objects.update(created_at=F("created_at") - ago)
    AlertDelivery.objects.update(claimed_at=F("claimed_at") - ago)
    return timezone.now()


def test_three_thresholds_make_one_email_one_sns_message_and_one_slack_post(
    dynamodb, topic, slack, limited, django_capture_on_commit_callbacks
):
    _three_crossed(dynamodb, limited)
    with django_capture_on_commit_callbacks(execute=True):
        assert _check(dynamodb) == 3

    (email,) = mail.outbox
    assert email.subject == "[Usage alert] Acme Analytics: 3 alert thresholds crossed"

    (published,) = topic()
    assert published["Subject"] == "3 usage alerts for Acme Analytics"
    attributes = published["MessageAttributes"]
    assert attributes["customer_id"]["Value"] == str(limited.pk)
    assert attributes["type"]["Value"] == "usage.thresholds_crossed"
    data = json.loads(published["Message"])  # SQS gets the JSON form
    assert data["type"] == "usage.thresholds_crossed"
    assert data["customer_id"] == str(limited.pk)
    assert [(a["rule"], a["threshold"]) for a in data["alerts"]] == [
        ("monthly_tokens", 50),
        ("monthly_tokens", 80),
        ("monthly_tokens", 100),
    ]

    posts = dict(slack.posts)
    assert len(slack.posts) == 2  # the customer's webhook and the staff one, once each
    customer_post = posts[f"/services/T1/B2/{SECRET}"]
    for post in (customer_post, posts["/services/T9/B9/staff-secret"]):
        assert post["text"].startswith("3 usage alerts for Acme Analytics\n")
        for percent in (50, 80, 100):
            line = f"• {percent}% of the monthly token quota: 1,200 of 1,000 tokens for Nov 2026"
            assert line in post["text"]
        section, context = post["blocks"]
        assert section["text"]["text"].startswith("*3 usage alerts for Acme Analytics*\n")
        assert "See the usage" in context["elements"][0]["text"]
    assert "/app/usage/" in customer_post["blocks"][1]["elements"][0]["text"]

    deliveries = AlertDelivery.objects.all()
    assert len(deliveries) == 9  # 3 alerts x (SNS, Slack, staff Slack)
    assert {(d.status, d.attempts) for d in deliveries} == {(Status.SENT, 1)}
    assert {d.detail for d in deliveries if d.channel != "sns"} == {"HTTP 200"}
    assert all(d.detail.startswith("message ") for d in deliveries if d.channel == "sns")


def test_no_channel_configured_means_email_only(dynamodb, limited, settings):
    settings.ALERTS_SNS_TOPIC_ARN = ""
    settings.ALERTS_SLACK_WEBHOOK_URL = ""
    _three_crossed(dynamodb, limited)
    assert _check(dynamodb) == 3
    assert not AlertDelivery.objects.exists()


def test_staff_slack_follows_the_customers_staff_copy_setting(dynamodb, limited, settings):
    settings.ALERTS_SNS_TOPIC_ARN = ""
    settings.ALERTS_SLACK_WEBHOOK_URL = "https://hooks.slack.com/services/T/B/x"
    CustomerUsageSettings.objects.create(customer=limited, notify_staff=False)
    _three_crossed(dynamodb, limited)
    _check(dynamodb)
    assert not AlertDelivery.objects.exists()


def test_a_failed_slack_post_is_retried_later_and_never_shows_its_url(
    dynamodb, slack, limited, settings, caplog, django_capture_on_commit_callbacks
):
    settings.ALERTS_SNS_TOPIC_ARN = ""
    slack.statuses = [503, 200]  # the customer's post fails once; the staff one goes through
    _three_crossed(dynamodb, limited)
    with django_capture_on_commit_callbacks(execute=True):
        _check(dynamodb)
    failed = AlertDelivery.objects.filter(status=Status.FAILED)
    assert failed.count() == 3
    assert {d.channel for d in failed} == {"slack"}
    detail = failed[0].detail
    assert detail.startswith("failed: HTTP 503 from http://127.0.0.1:")
    assert detail.endswith(f"/…{SECRET[-4:]}")

    # Not yet due on a check right away (the delay grows with each attempt) ...
    with django_capture_on_commit_callbacks(execute=True):
        _check(dynamodb, timezone.now())
    assert len(slack.posts) == 2
    # ... but on a later one: the same three alerts, in one post.
    with django_capture_on_commit_callbacks(execute=True):
        assert _check(dynamodb, _later()) == 0
    assert len(slack.posts) == 3
    assert slack.posts[-1][1]["text"].startswith("3 usage alerts")
    assert {(d.status, d.attempts) for d in AlertDelivery.objects.filter(channel="slack")} == {
        (Status.SENT, 2)
    }
    assert len(mail.outbox) == 1  # the email went once
    for text in (caplog.text, *(d.detail for d in AlertDelivery.objects.all())):
        assert SECRET not in text and "staff-secret" not in text


def test_retries_stop_after_the_last_attempt(dynamodb, slack, limited, settings):
    settings.ALERTS_SNS_TOPIC_ARN = ""
    settings.ALERTS_SLACK_WEBHOOK_URL = ""
    slack.statuses = [500] * 20
    _three_crossed(dynamodb, limited)
    _check(dynamodb)
    from usage.notifications import alerts_deliver

    ids = list(Alert.objects.values_list("pk", flat=True))
    for _ in range(alert_channels.MAX_ATTEMPTS + 2):
        AlertDelivery.objects.update(claimed_at=None)  # as if every delay were over
        alerts_deliver(alert_ids=ids)
    assert len(slack.posts) == alert_channels.MAX_ATTEMPTS
    delivery = AlertDelivery.objects.first()
    assert (delivery.status, delivery.attempts) == (Status.REJECTED, alert_channels.MAX_ATTEMPTS)
    assert delivery.detail.startswith("gave up after 8: HTTP 500 from")


def test_a_slack_refusal_is_recorded_and_not_retried(
    dynamodb, slack, limited, settings, django_capture_on_commit_callbacks
):
    settings.ALERTS_SNS_TOPIC_ARN = ""
    settings.ALERTS_SLACK_WEBHOOK_URL = ""
    slack.statuses = [404]  # Slack: no_service (the webhook was removed)
    _three_crossed(dynamodb, limited)
    with django_capture_on_commit_callbacks(execute=True):
        _check(dynamodb)
        _check(dynamodb, _later())
    assert len(slack.posts) == 1
    deliveries = AlertDelivery.objects.all()
    assert {d.status for d in deliveries} == {Status.REJECTED}
    assert deliveries[0].detail.startswith("refused: HTTP 404 from http://127.0.0.1:")


def test_an_sns_failure_loses_nothing(
    dynamodb, topic, limited, settings, django_capture_on_commit_callbacks
):
    """The topic is missing at first (a wrong ARN, a permission not granted yet): the alerts
    wait, failed, and go out once it works."""
    settings.ALERTS_SLACK_WEBHOOK_URL = ""
    good = settings.ALERTS_SNS_TOPIC_ARN
    settings.ALERTS_SNS_TOPIC_ARN = good.replace("bedrock-usage-alerts", "missing")
    _three_crossed(dynamodb, limited)
    with django_capture_on_commit_callbacks(execute=True):
        _check(dynamodb)
    assert {d.status for d in AlertDelivery.objects.all()} == {Status.FAILED}
    assert "NotFound" in AlertDelivery.objects.first().detail
    assert topic() == []

    settings.ALERTS_SNS_TOPIC_ARN = good
    with django_capture_on_commit_callbacks(execute=True):
        _check(dynamodb, _later())
    (published,) = topic()
    assert len(json.loads(published["Message"])["alerts"]) == 3
    assert {d.status for d in AlertDelivery.objects.all()} == {Status.SENT}


def test_many_alerts_are_published_in_batches_within_the_sns_size_limit(
    dynamodb, topic, limited, settings
):
    settings.ALERTS_SLACK_WEBHOOK_URL = ""
    alerts = [
        Alert.objects.create(
            customer=limited, rule="hourly_tokens", threshold=1000, period="2026-11-23T14",
            subject=f"user=u{i:03d} application=a model=m", value=5000, limit=1000,
        )
        for i in range(alert_channels.SNS_BATCH + 10)
    ]  # fmt: skip
    AlertDelivery.objects.bulk_create(AlertDelivery(alert=a, channel="sns") for a in alerts)
    from usage.notifications import alerts_deliver

    alerts_deliver(alert_ids=[a.pk for a in alerts])
    published = topic()
    sizes = sorted(len(json.loads(p["Message"])["alerts"]) for p in published)
    assert sizes == [10, alert_channels.SNS_BATCH]
    assert {d.status for d in AlertDelivery.objects.all()} == {Status.SENT}
    assert len(mail.outbox) == 1  # one email for all of them
    assert mail.outbox[0].body.count("\n- ") == alert_channels.SNS_BATCH + 10


def test_alerts_whose_delivery_task_was_lost_go_out_with_a_later_check(
    dynamodb, topic, slack, limited, django_capture_on_commit_callbacks
):
    _three_crossed(dynamodb, limited)
    _check(dynamodb)  # recorded; the delivery task never ran (no commit callbacks)
    assert not mail.outbox and not slack.posts
    assert {d.status for d in AlertDelivery.objects.all()} == {Status.PENDING}
    with django_capture_on_commit_callbacks(execute=True):
        _check(dynamodb, _later())
    assert len(mail.outbox) == 1 and len(slack.posts) == 2 and len(topic()) == 1
    assert "3 alert thresholds" in mail.outbox[0].subject
    assert {d.status for d in AlertDelivery.objects.all()} == {Status.SENT}


def test_a_claim_left_by_a_stopped_worker_is_taken_again(dynamodb, slack, limited, settings):
    settings.ALERTS_SNS_TOPIC_ARN = ""
    settings.ALERTS_SLACK_WEBHOOK_URL = ""
    _three_crossed(dynamodb, limited)
    _check(dynamodb)
    stopped = timezone.now() - dt.timedelta(minutes=alert_channels.STALE_SENDING_MINUTES + 1)
    AlertDelivery.objects.update(status=Status.SENDING, claimed_at=stopped, attempts=1)
    from usage.notifications import alerts_deliver

    alerts_deliver(alert_ids=list(Alert.objects.values_list("pk", flat=True)))
    assert len(slack.posts) == 1
    assert {(d.status, d.attempts) for d in AlertDelivery.objects.all()} == {(Status.SENT, 2)}
    # A fresh claim is left alone.
    AlertDelivery.objects.update(status=Status.SENDING, claimed_at=timezone.now())
    alerts_deliver(alert_ids=list(Alert.objects.values_list("pk", flat=True)))
    assert len(slack.posts) == 1


def test_slack_text_is_escaped_and_sns_subject_is_ascii(limited):
    limited.name = "<!channel> Café & Co\nLtd"
    alert = Alert(customer=limited, rule="monthly_tokens", threshold=80, period="2026-11",
                  value=800, limit=1000)  # fmt: skip
    payload = alert_channels.slack_payload(limited, [alert], "https://portal.example/u")
    assert payload["text"].startswith("Usage alert for &lt;!channel&gt; Café &amp; Co")
    assert "<!channel>" not in json.dumps(payload)
    subject = alert_channels.sns_subject(limited, [alert, alert])
    assert subject == "2 usage alerts for <!channel> Caf? & Co?Ltd"
    assert subject.isascii() and len(subject) <= 100


def test_mask_webhook_url():
    url = "https://hooks.slack.com/services/T0001/B0002/abcdefghijklmnopqrstWXYZ"
    assert alert_channels.mask_webhook_url(url) == "https://hooks.slack.com/…WXYZ"
    assert alert_channels.mask_webhook_url("") == ""


HOSTILE = [
    ("http://hooks.slack.com/services/T/B/x", "Use an https URL"),
    ("javascript:alert(1)", "Use an https URL"),
    ("ftp://hooks.slack.com/x", "Use an https URL"),
    ("https://hooks.slack.com/a\x00b", "U+0000"),
    ("https://hooks.slack.com/a\x1bb", "U+001B"),
    ("https://hooks.slack.com/a b", "space"),
    ("https://user:pw@hooks.slack.com/x", "user name or password"),
    ("https://hooks.slack.com:99999/x", "not a valid URL"),
    ("https://" + "h" * 100_000 + ".example/", "at most 500 characters"),
]


@pytest.mark.parametrize(("url", "message"), HOSTILE)
def test_hostile_slack_urls_get_a_clear_form_error(staff_client, customer, url, message):
    page = reverse("staff:usage_customer_settings", args=[customer.pk])
    response = staff_client.post(page, {"monthly_token_percents": "50", "slack_webhook_url": url})
    assert response.status_code == 200
    body = response.content.decode()
    assert message in body or ("U+0000" in message and "Null characters are not allowed" in body)
    assert not CustomerUsageSettings.objects.filter(customer=customer).exclude(slack_webhook_url="")


@pytest.mark.parametrize(("url", "message"), HOSTILE)
def test_hostile_slack_urls_get_a_clear_api_error(staff_api, customer, url, message):
    answer = staff_api.patch(
        f"/api/v1/customers/{customer.pk}/alert-settings/",
        {"slack_webhook_url": url},
        format="json",
    )
    assert answer.status_code == 400
    errors = " ".join(answer.json()["error"]["fields"]["slack_webhook_url"])
    assert message in errors or ("U+0000" in message and "Null characters" in errors), errors


def test_a_saved_slack_url_is_never_shown_whole(staff_client, staff_api, customer):
    url = f"https://hooks.slack.com/services/T0001/B0002/{SECRET}"
    page = reverse("staff:usage_customer_settings", args=[customer.pk])
    saved = staff_client.post(page, {"monthly_token_percents": "50", "slack_webhook_url": url})
    assert saved.status_code == 302
    assert CustomerUsageSettings.objects.get(customer=customer).slack_webhook_url == url
    masked = f"https://hooks.slack.com/…{SECRET[-4:]}"
    for body in (
        staff_client.get(page).content.decode(),
        staff_client.get(reverse("staff:usage_customer", args=[customer.pk])).content.decode(),
    ):
        assert masked in body and SECRET not in body
    api = f"/api/v1/customers/{customer.pk}/alert-settings/"
    answer = staff_api.get(api).json()
    assert answer["slack_webhook"] == masked and "slack_webhook_url" not in answer
    # Saving the form again without typing it keeps it; the API's "" removes it.
    staff_client.post(page, {"monthly_token_percents": "80"})
    assert CustomerUsageSettings.objects.get(customer=customer).slack_webhook_url == url
    patched = staff_api.patch(api, {"slack_webhook_url": ""}, format="json")
    assert patched.status_code == 200 and patched.json()["slack_webhook"] == ""
    assert CustomerUsageSettings.objects.get(customer=customer).slack_webhook_url == ""
    set_again = staff_api.patch(api, {"slack_webhook_url": url}, format="json")
    assert set_again.json()["slack_webhook"] == masked and SECRET not in set_again.content.decode()
    removed = staff_client.post(
        page, {"monthly_token_percents": "80", "remove_slack_webhook": "on"}
    )
    assert removed.status_code == 302
    assert CustomerUsageSettings.objects.get(customer=customer).slack_webhook_url == ""


def test_the_alerts_api_lists_deliveries(
    dynamodb,
    slack,
    limited,
    staff_api,
    settings,
    django_capture_on_commit_callbacks,
):
    settings.ALERTS_SNS_TOPIC_ARN = ""
    _three_crossed(dynamodb, limited)
    with django_capture_on_commit_callbacks(execute=True):
        _check(dynamodb)
    rows = staff_api.get("/api/v1/alerts/").json()["results"]
    assert len(rows) == 3
    for row in rows:
        channels = {d["channel"]: d for d in row["deliveries"]}
        assert set(channels) == {"slack", "staff_slack"}
        assert channels["slack"]["status"] == "sent" and channels["slack"]["detail"] == "HTTP 200"
