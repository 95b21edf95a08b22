"""Prices for the embeddings models the proxy serves on POST /v1/embeddings: Amazon Bedrock's
published on-demand prices (US East) per 1,000 input tokens. Embeddings produce no output
tokens, so their output price is 0. The embeddings sandbox is free.

Like 0002, rows carry their source and the day they were read; staff correct or supersede them
with a row with a later effective_from, never by editing these.
"""

from datetime import date
from decimal import Decimal

from django.db import migrations

SEEN = date(2026, 11, 25)
EFFECTIVE = date(2024, 1, 1)
AWS = "https://aws.amazon.com/bedrock/pricing/"

# model_id, display name, input per 1K, source, note
PRICES = [
    (
        "amazon.titan-embed-text-v2:0",
        "Titan Text Embeddings V2",
        "0.00002",
        AWS,
        "$0.02 per 1M input tokens, on-demand; no output tokens.",
    ),
    (
        "cohere.embed-english-v3",
        "Cohere Embed English v3",
        "0.0001",
        AWS,
        "$0.10 per 1M input tokens, on-demand; no output tokens.",
    ),
    (
        "cohere.embed-multilingual-v3",
        "Cohere Embed Multilingual v3",
        "0.0001",
        AWS,
        "$0.10 per 1M input tokens, on-demand; no output tokens.",
    ),
    (
        "sandbox.embed-v1",
        "Sandbox embeddings (free)",
        "0",
        "",
        "The portal's built-in embeddings sandbox model: free.",
    ),
]


def add_prices(apps, schema_editor):
    ModelPrice = apps.get_model("billing", "ModelPrice")
    for model_id, name, input_price, source, note in PRICES:
        ModelPrice.objects.get_or_create(
            model_id=model_id,
            effective_from=EFFECTIVE,
            defaults={
                "display_name": name,
                "input_per_1k": Decimal(input_price),
                "output_per_1k": Decimal(0),
                "source_url": source or AWS,
                "source_seen_on": SEEN,
                "note": note,
            },
        )


def remove_prices(apps, schema_editor):
    ModelPrice = apps.get_model("billing", "ModelPrice")
    ModelPrice.objects.filter(
        model_id__in=[p[0] for p in PRICES], effective_from=EFFECTIVE, source_seen_on=SEEN
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0007_invoice_run")]
    operations = [migrations.RunPython(add_prices, remove_prices)]
