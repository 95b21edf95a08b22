"""Every model the proxy names (its aliases' ids, the embeddings models, the sandboxes) has a row
in the price book, so the nightly billing rates its usage instead of putting it at 0 for review."""

from datetime import date
from decimal import Decimal

from billing.models import ModelPrice
from proxy import models


def test_every_model_the_proxy_knows_has_a_price(db):
    priced = set(ModelPrice.objects.values_list("model_id", flat=True))
    assert models.KNOWN_IDS - priced == set()
    for alias, model_id in models.ALIASES.items():
        assert model_id in priced, alias
    assert set(models.EMBEDDING_MODELS) <= priced
    assert set(models.SANDBOX_IDS) <= priced


def test_claude_2_is_priced_at_bedrocks_on_demand_price(db):
    (row,) = ModelPrice.objects.filter(model_id=models.ALIASES["claude-2"])
    assert (row.input_per_1k, row.output_per_1k) == (Decimal("0.008"), Decimal("0.024"))
    assert row.source_url == "https://aws.amazon.com/bedrock/pricing/"
    assert row.source_seen_on is not None and row.effective_from <= date(2024, 1, 1)


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
