"""Billed usage: one row per customer, UTC day, model and tag combination.

Rows come from the per-request usage events (aggregated by Athena in production, DuckDB
locally); re-ingesting a day replaces its rows exactly, thanks to the unique key.
Missing tags are stored as "" so the unique key also covers untagged usage.
"""

from decimal import Decimal

from django.db import models
from django.utils import timezone

from core.models import BackgroundRun
from customers.money import amount_from_micros


class UsageDaily(models.Model):
    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.PROTECT, related_name="usage_daily"
    )
    day = models.DateField()
    model_id = models.CharField(max_length=200)
    application_id = models.CharField(max_length=200, blank=True, default="")
    cost_center = models.CharField(max_length=200, blank=True, default="")
    environment = models.CharField(max_length=100, blank=True, default="")
    requests = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    cache_read_tokens = models.BigIntegerField(default=0)
    cache_write_tokens = models.BigIntegerField(default=0)
    ingested_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "customer",
                    "day",
                    "model_id",
                    "application_id",
                    "cost_center",
                    "environment",
                ],
                name="usage_daily_unique_key",
            )
        ]
        indexes = [models.Index(fields=["day", "customer"])]

    def __str__(self):
        return f"{self.customer_id} {self.day} {self.model_id}"


class IngestedDay(models.Model):
    """A UTC day whose billed usage has been loaded; days missing here are caught up nightly.

    Also tells the pages which figures are final: usage of a day not listed here comes from
    the DynamoDB counters and is shown as provisional.
    """

    day = models.DateField(unique=True)
    run = models.ForeignKey(
        "usage.IngestRun", null=True, on_delete=models.SET_NULL, related_name="ingested_days"
    )
    engine = models.CharField(max_length=16)
    rows = models.PositiveIntegerField(default=0)
    requests = models.BigIntegerField(default=0)
    skipped_rows = models.PositiveIntegerField(
        default=0, help_text="Result rows for customer ids the portal does not know."
    )
    quarantined_rows = models.PositiveIntegerField(
        default=0,
        help_text="Result rows set aside because a value could not be stored "
        "(usage/quarantine.py), over every stage of the day's last ingest; see QuarantinedRow.",
    )
    hourly_rows = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="UsageHourly rows stored for the day; empty while the day's hourly usage has "
        "not been loaded (days imported before hourly usage existed): anomaly baselines skip "
        "such days instead of reading them as silent.",
    )
    ingested_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-day"]

    def __str__(self):
        return str(self.day)


class IngestRun(BackgroundRun):
    """One ingest of a range of days (nightly, catch-up, or a staff re-ingest). `progress_at`
    is set when it is claimed and after each day: a run with none for
    USAGE_INGEST_STALE_MINUTES lost its worker and is resumed (usage.services)."""

    class Trigger(models.TextChoices):
        NIGHTLY = "nightly", "Nightly"
        STAFF = "staff", "Staff page"
        COMMAND = "command", "Command"

    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    engine = models.CharField(max_length=16)
    start_day = models.DateField()
    end_day = models.DateField()
    # The days to ingest, ISO dates: a catch-up run may cover non-contiguous missing days.
    days = models.JSONField(default=list)
    days_total = models.PositiveIntegerField(default=0)
    days_done = models.PositiveIntegerField(default=0)
    rows_written = models.BigIntegerField(default=0)
    # [{"day": "YYYY-MM-DD", "error": "..."}]: a failed day does not stop the others.
    errors = models.JSONField(default=list, blank=True)

    class Meta(BackgroundRun.Meta):
        pass

    def __str__(self):
        return f"{self.start_day}..{self.end_day} {self.status}"

    @property
    def progress_percent(self) -> int:
        return 100 * self.days_done // self.days_total if self.days_total else 0


