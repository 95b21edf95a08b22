"""Settings of the proxy, read from the environment once per container (see docs/proxy.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from . import contract


def _int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def _float(name: str, default: float) -> float:
    try:
        value = float(os.environ.get(name, default))
    except ValueError:
        return default
    return value if value >= 0 else default


def _list(name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in os.environ.get(name, "").split(",") if v.strip())


@dataclass(frozen=True)
class Settings:
    tables: contract.TableNames = field(default_factory=contract.table_names)
    region: str = "us-east-1"
    # The cache only saves reads: the admission transaction re-checks status and version, so
    # the TTL bounds memory staleness, not how long a revoked token keeps working.
    cache_ttl_seconds: int = 300
    cache_size: int = 10_000
    # How long a container keeps the model prices it read (proxy/prices.py) before reading
    # them again: a price change reaches it within this bound.
    price_cache_seconds: int = 60
    # A request refused on cached items (customer suspended, IP or model not allowed) read this
    # long ago or more is decided again on a fresh read. 0 (the default): every refusal decided
    # on cached items reads them again first, so a loosening is seen on the very next request;
    # an operator may set a bound to spare the reads of a client repeating a refused request.
    refusal_recheck_seconds: float = 0.0
    # Lambda's limit for a synchronous request is 6 MB; images in chat requests need room.
    max_body_bytes: int = 6_000_000
    cors_origins: tuple[str, ...] = ()
    warning_percent: int = 80
    usage_bucket: str = ""
    usage_events_dir: str = ""
    # False: no Bedrock (local runner without credentials); only the sandbox model answers.
    bedrock_enabled: bool = True
    bedrock_endpoint_url: str | None = None
    # Connect + read for one Bedrock call, kept under the Lambda's 29 s (API Gateway's limit) so
    # a slow model gets our 504 and its quota hold back instead of the function being killed.
    bedrock_timeout_seconds: int = 25
    # Read timeout of one DynamoDB call (botocore retries it up to 3 attempts). DynamoDB answers
    # in milliseconds; the local runner's emulator applies every call one at a time, so a burst
    # of 200 calls queues there for seconds and the runner gives it 30 s (proxy/local.py).
    dynamodb_timeout_seconds: int = 5


def load() -> Settings:
    return Settings(
        tables=contract.table_names(),
        region=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION", "us-east-1"),
        cache_ttl_seconds=_int("PROXY_CACHE_TTL_SECONDS", 300),
        cache_size=_int("PROXY_CACHE_SIZE", 10_000),
        price_cache_seconds=_int("PROXY_PRICE_CACHE_SECONDS", 60),
        refusal_recheck_seconds=_float("PROXY_REFUSAL_RECHECK_SECONDS", 0.0),
        max_body_bytes=_int("PROXY_MAX_BODY_BYTES", 6_000_000),
        cors_origins=_list("PROXY_CORS_ORIGINS"),
        warning_percent=_int("PROXY_RATE_WARNING_PERCENT", 80),
        usage_bucket=os.environ.get("USAGE_BUCKET", ""),
        usage_events_dir=os.environ.get("USAGE_EVENTS_DIR", ""),
        bedrock_enabled=os.environ.get("PROXY_BEDROCK", "on").lower() not in ("off", "0", "false"),
        bedrock_endpoint_url=os.environ.get("BEDROCK_ENDPOINT_URL") or None,
        bedrock_timeout_seconds=_int("PROXY_BEDROCK_TIMEOUT_SECONDS", 25),
        dynamodb_timeout_seconds=max(1, _int("PROXY_DYNAMODB_TIMEOUT_SECONDS", 5)),
    )
