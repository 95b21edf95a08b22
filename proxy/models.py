"""Model aliases (short names customers may send for Bedrock ids) and the free sandbox models.

Ids match the billing price book (billing/migrations/0002_seed_price_book.py, and
0008_embeddings_prices.py for the embeddings models), so every event's `model_id` has a price;
the sandboxes' prices there are zero.
"""

from __future__ import annotations

import re
from functools import lru_cache

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


# The most output tokens one call may ask for, by model family (the longest matching prefix of
# the model id, an inference profile's region prefix taken off). A request above it is refused
# with a 400 naming the parameter; it also bounds the quota hold (limits.py), a DynamoDB number.
# Sources (read 2026-11-25):
# - Claude: Anthropic's model comparison (docs.anthropic.com/en/docs/about-claude/models/overview):
#   Claude 3 Haiku / Sonnet / Opus 4,096, Claude 3.5 Sonnet and Haiku 8,192; Claude 2 / 2.1's
#   max_tokens_to_sample on Bedrock 4,096.
# - Nova (Micro, Lite, Pro): the published maximum differs by source and date (5,000 at launch,
#   5,120, 8.2K, 10,000 on later pages; docs.aws.amazon.com/nova/latest/userguide/
#   complete-request-schema.html is the reference): the highest, 10,000, so that no request
#   Bedrock takes is refused here; above what Bedrock takes, Bedrock answers its own 400.
# - Titan Text (docs.aws.amazon.com/bedrock/latest/userguide/model-parameters-titan-text.html,
#   maxTokenCount): Express 8,192, Lite 4,096, Premier 3,072.
# - Llama 3.1 (model-parameters-meta.html, max_gen_len): 2,048.
# - Mistral (model-parameters-mistral-text-completion.html and the model cards): Mistral Large
#   and Mistral 7B 8,192, Mixtral 8x7B 4,096.
# - The sandboxes: 100,000. Any other model id: DEFAULT_MAX_OUTPUT_TOKENS.
MAX_OUTPUT_TOKENS: dict[str, int] = {
    "anthropic.claude-v2": 4096,
    "anthropic.claude-instant": 4096,
    "anthropic.claude-3-haiku": 4096,
    "anthropic.claude-3-sonnet": 4096,
    "anthropic.claude-3-opus": 4096,
    "anthropic.claude-3-5-sonnet": 8192,
    "anthropic.claude-3-5-haiku": 8192,
    "amazon.nova-micro": 10_000,
    "amazon.nova-lite": 10_000,
    "amazon.nova-pro": 10_000,
    "amazon.titan-text-express": 8192,
    "amazon.titan-text-lite": 4096,
    "amazon.titan-text-premier": 3072,
    "meta.llama3-1": 2048,
    "meta.llama3-": 2048,
    "mistral.mistral-large": 8192,
    "mistral.mixtral-8x7b": 4096,
    "mistral.mistral-7b": 8192,
    "sandbox.": 100_000,
}
DEFAULT_MAX_OUTPUT_TOKENS = 100_000
_PROFILE_PREFIX_RE = re.compile(r"^(?:[a-z]{2}|apac|us-gov|global)\.(?=[a-z0-9-]+\.)")


@lru_cache(maxsize=1024)
def max_output_tokens(model_id: str) -> int:
    """The most output tokens a call to `model_id` may ask for (see MAX_OUTPUT_TOKENS)."""
    base = _PROFILE_PREFIX_RE.sub("", model_id, count=1)
    best, found = "", DEFAULT_MAX_OUTPUT_TOKENS
    for prefix, limit in MAX_OUTPUT_TOKENS.items():
        if base.startswith(prefix) and len(prefix) > len(best):
            best, found = prefix, limit
    return found


def requested_name(name: object) -> str:
    """`name` if it can name a model (a non-empty string), else the 400 `resolve` refuses it
    with."""
    if not isinstance(name, str) or not name:
        raise ProxyError("invalid_request", "A model is required ('model' or 'modelId').")
    return name


def resolve(name: object) -> tuple[str, str]:
    """(model_id, alias) for an alias or a Bedrock model id; alias is "" for a plain id."""
    name = requested_name(name)
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


def listable_for(customer_allowed: list[str], token_allowed: list[str]) -> list[str]:
    """What a token may call: the customer's models, narrowed by the token's own list."""
    if not token_allowed:
        return listable(customer_allowed)
    if not customer_allowed:
        return listable(token_allowed)
    return sorted(set(listable(customer_allowed)) & set(listable(token_allowed)))


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


# Cross-region inference profiles ("us.anthropic.claude-3-haiku-...") are billed at the price of
# the model they route to, so the price book (and the proxy's price items) hold base model ids
# only. billing.pricing reads this tuple too: one list for invoices and the proxy.
INFERENCE_PROFILE_PREFIXES = ("us.", "eu.", "apac.", "us-gov.", "global.", "jp.", "au.", "ca.")


def priced_as(name: str) -> str:
    """The price book id a model name is priced as: an alias's model id, an inference
    profile's model (its region prefix taken off), else the name itself."""
    model_id = ALIASES.get(name, name)
    for prefix in INFERENCE_PROFILE_PREFIXES:
        if model_id.startswith(prefix):
            return model_id[len(prefix) :]
    return model_id