class QuarantinedRow(models.Model):
    """A result row the import did not store, and why: a text with a control character or a
    lone surrogate or longer than its column, a count that is not a storable integer, events
    with an unusable token count, lines the engine could not parse. Replaced with the day's
    rows of the same stage at each ingest of that day (usage/quarantine.py)."""

    class Stage(models.TextChoices):
        DAILY = "daily", "Billed usage"
        USERS = "users", "Per-user usage"
        TOKENS = "tokens", "Token last use"
        OPERATIONS = "operations", "Hourly usage and latency"

    day = models.DateField()
    run = models.ForeignKey(
        "usage.IngestRun",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="quarantined",
    )
    stage = models.CharField(max_length=16, choices=Stage.choices)
    reason = models.TextField(help_text="What was wrong with which column.")
    # JSON with ensure_ascii: NUL is stored as the six characters \u0000, never as NUL.
    raw_row = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["day", "stage", "id"]
        indexes = [
            models.Index(fields=["day", "stage"]),
            models.Index(fields=["run", "day"]),
        ]

    def __str__(self):
        return f"{self.day} {self.stage}: {self.reason[:60]}"


class UsageDifference(models.Model):
    """Billed totals (events) that differ from the proxy's DynamoDB counters for a day."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="usage_differences"
    )
    day = models.DateField()
    billed_requests = models.BigIntegerField(default=0)
    counter_requests = models.BigIntegerField(default=0)
    billed_tokens = models.BigIntegerField(default=0)
    counter_tokens = models.BigIntegerField(default=0)
    checked_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-day", "customer_id"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "day"], name="usage_difference_unique")
        ]

    def __str__(self):
        return f"{self.customer_id} {self.day}"

    @property
    def request_delta(self) -> int:
        return self.billed_requests - self.counter_requests

    @property
    def token_delta(self) -> int:
        return self.billed_tokens - self.counter_tokens


def default_percents() -> list[int]:
    return [50, 80, 100]


class CustomerUsageSettings(models.Model):
    """Alert thresholds, webhook and summary emails of one customer (defaults when absent)."""

    # The settings people edit (the staff form, the API; usage_settings_update writes them).
    # The secrets beside them, the signing secret and the Slack URL, follow rules of their own.
    EDITABLE = (
        "monthly_token_percents",
        "daily_request_percents",
        "monthly_budget_percents",
        "hourly_token_threshold",
        "anomaly_alerts",
        "notify_staff",
        "webhook_url",
        "summary_frequency",
    )

    class Summary(models.TextChoices):
        NONE = "", "No summary"
        WEEKLY = "weekly", "Weekly"
        MONTHLY = "monthly", "Monthly"

    customer = models.OneToOneField(
        "customers.Customer", on_delete=models.CASCADE, related_name="usage_settings"
    )
    monthly_token_percents = models.JSONField(default=default_percents, blank=True)
    daily_request_percents = models.JSONField(default=default_percents, blank=True)
    # Percents of the customer's monthly budget (money spent this month at list price).
    monthly_budget_percents = models.JSONField(default=default_percents, blank=True)
    # The hourly rule: tokens of one user, application and model within one hour.
    hourly_token_threshold = models.PositiveBigIntegerField(null=True, blank=True)
    notify_staff = models.BooleanField(default=True)
    webhook_url = models.URLField(blank=True)
    webhook_secret = models.CharField(max_length=128, blank=True)
    # A Slack-compatible incoming webhook. Its URL is its credential: written by staff, shown
    # afterwards only masked (usage/notifications.py mask_webhook_url), never logged.
    slack_webhook_url = models.CharField(max_length=500, blank=True)
    summary_frequency = models.CharField(
        max_length=16, choices=Summary.choices, default=Summary.NONE, blank=True
    )
    anomaly_alerts = models.BooleanField(
        default=True,
        help_text="Alert when an hour's requests are far above or below the usual for that "
        "hour of the week (usage/anomalies.py).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"usage settings of {self.customer_id}"

    @property
    def slack_webhook_masked(self) -> str:
        """The Slack webhook as pages and the API show it: "https://hooks.slack.com/…x9Zq"."""
        from .alert_channels import mask_webhook_url

        return mask_webhook_url(self.slack_webhook_url)


class Alert(models.Model):
    """One threshold crossing. The unique key, inserted before anything is sent, is what makes
    each crossing notify exactly once per period, however many checks run at the same time."""

    class Rule(models.TextChoices):
        MONTHLY_TOKENS = "monthly_tokens", "Monthly token quota"
        DAILY_REQUESTS = "daily_requests", "Daily request limit"
        HOURLY_TOKENS = "hourly_tokens", "Tokens per user, application and model in an hour"
        MONTHLY_BUDGET = "monthly_budget", "Monthly budget"
        USAGE_ANOMALY = "usage_anomaly", "Unusual usage (spike or silence)"

    # Rules whose value and limit are money: micro-units of the portal's currency.
    MONEY_RULES = frozenset({Rule.MONTHLY_BUDGET})
    # Rules whose 100 % means a limit of the proxy is reached (calls may be refused).
    LIMIT_RULES = frozenset({Rule.MONTHLY_TOKENS, Rule.DAILY_REQUESTS, Rule.MONTHLY_BUDGET})

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="usage_alerts"
    )
    rule = models.CharField(max_length=32, choices=Rule.choices)
    # A percent of the limit for the quota and budget rules, a token count for the hourly rule.
    threshold = models.PositiveBigIntegerField()
    period = models.CharField(max_length=16, help_text="YYYY-MM, YYYY-MM-DD or YYYY-MM-DDTHH")
    # Which user/application/model crossed the hourly rule; "" for the quota rules.
    subject = models.CharField(max_length=600, blank=True, default="")
    # Tokens or requests; for the budget rule, micro-units of the currency (see `is_money`).
    value = models.BigIntegerField()
    limit = models.BigIntegerField()
    created_at = models.DateTimeField(default=timezone.now)
    emailed_at = models.DateTimeField(null=True, blank=True)
    email_error = models.TextField(blank=True)
    webhook_status = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "rule", "threshold", "period", "subject"],
                name="usage_alert_once_per_period",
            )
        ]
        indexes = [models.Index(fields=["customer", "-created_at"])]

    def __str__(self):
        return f"{self.customer_id} {self.rule} {self.threshold} {self.period}"

    @property
    def is_money(self) -> bool:
        return self.rule in self.MONEY_RULES

    @property
    def value_amount(self) -> Decimal | None:
        """The value as an exact amount of the currency (money rules only)."""
        return amount_from_micros(self.value) if self.is_money else None

    @property
    def limit_amount(self) -> Decimal | None:
        return amount_from_micros(self.limit) if self.is_money else None

    @property
    def percent_used(self) -> int | None:
        """Whole percent of the limit reached (rounded down; integer arithmetic)."""
        return 100 * self.value // self.limit if self.limit else None


class AlertDelivery(models.Model):
    """An alert's delivery to one channel beyond email and the signed webhook: the deployment's
    SNS topic, the customer's Slack webhook, the staff Slack webhook. Created with the alert (in
    its transaction), for the channels configured then, so nothing is lost to a worker that
    stops: later checks send what is still pending or failed (usage/alerts.py). Alerts of one
    customer claimed together are sent as one message per channel."""

    class Channel(models.TextChoices):
        SNS = "sns", "SNS topic"
        SLACK = "slack", "Slack (customer)"
        STAFF_SLACK = "staff_slack", "Slack (staff)"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed, will retry"
        REJECTED = "rejected", "Not delivered (refused, or out of attempts)"

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.CharField(max_length=16, choices=Channel.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    # "HTTP 200", an SNS message id, or what failed; never a webhook URL.
    detail = models.CharField(max_length=200, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["alert_id", "channel"]
        constraints = [
            models.UniqueConstraint(fields=["alert", "channel"], name="usage_alert_delivery_once")
        ]
        indexes = [models.Index(fields=["status", "alert"])]

    def __str__(self):
        return f"{self.alert_id} {self.channel} {self.status}"


class SummaryDelivery(models.Model):
    """A weekly or monthly summary already mailed (unique: sent once per period)."""

    customer = models.ForeignKey("customers.Customer", on_delete=models.CASCADE, related_name="+")
    frequency = models.CharField(max_length=16)
    period = models.CharField(max_length=16)
    sent_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "frequency", "period"], name="usage_summary_once"
            )
        ]

    def __str__(self):
        return f"{self.customer_id} {self.frequency} {self.period}"


class UsageUserDaily(models.Model):
    """Tokens per customer, UTC day, application, end user (tags.userId) and model.

    The application x user view. Not billed from: UsageDaily stays the billing source;
    this table is replaced for a day by the same ingest run, from the same events.
    """

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="usage_user_daily"
    )
    day = models.DateField()
    application_id = models.CharField(max_length=200, blank=True, default="")
    user_id = models.CharField(max_length=200, blank=True, default="")
    model_id = models.CharField(max_length=200)
    requests = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "day", "application_id", "user_id", "model_id"],
                name="usage_user_daily_unique_key",
            )
        ]
        indexes = [models.Index(fields=["day", "customer"])]

    def __str__(self):
        return f"{self.customer_id} {self.day} {self.application_id}/{self.user_id}"


class UsageHourly(models.Model):
    """Requests, tokens and failed calls per customer, UTC hour and model, from the same events
    as UsageDaily (never billed from). Replaced with its day at each ingest (usage/operations.py);
    the anomaly baselines read it."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="usage_hourly"
    )
    hour = models.DateTimeField(help_text="Start of the UTC hour.")
    model_id = models.CharField(max_length=200)
    requests = models.BigIntegerField(default=0)
    input_tokens = models.BigIntegerField(default=0)
    output_tokens = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "hour", "model_id"], name="usage_hourly_unique_key"
            )
        ]
        indexes = [models.Index(fields=["hour", "customer"])]

    def __str__(self):
        return f"{self.customer_id} {self.hour:%Y-%m-%dT%H} {self.model_id}"


