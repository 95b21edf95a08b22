"""The price of Claude 2 (the proxy's alias `claude-2`, anthropic.claude-v2:0), so that every
model the proxy names has a price: Amazon Bedrock's published on-demand price of Claude 2.0 /
2.1 (US East), per 1,000 tokens.

Like 0002, the row carries its source and the day it was read; staff correct or supersede it
with a row with a later effective_from, never by editing this one.
"""

from datetime import date
from decimal import Decimal

from django.db import migrations

SEEN = date(2026, 11, 25)
EFFECTIVE = date(2024, 1, 1)
AWS = "https://aws.amazon.com/bedrock/pricing/"
MODEL_ID = "anthropic.claude-v2:0"


def add_price(apps, schema_editor):
    ModelPrice = apps.get_model("billing", "ModelPrice")
    ModelPrice.objects.get_or_create(
        model_id=MODEL_ID,
        effective_from=EFFECTIVE,
        defaults={
            "display_name": "Claude 2",
            "input_per_1k": Decimal("0.008"),
            "output_per_1k": Decimal("0.024"),
            "source_url": AWS,
            "source_seen_on": SEEN,
            "note": "Claude 2.0 / 2.1 on-demand: $8 per 1M input tokens, $24 per 1M output tokens.",
        },
    )


def remove_price(apps, schema_editor):
    ModelPrice = apps.get_model("billing", "ModelPrice")
    ModelPrice.objects.filter(
        model_id=MODEL_ID, effective_from=EFFECTIVE, source_seen_on=SEEN
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0009_invoice_status_only_moves_forward")]
    operations = [migrations.RunPython(add_price, remove_price)]
