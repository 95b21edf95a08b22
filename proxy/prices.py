"""Model prices at the edge: the price items of proxy/contract.py, cached, and a call's cost.

Money is integer micro-units of the portal's currency (BILLING_CURRENCY; 1 USD = 1,000,000),
never a float. `PriceReader` reads every price item at once, with one Scan of the small prices
table, on its first use and again when its copy is `ttl_seconds` old (PROXY_PRICE_CACHE_SECONDS,
60 by default): a price change reaches a warm container within that bound. Each item carries
the rates in force and the next scheduled change, so a change switches at its instant without a
read. If a refresh fails, the copy already held is kept (and the read tried again after a few
seconds); with no copy at all, the DynamoDB error is raised for the caller to answer.

A model name resolves as invoices price it (proxy/models.priced_as): an alias is its model id,
an inference profile ("us.anthropic.claude-3-haiku-…") the model it routes to. A model without
a price item (or whose item is unreadable: a negative, huge or fractional value, another
schema) has no price: `price_at` returns None and the caller decides; a free model (the
sandboxes) without an item costs 0.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from . import contract, models

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

logger = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS = 60
# After a failed refresh, the copy held is used this long before the next try.
RETRY_AFTER_FAILURE_SECONDS = 5.0
TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


@dataclass(frozen=True)
class Price:
    """What one model costs at one instant, in micro-units of `currency`: per 1,000 tokens of
    each kind, and per request. `currency` is "" for a free model that has no price item."""

    model_id: str
    currency: str
    input_per_1k: int
    output_per_1k: int
    cache_read_per_1k: int
    cache_write_per_1k: int
    per_request: int = 0
    effective_from: int = 0  # epoch seconds

    @property
    def is_free(self) -> bool:
        return not (
            self.input_per_1k
            or self.output_per_1k
            or self.cache_read_per_1k
            or self.cache_write_per_1k
            or self.per_request
        )

    @classmethod
    def of(cls, model_id: str, currency: str, rates: contract.PriceRates) -> Price:
        return cls(
            model_id=model_id,
            currency=currency,
            input_per_1k=rates.input_per_1k,
            output_per_1k=rates.output_per_1k,
            cache_read_per_1k=rates.cache_read_per_1k,
            cache_write_per_1k=rates.cache_write_per_1k,
            per_request=rates.per_request,
            effective_from=rates.effective_from,
        )


def _count(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{what} must be a whole number of at least 0, not {value!r}")
    return value


def _ceil_thousandths(amount: int) -> int:
    """amount / 1000 rounded up, in integers (no float ever sees money)."""
    return -(-amount // 1000)


def cost_micros(price: Price, usage: Mapping[str, object]) -> int:
    """The cost of a call's usage in micro-units, rounded up once to the micro-unit: each kind
    of token x its price per 1,000, summed, then / 1,000; plus the per-request price for each
    request (`usage["requests"]`, 1 when absent: one call). Missing token kinds count 0.

    Claude 3 Haiku (250 in / 1,250 out per 1,000): 1,000 in + 500 out = 250 + 625 = 875."""
    tokens = [_count(usage.get(name, 0), name) for name in TOKEN_FIELDS]
    requests = _count(usage.get("requests", 1), "requests")
    per_1k = (
        price.input_per_1k,
        price.output_per_1k,
        price.cache_read_per_1k,
        price.cache_write_per_1k,
    )
    scaled = sum(count * rate for count, rate in zip(tokens, per_1k, strict=True))
    return _ceil_thousandths(scaled) + requests * price.per_request


def hold_micros(price: Price, token_hold: int) -> int:
    """The most a call holding `token_hold` tokens can cost: every held token at the highest of
    the model's token prices (output, usually; the cache prices are included so the bound holds
    whatever the book says), rounded up, plus one request."""
    tokens = _count(token_hold, "token_hold")
    highest = max(
        price.input_per_1k, price.output_per_1k, price.cache_read_per_1k, price.cache_write_per_1k
    )
    return _ceil_thousandths(tokens * highest) + price.per_request


def _epoch(now: datetime | float | None) -> float:
    if now is None:
        return time.time()
    if isinstance(now, datetime):
        return now.timestamp()
    return float(now)


class PriceReader:
    """Every model's price item, read at once and kept `ttl_seconds` (0: read at every call)."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        tables: contract.TableNames | None = None,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.dynamodb = dynamodb
        self.tables = tables or contract.table_names()
        self.ttl = ttl_seconds
        self.clock = clock
        self._items: dict[str, contract.PriceItem] | None = None
        self._fresh_until = 0.0
        self._lock = threading.Lock()
        # unreadable items already logged: (model id, version, problem)
        self._reported: set[tuple[str, int | None, str]] = set()
        self._failure: Exception | None = None  # the last failed read, while none is held
        self._failed_until = 0.0

    def refresh(self) -> dict[str, contract.PriceItem]:
        """Read every price item now (one Scan, eventually consistent) and keep them."""
        items: dict[str, contract.PriceItem] = {}
        for item in contract.iter_prices(self.dynamodb, self.tables, consistent=False):
            if isinstance(item, contract.UnreadablePriceItem):
                self._report(item)
                continue
            items[item.model_id] = item
        self._items, self._failure = items, None
        self._fresh_until = self.clock() + self.ttl
        return items

    def _report(self, item: contract.UnreadablePriceItem) -> None:
        key = (item.model_id, item.version, item.problem)
        if key not in self._reported:
            self._reported.add(key)
            logger.warning(
                "price item %r (version %s) is unreadable, its model has no price: %s",
                item.model_id[:200],
                item.version,
                item.problem,
            )

    def items(self) -> dict[str, contract.PriceItem]:
        """The price items held, read again first when they are `ttl_seconds` old. With none
        held and the read failing, the failure is raised again without a read for a few
        seconds (a store that is down is not asked at every request)."""
        with self._lock:
            if self._items is not None and self.ttl > 0 and self.clock() < self._fresh_until:
                return self._items
            failure = self._failure  # the last failed read, kept while no items are held
            if self._items is None and failure is not None and self.clock() < self._failed_until:
                raise failure
            try:
                return self.refresh()
            except Exception as exc:
                logger.warning("price read failed: %s", type(exc).__name__)
                if self._items is None:
                    self._failure = exc
                    self._failed_until = self.clock() + RETRY_AFTER_FAILURE_SECONDS
                    raise
                logger.warning("using the prices read before")
                self._fresh_until = self.clock() + min(self.ttl, RETRY_AFTER_FAILURE_SECONDS)
                return self._items

    def price_at(self, name: object, now: datetime | float | None = None) -> Price | None:
        """The price of a model (id, alias or inference profile id) at `now` (a datetime or
        epoch seconds; default: the current time), or None when it has none."""
        if not isinstance(name, str) or not name:
            return None
        model_id = models.priced_as(name)
        item = self.items().get(model_id)
        if item is None:
            if models.is_free(model_id):
                return Price(model_id, "", 0, 0, 0, 0)
            return None
        rates = item.rates_at(_epoch(now))
        return Price.of(model_id, item.currency, rates) if rates is not None else None