class LatencyFigures(models.Model):
    """Requests, failed calls and latency percentiles (milliseconds, measured by the proxy from
    the request's arrival to its answer) of one UTC day and model."""

    day = models.DateField()
    model_id = models.CharField(max_length=200)
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    latency_p50_ms = models.PositiveBigIntegerField(null=True, blank=True)
    latency_p95_ms = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        abstract = True

    @property
    def error_percent(self) -> Decimal | None:
        """Failed calls as a percent of requests, to 0.01 (exact Decimal arithmetic)."""
        if not self.requests:
            return None
        return (Decimal(100 * self.errors) / Decimal(self.requests)).quantize(Decimal("0.01"))


class UsageLatencyDaily(LatencyFigures):
    """One customer's calls of one model on one UTC day (usage/operations.py)."""

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="usage_latency_daily"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "day", "model_id"], name="usage_latency_daily_unique_key"
            )
        ]
        indexes = [models.Index(fields=["day", "model_id"])]

    def __str__(self):
        return f"{self.customer_id} {self.day} {self.model_id}"


class ModelLatencyDaily(LatencyFigures):
    """Every customer's calls of one model on one UTC day: percentiles cannot be summed from the
    per-customer rows, so the engine computes them over all the model's events."""

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["day", "model_id"], name="model_latency_daily_unique")
        ]

    def __str__(self):
        return f"{self.day} {self.model_id}"


