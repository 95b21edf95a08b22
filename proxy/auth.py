"""Bearer token -> token item -> customer item, through a bounded in-memory LRU cache with TTL.

The cache only saves reads. Revocation, suspension and limit changes still take effect on the
very next request: the admission transaction (limits.py) re-checks the token's and customer's
status and version inside DynamoDB, and a mismatch drops the cached entries (see limits.py).
Only hashes are cached; the token itself is never kept or logged.
"""

from __future__ import annotations

import ipaddress
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import lru_cache

from . import contract
from .errors import ProxyError


class TTLCache:
    """A small thread-safe LRU with per-entry expiry. None is never cached (unknown tokens)."""

    def __init__(self, size: int, ttl_seconds: float, clock=time.monotonic):
        self.size, self.ttl, self.clock = max(1, size), ttl_seconds, clock
        self._data: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            entry = self._data.get(key)
            if entry is None:
                return None
            value, stored_at = entry
            if self.clock() - stored_at >= self.ttl:
                del self._data[key]
                return None
            self._data.move_to_end(key)
            return value

    def put(self, key, value) -> None:
        if value is None or self.ttl <= 0:
            return
        with self._lock:
            self._data[key] = (value, self.clock())
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def drop(self, key) -> None:
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


def bearer_token(headers: dict) -> str:
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
def _network(cidr: str):
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


class Authenticator:
    def __init__(self, dynamodb, tables: contract.TableNames, *, size: int, ttl_seconds: float):
        self.dynamodb, self.tables = dynamodb, tables
        self.tokens = TTLCache(size, ttl_seconds)
        self.customers = TTLCache(size, ttl_seconds)

    def authenticate(self, headers: dict, client_ip: str, *, fresh: bool = False) -> Principal:
        token_hash = contract.hash_token(bearer_token(headers))
        token = None if fresh else self.tokens.get(token_hash)
        if token is None:
            token = contract.get_token(self.dynamodb, token_hash, self.tables)
            if token is None:
                raise ProxyError("unknown_token")
            self.tokens.put(token_hash, token)
        check_token(token, time.time())
        customer = None if fresh else self.customers.get(token.customer_id)
        if customer is None:
            customer = contract.get_customer(self.dynamodb, token.customer_id, self.tables)
            self.customers.put(token.customer_id, customer)
        check_customer(customer)
        check_ip(customer, client_ip)
        return Principal(token=token, customer=customer)

    def forget(self, token_hash: str, customer_id: str | None = None) -> None:
        self.tokens.drop(token_hash)
        if customer_id:
            self.customers.drop(customer_id)
