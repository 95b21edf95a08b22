"""Model aliases (seed 004's MODEL_ID_MAPPING) and the free sandbox model.

Ids match the billing price book (billing/migrations/0002_seed_price_book.py, and
0008_embeddings_prices.py for the embeddings models), so every event's `model_id` has a price;
the sandboxes' prices there are zero.
"""

from __future__ import annotations

import re

from .errors import ProxyError

SANDBOX_MODEL_ID = "sandbox.echo-v1"
# The embeddings sandbox (POST /v1/embeddings): deterministic vectors, free, no AWS call.
EMBED_SANDBOX_MODEL_ID = "sandbox.embed-v1"
SANDBOX_IDS = frozenset({SANDBOX_MODEL_ID, EMBED_SANDBOX_MODEL_ID})

TITAN_EMBED_V2 = "amazon.titan-embed-text-v2:0"
COHERE_EMBED_ENGLISH_V3 = "cohere.embed-english-v3"
COHERE_EMBED_MULTILINGUAL_V3 = "cohere.embed-multilingual-v3"
# The models POST /v1/embeddings serves; each has a price in the billing price book.
EMBEDDING_MODELS = (
    TITAN_EMBED_V2,
    COHERE_EMBED_ENGLISH_V3,
    COHERE_EMBED_MULTILINGUAL_V3,
    EMBED_SANDBOX_MODEL_ID,
)

ALIASES: dict[str, str] = {
    "nova-micro": "amazon.nova-micro-v1:0",
    "nova-lite": "amazon.nova-lite-v1:0",
    "nova-pro": "amazon.nova-pro-v1:0",
    "claude-2": "anthropic.claude-v2:0",
    "claude-3-haiku": "anthropic.claude-3-haiku-20240307-v1:0",
    "haiku": "anthropic.claude-3-haiku-20240307-v1:0",
    "claude-3-sonnet": "anthropic.claude-3-sonnet-20240229-v1:0",
    "claude-3.5-sonnet": "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "claude-3-5-sonnet": "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "claude-3-opus": "anthropic.claude-3-opus-20240229-v1:0",
    "titan-text": "amazon.titan-text-express-v1",
    "titan-text-express": "amazon.titan-text-express-v1",
    "titan-text-lite": "amazon.titan-text-lite-v1",
    "titan-text-premier": "amazon.titan-text-premier-v1:0",
    "llama3": "meta.llama3-1-8b-instruct-v1:0",
    "llama3-8b": "meta.llama3-1-8b-instruct-v1:0",
    "llama3-70b": "meta.llama3-1-70b-instruct-v1:0",
    "mistral-large": "mistral.mistral-large-2402-v1:0",
    "mixtral-8x7b": "mistral.mixtral-8x7b-instruct-v0:1",
    "mistral-7b": "mistral.mistral-7b-instruct-v0:2",
    "sandbox": SANDBOX_MODEL_ID,
    "echo": SANDBOX_MODEL_ID,
    "titan-embed-v2": TITAN_EMBED_V2,
    "titan-embed-text-v2": TITAN_EMBED_V2,
    "cohere-embed-english": COHERE_EMBED_ENGLISH_V3,
    "cohere-embed-english-v3": COHERE_EMBED_ENGLISH_V3,
    "cohere-embed-multilingual": COHERE_EMBED_MULTILINGUAL_V3,
    "cohere-embed-multilingual-v3": COHERE_EMBED_MULTILINGUAL_V3,
    "sandbox-embed": EMBED_SANDBOX_MODEL_ID,
}
KNOWN_IDS = frozenset(ALIASES.values())
# A Bedrock model id or (cross-region) inference profile id, e.g. "us.anthropic.claude-...:0".
_MODEL_ID_RE = re.compile(r"^(?:[a-z]{2}\.)?[a-z0-9-]+\.[A-Za-z0-9._:-]{1,180}$")


def resolve(name) -> tuple[str, str]:
    """(model_id, alias) for an alias or a Bedrock model id; alias is "" for a plain id."""
    if not isinstance(name, str) or not name:
        raise ProxyError("invalid_request", "A model is required ('model' or 'modelId').")
    if name in ALIASES:
        return ALIASES[name], name
    if name in KNOWN_IDS or _MODEL_ID_RE.match(name):
        return name, ""
    raise ProxyError("unknown_model", f"Unknown model {name[:100]!r}; GET /v1/models lists them.")


def is_allowed(model_id: str, alias: str, allowed: list[str]) -> bool:
    """Empty list = every model. Entries may be aliases or ids. The sandboxes are always
    allowed."""
    if not allowed or model_id in SANDBOX_IDS:
        return True
    allowed_ids = {ALIASES.get(entry, entry) for entry in allowed}
    return model_id in allowed_ids or (alias != "" and alias in allowed)


def listable(allowed: list[str]) -> list[str]:
    """Model ids a customer may call, for GET /v1/models."""
    if not allowed:
        return sorted(KNOWN_IDS)
    return sorted({ALIASES.get(e, e) for e in allowed} | SANDBOX_IDS)


def is_sandbox(model_id: str) -> bool:
    """The chat sandbox (echo); the embeddings sandbox is `is_embed_sandbox`."""
    return model_id == SANDBOX_MODEL_ID


def is_embed_sandbox(model_id: str) -> bool:
    return model_id == EMBED_SANDBOX_MODEL_ID


def is_embeddings(model_id: str) -> bool:
    """A model POST /v1/embeddings serves."""
    return model_id in EMBEDDING_MODELS


def is_free(model_id: str) -> bool:
    """Free models do not consume the monthly token quota."""
    return model_id in SANDBOX_IDS