class UsageAnomaly(models.Model):
    """An hour whose requests were far from that customer's usual for the hour of the week
    (usage/anomalies.py), found after the hour's day was imported; replaced with the day."""

    class Kind(models.TextChoices):
        SPIKE = "spike", "Spike"
        SILENCE = "silence", "Silence"

    customer = models.ForeignKey(
        "customers.Customer", on_delete=models.CASCADE, related_name="usage_anomalies"
    )
    hour = models.DateTimeField(help_text="Start of the UTC hour.")
    kind = models.CharField(max_length=16, choices=Kind.choices)
    requests = models.BigIntegerField()
    # Median and robust spread of the same hour in earlier weeks: halves and quarters of a
    # request, kept exact.
    baseline = models.DecimalField(max_digits=22, decimal_places=2)
    spread = models.DecimalField(max_digits=22, decimal_places=2)
    score = models.DecimalField(
        max_digits=12, decimal_places=1, help_text="Spreads from the baseline."
    )
    weeks = models.PositiveSmallIntegerField(help_text="Earlier weeks in the baseline.")
    explanation = models.CharField(max_length=300)
    detected_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-hour", "customer_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "hour", "kind"], name="usage_anomaly_unique_key"
            )
        ]
        indexes = [models.Index(fields=["-hour"]), models.Index(fields=["customer", "-hour"])]

    def __str__(self):
        return f"{self.customer_id} {self.kind} {self.hour:%Y-%m-%dT%H}"
