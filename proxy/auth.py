"""Bearer token -> token item -> customer item, through a bounded in-memory LRU cache with TTL.

The cache only saves reads, in both directions:

- Tightening (revocation, suspension, a narrower IP allowlist or model list, lower limits) takes
  effect on the very next request: the admission transaction (limits.py) re-checks the token's
  and customer's status and version inside DynamoDB, and a mismatch reads both items again.
- Loosening (reactivation, a wider IP allowlist, a model allowed to the account or the token): a
  request refused on cached items (customer status, IP allowlist, the account's or the token's
  models) is decided again on both items read afresh before it is refused, and the cache keeps
  what was read. So the very next request after the change reached DynamoDB sees it, and a
  refused request costs one read of the two items (two GetItem calls) more, never more.
  Operators may set a bound, `recheck_seconds` (PROXY_REFUSAL_RECHECK_SECONDS, default 0): a
  refusal decided on items read less than that long ago then stands without a read, so a
  client repeating a refused request costs at most one read of the two items per bound and
  container, and a loosening is seen within the bound.
  An admitted warm request reads nothing (two DynamoDB calls in all: admission and usage).

A token's own refusals (revoked, expired, past its grace) are final: the portal never makes a
revoked or expired token valid again, so they are decided on the cached item without a read.
Only hashes are cached; the token itself is never kept or logged.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from . import contract
from .errors import ProxyError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

K = TypeVar("K")
V = TypeVar("V")
Clock = Callable[[], float]


class TTLCache(Generic[K, V]):
    """A small thread-safe LRU with per-entry expiry. None is never cached (unknown tokens)."""

    def __init__(self, size: int, ttl_seconds: float, clock: Clock = time.monotonic) -> None:
        self.size, self.ttl, self.clock = max(1, size), ttl_seconds, clock
        self._data: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        entry = self.entry(key)
        return None if entry is None else entry[0]

    def entry(self, key: K) -> tuple[V, float] | None:
        """(value, the clock's time when it was stored), or None."""
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            if self.clock() - entry[1] >= self.ttl:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return entry

    def put(self, key: K, value: V | None) -> None:
        if value is None or self.ttl <= 0:
            return
        with self._lock:
            self._data[key] = (value, self.clock())
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def drop(self, key: K) -> None:
        with self._lock:
            self._data.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()

    def __len__(self) -> int:
        return len(self._data)


@dataclass
class Principal:
    token: contract.TokenItem
    customer: contract.CustomerItem
    # When the older of the two items was read from DynamoDB (the cache's clock), and whether
    # this request read both itself (then a refusal stands: there is nothing fresher to read).
    read_at: float = 0.0
    fresh: bool = True

    @property
    def counts_money(self) -> bool:
        """A budget (the customer's or the token's) or prepaid credit applies to its calls."""
        return (
            self.customer.prepaid
            or self.customer.monthly_budget_micros is not None
            or self.token.monthly_budget_micros is not None
        )


def bearer_token(headers: Mapping[str, str]) -> str:
    value = headers.get("authorization", "")
    if not value:
        raise ProxyError("missing_token")
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ProxyError("missing_token", "Use the Bearer scheme: 'Authorization: Bearer <token>'.")
    token = token.strip()
    if not contract.token_is_well_formed(token):
        # A mistyped bup_ token (bad checksum) or garbage: refused without a DynamoDB read.
        raise ProxyError("malformed_token")
    return token


def check_token(item: contract.TokenItem, now: float) -> None:
    if item.status != "active":
        raise ProxyError("token_revoked")
    if item.expires_at is not None and now >= item.expires_at:
        raise ProxyError("token_grace_ended" if item.stopped_by_grace_end else "token_expired")


def check_customer(item: contract.CustomerItem | None) -> None:
    if item is None or item.status == "closed":
        raise ProxyError("customer_closed")
    if item.status != "active":
        raise ProxyError("customer_suspended")


@lru_cache(maxsize=4096)
def _network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    return ipaddress.ip_network(cidr, strict=False)


def check_ip(customer: contract.CustomerItem, client_ip: str) -> None:
    if not customer.ip_allowlist:
        return
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        raise ProxyError("ip_not_allowed") from None
    for cidr in customer.ip_allowlist:
        try:
            if address in _network(cidr):
                return
        except ValueError:  # the portal validates; a bad entry never opens the door
            continue
    raise ProxyError("ip_not_allowed")


def check_access(principal: Principal, client_ip: str) -> None:
    """What the account allows, as opposed to the token itself: status and address."""
    check_customer(principal.customer)
    check_ip(principal.customer, client_ip)


class Authenticator:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        tables: contract.TableNames,
        *,
        size: int,
        ttl_seconds: float,
        recheck_seconds: float = 0.0,
        clock: Clock = time.monotonic,
    ) -> None:
        self.dynamodb, self.tables = dynamodb, tables
        self.clock, self.recheck_seconds = clock, recheck_seconds
        self.tokens: TTLCache[str, contract.TokenItem] = TTLCache(size, ttl_seconds, clock)
        self.customers: TTLCache[str, contract.CustomerItem] = TTLCache(size, ttl_seconds, clock)

    def authenticate(
        self, headers: Mapping[str, str], client_ip: str, *, fresh: bool = False
    ) -> Principal:
        token_hash = contract.hash_token(bearer_token(headers))
        return self.confirm(self._load(token_hash, fresh), client_ip)

    def confirm(
        self,
        principal: Principal,
        client_ip: str,
        check: Callable[[Principal], None] | None = None,
    ) -> Principal:
        """The principal if the account allows the request: check_access, or only `check`
        (e.g. the model) when given, for a principal that passed check_access already. A
        refusal decided on cached items (read `recheck_seconds` ago or more; 0, the default:
        any cached read) is decided again on both items read afresh, once (check_access and
        `check`): the fresh principal if they allow it. Every refusal here comes from the
        customer item (status, IP allowlist, models) or the token's own models."""
        try:
            (check or (lambda p: check_access(p, client_ip)))(principal)
            return principal
        except ProxyError:
            if principal.fresh or self.clock() - principal.read_at < self.recheck_seconds:
                raise
        principal = self.reload(principal.token.token_hash)
        check_access(principal, client_ip)
        if check is not None:
            check(principal)
        return principal

    def reload(self, token_hash: str) -> Principal:
        """Both items read again (consistently) and kept in the cache; the token checked."""
        return self._load(token_hash, fresh=True)

    def _load(self, token_hash: str, fresh: bool) -> Principal:
        now = self.clock()
        token_entry = None if fresh else self.tokens.entry(token_hash)
        if token_entry is None:
            token = contract.get_token(self.dynamodb, token_hash, self.tables)
            if token is None:
                self.tokens.drop(token_hash)
                raise ProxyError("unknown_token")
            self.tokens.put(token_hash, token)
            token_read_at, read_token = now, True
        else:
            read_token = False
            token, token_read_at = token_entry
        check_token(token, time.time())
        entry = None if fresh else self.customers.entry(token.customer_id)
        customer: contract.CustomerItem | None
        if entry is None:
            customer = contract.get_customer(self.dynamodb, token.customer_id, self.tables)
            if customer is None:
                self.customers.drop(token.customer_id)
            else:
                self.customers.put(token.customer_id, customer)
            read_at, read_customer = now, True
        else:
            read_customer = False
            customer, read_at = entry
        # The token's own models refuse too: a refusal is as fresh as the older of the two.
        read_at = min(read_at, token_read_at)
        # A missing customer item (deleted) is carried as None only until check_customer
        # refuses it (customer_closed): every caller of _load and reload runs check_customer
        # (check_access) before it reads anything of the customer.
        return Principal(
            token=token,
            customer=cast("contract.CustomerItem", customer),
            read_at=read_at,
            fresh=read_token and read_customer,
        )

    def forget(self, token_hash: str, customer_id: str | None = None) -> None:
        self.tokens.drop(token_hash)
        if customer_id:
            self.customers.drop(customer_id)
