"""Every model the proxy names (its aliases' ids, the embeddings models, the sandboxes) has a row
in the price book, so the nightly billing rates its usage instead of putting it at 0 for review."""

from datetime import date
from decimal import Decimal

from billing.models import ModelPrice
from proxy import models

# Claude 2 (alias claude-2) has no price yet: its usage reaches drafts at 0, marked for review.
NOT_YET_PRICED = {"anthropic.claude-v2:0"}


def test_every_model_the_proxy_knows_has_a_price(db):
    priced = set(ModelPrice.objects.values_list("model_id", flat=True))
    assert models.KNOWN_IDS - priced <= NOT_YET_PRICED
    assert set(models.EMBEDDING_MODELS) <= priced
    assert set(models.SANDBOX_IDS) <= priced


def test_embeddings_prices_per_1k_input_tokens_and_no_output(db):
    rows = {
        row.model_id: row for row in ModelPrice.objects.filter(model_id__in=models.EMBEDDING_MODELS)
    }
    prices = {model_id: row.input_per_1k for model_id, row in rows.items()}
    assert prices == {
        "amazon.titan-embed-text-v2:0": Decimal("0.00002"),
        "cohere.embed-english-v3": Decimal("0.0001"),
        "cohere.embed-multilingual-v3": Decimal("0.0001"),
        "sandbox.embed-v1": Decimal(0),
    }
    for row in rows.values():
        assert row.output_per_1k == 0 and row.source_url.startswith("https://")
        assert row.source_seen_on == date(2026, 11, 25) and row.effective_from <= date(2024, 1, 1)
