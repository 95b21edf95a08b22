"""Seed the price book with Amazon Bedrock's published on-demand prices (US East, per 1,000
tokens), each row with the page it was read from and the day it was seen (2026-11-23).

Prices were read from public pages on that day; where AWS's own page did not show the number in
the excerpt available, the secondary source is named in source_url and the note. Staff correct
or supersede them by adding a row with a later effective_from: rows are never edited in place.
"""

from datetime import date
from decimal import Decimal

from django.db import migrations

SEEN = date(2026, 11, 23)
EFFECTIVE = date(2024, 1, 1)
AWS = "https://aws.amazon.com/bedrock/pricing/"
INVENTIVE = "https://inventivehq.com/blog/aws-bedrock-pricing-guide"

# model_id, display name, input per 1K, output per 1K, source, note
PRICES = [
    ("anthropic.claude-3-haiku-20240307-v1:0", "Claude 3 Haiku", "0.00025", "0.00125", INVENTIVE, ""),
    ("anthropic.claude-3-sonnet-20240229-v1:0", "Claude 3 Sonnet", "0.003", "0.015", INVENTIVE, ""),
    (
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "Claude 3.5 Sonnet",
        "0.003",
        "0.015",
        INVENTIVE,
        "https://clauder-navi.com/en/bedrock-claude-cost/ reports $6/$30 per 1M for Claude 3.5 "
        "Sonnet on extended access: check before relying on it.",
    ),
    ("anthropic.claude-3-opus-20240229-v1:0", "Claude 3 Opus", "0.015", "0.075", INVENTIVE, ""),
    (
        "amazon.nova-micro-v1:0",
        "Amazon Nova Micro",
        "0.000035",
        "0.00014",
        "https://techdailyfeed.com/understanding-amazon-bedrock-pricing-from-on-demand-to-fine-tuning",
        "Quoted from the Bedrock pricing page.",
    ),
    (
        "amazon.nova-lite-v1:0",
        "Amazon Nova Lite",
        "0.00006",
        "0.00024",
        "https://aicoach.pw/marketplace/llm/nova-lite-1-0",
        "$0.06 / $0.24 per 1M tokens.",
    ),
    (
        "amazon.nova-pro-v1:0",
        "Amazon Nova Pro",
        "0.0008",
        "0.0032",
        "https://www.swfte.com/de/blog/amazon-nova-pro-pricing",
        "$0.80 / $3.20 per 1M tokens, on-demand.",
    ),
    ("amazon.titan-text-premier-v1:0", "Titan Text Premier", "0.0008", "0.0024", INVENTIVE, ""),
    ("amazon.titan-text-express-v1", "Titan Text Express", "0.0002", "0.0006", INVENTIVE, ""),
    ("amazon.titan-text-lite-v1", "Titan Text Lite", "0.00015", "0.0002", INVENTIVE, ""),
    (
        "meta.llama3-1-8b-instruct-v1:0",
        "Llama 3.1 8B Instruct",
        "0.00022",
        "0.00022",
        INVENTIVE,
        "The source labels these Llama 3 8B; $0.22 per 1M is the Llama 3.1 8B rate.",
    ),
    (
        "meta.llama3-1-70b-instruct-v1:0",
        "Llama 3.1 70B Instruct",
        "0.00099",
        "0.00099",
        INVENTIVE,
        "The source labels these Llama 3 70B; $0.99 per 1M is the Llama 3.1 70B rate.",
    ),
    ("mistral.mistral-large-2402-v1:0", "Mistral Large", "0.004", "0.012", INVENTIVE, ""),
    ("mistral.mixtral-8x7b-instruct-v0:1", "Mixtral 8x7B", "0.00045", "0.0007", INVENTIVE, ""),
    ("mistral.mistral-7b-instruct-v0:2", "Mistral 7B", "0.00015", "0.0002", INVENTIVE, ""),
    ("sandbox.echo-v1", "Sandbox echo (free)", "0", "0", "", "The portal's built-in sandbox model: free."),
]


def seed(apps, schema_editor):
    ModelPrice = apps.get_model("billing", "ModelPrice")
    for model_id, name, input_price, output_price, source, note in PRICES:
        ModelPrice.objects.get_or_create(
            model_id=model_id,
            effective_from=EFFECTIVE,
            defaults={
                "display_name": name,
                "input_per_1k": Decimal(input_price),
                "output_per_1k": Decimal(output_price),
                "source_url": source or AWS,
                "source_seen_on": SEEN,
                "note": note,
            },
        )


def unseed(apps, schema_editor):
    ModelPrice = apps.get_model("billing", "ModelPrice")
    ModelPrice.objects.filter(
        model_id__in=[p[0] for p in PRICES], effective_from=EFFECTIVE, source_seen_on=SEEN
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(seed, unseed)]
