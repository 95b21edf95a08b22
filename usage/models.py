"""Billed usage: one row per customer, UTC day, model and tag combination.

Rows come from the per-request usage events (aggregated by Athena in production, DuckDB
locally); re-ingesting a day replaces its rows exactly, thanks to the unique key.
Missing tags are stored as "" so the unique key also covers untagged usage.
"""

from django.db import models


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
