"""Admission: ONE TransactWriteItems per request checks and counts everything at once.

Items, in this order (CancellationReasons come back in the same order):
  0. ConditionCheck token item: status = active AND version = the cached version
  1. ConditionCheck customer item: status = active AND version = the cached version
  2. Update MIN#<minute> counter: ADD requests 1, if requests < rpm cap        (rpm limit set)
  3. Update DAY#<day> counter: ADD requests 1, if requests < daily cap
  4. Update MONTH#<month> counter: ADD requests 1 (and the call's token hold to quota_tokens),
     if quota_tokens < quota cap

Because DynamoDB evaluates every condition atomically, no number of concurrent containers can
admit more than the limit, and a revoked token or suspended customer (the portal bumps the item's
version) fails item 0 or 1 on the very next request even when this container's cache is warm.

Warnings (progressive throttling): a cap starts at the warning threshold (80 % by
default). When it fails, the container remembers that this customer passed the threshold in this
period and retries with the hard cap; later requests of the period use the hard cap directly
and carry `X-RateLimit-Warning`. Counters only grow within a period, so this is exact, and it
costs one extra call once per customer, period and container.

Monthly quota: a call's tokens are known only after it, so admission adds an estimate (the
hold, formats.quota_hold) to quota_tokens in the same conditional update, and usage.py replaces
it by the exact count afterwards (or takes it back when the call fails). Concurrent calls in
flight therefore see each other's holds: the quota is overshot by at most about one call, not by
every call in flight. A free model's call (models.is_free) holds nothing and has no quota
condition: it is never refused by the monthly quota (the request still counts on MONTH#, and
the per-minute and daily limits apply to it as to any call).

DynamoDB unreachable or throttling past botocore's retries, during authentication or admission:
`store_errors()` turns it into a retryable 503 `service_unavailable` with Retry-After.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from . import auth, contract
from .errors import ProxyError

MINUTE_TTL = 2 * 3600
DAY_TTL = 400 * 86400
MAX_ATTEMPTS = 8
# On MONTH#<month>: input + output tokens of priced models, plus the holds of calls in flight.
QUOTA_ATTRIBUTE = contract.QUOTA_TOKENS
# The most one call may hold against the quota. A hold is at most the body's characters / 4
# (6 MB: 1.5 million) plus the model's maximum output (models.max_output_tokens), so this never
# binds in practice; it keeps every number written to DynamoDB (38 significant digits at most)
# far from that bound whatever reaches here.
MAX_QUOTA_HOLD = 10**9
# The most one update adds to a counter (usage.py): token counts come from Bedrock, and a
# number DynamoDB cannot store (over 38 digits) would lose the whole usage transaction.
MAX_COUNTER_ADD = 10**15
# DynamoDB errors that mean "try again shortly" once botocore's own retries are spent.
STORE_BUSY_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)


@dataclass
class Period:
    dimension: str  # "rpm" | "daily" | "monthly"
    sk: str
    limit: int | None
    reset_at: datetime


@dataclass
class Admission:
    now: datetime
    day_sk: str
    month_sk: str
    headers: dict = field(default_factory=dict)
    attempts: int = 1
    request_id: str = ""
    quota_held: int = 0  # tokens added to quota_tokens at admission, settled by usage.py


def idempotency_token(request_id: str, purpose: str) -> dict:
    """`ClientRequestToken` for a transaction: if botocore retries the very same call after a
    timeout whose first try did land, DynamoDB applies it once (tokens live 10 minutes)."""
    if not request_id:
        return {}
    return {"ClientRequestToken": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{request_id}/{purpose}"))}


def store_unavailable(exc: Exception) -> ProxyError | None:
    """A retryable 503 for DynamoDB unreachable (connection refused or reset, timeouts) or
    throttling once botocore's retries are spent; None for any other error (a bug: 500)."""
    if isinstance(exc, ConnectionError | HTTPClientError):  # EndpointConnectionError, timeouts
        return ProxyError(
            "service_unavailable",
            "The request could not be checked against the account (its store is "
            "unreachable); retry after the Retry-After delay.",
            headers={"Retry-After": "2"},
        )
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code", "")
        if code in STORE_BUSY_CODES:
            return ProxyError(
                "service_unavailable",
                "The limits store is busy; retry after the Retry-After delay.",
                headers={"Retry-After": "1"},
            )
    return None


@contextmanager
def store_errors():
    """Around the DynamoDB reads and the admission: unreachable or throttled -> 503."""
    try:
        yield
    except (ClientError, ConnectionError, HTTPClientError) as exc:
        mapped = store_unavailable(exc)
        if mapped is None:
            raise
        raise mapped from None


def periods(now: datetime) -> dict[str, tuple[str, datetime]]:
    minute = now.replace(second=0, microsecond=0)
    day = now.date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    month_start = datetime(day.year + (day.month == 12), day.month % 12 + 1, 1, tzinfo=UTC)
    return {
        "rpm": (
            contract.minute_sk(minute.strftime("%Y-%m-%dT%H:%M")),
            minute + timedelta(minutes=1),
        ),
        "daily": (contract.day_sk(day), midnight),
        "monthly": (contract.month_sk(day), month_start),
    }


CODES = {
    "rpm": "rpm_limit_exceeded",
    "daily": "daily_limit_exceeded",
    "monthly": "monthly_quota_exceeded",
}
HEADER_NAMES = {
    "rpm": "Requests-Minute",
    "daily": "Requests-Day",
    "monthly": "Tokens-Month",
}


class Limiter:
    def __init__(self, dynamodb, tables: contract.TableNames, authenticator, warning_percent=80):
        self.dynamodb, self.tables, self.auth = dynamodb, tables, authenticator
        self.warning_percent = warning_percent
        self._warned: set[tuple[str, str, str]] = set()

    def _limits(self, customer: contract.CustomerItem) -> dict[str, int | None]:
        return {
            "rpm": customer.rpm_limit,
            "daily": customer.daily_request_limit,
            "monthly": customer.monthly_token_quota,
        }

    def _cap(self, customer_id: str, dimension: str, sk: str, limit: int) -> tuple[int, bool]:
        """(cap, is_warning_cap)."""
        warn_at = limit * self.warning_percent // 100
        if 0 < warn_at < limit and (customer_id, dimension, sk) not in self._warned:
            return warn_at, True
        return limit, False

    def admit(
        self,
        principal: auth.Principal,
        recheck,
        now: datetime | None = None,
        request_id: str = "",
        quota_hold: int = 0,
        free: bool = False,
    ) -> Admission:
        """Count this request or raise ProxyError. `recheck(principal)` re-validates a refreshed
        customer (IP allowlist, model access) when its item changed since it was cached.
        `quota_hold`: tokens held against the monthly quota until the call reports its own.
        `free`: a free model's call, which the monthly quota neither holds for nor refuses."""
        now = now or datetime.now(UTC)
        slots = periods(now)
        quota_hold = 0 if free else max(0, min(int(quota_hold), MAX_QUOTA_HOLD))
        for attempt in range(1, MAX_ATTEMPTS + 1):
            customer = principal.customer
            limits = self._limits(customer)
            held = quota_hold if limits["monthly"] is not None else 0
            items, plan = self._transaction(principal, limits, slots, held, free)
            try:
                # Each attempt is planned anew (its items may differ), so it has its own token.
                self.dynamodb.transact_write_items(
                    TransactItems=items, **idempotency_token(request_id, f"admit/{attempt}")
                )
            except ClientError as exc:
                if is_conflict(exc) and attempt < MAX_ATTEMPTS:
                    # Another transaction holds the same counter item: retry with jitter.
                    time.sleep(random.uniform(0.005, 0.02 * attempt))  # noqa: S311 (jitter)
                    continue
                if exc.response["Error"]["Code"] != "TransactionCanceledException":
                    raise
                reasons = [
                    r.get("Code", "None") for r in exc.response.get("CancellationReasons", [])
                ]
                if "ConditionalCheckFailed" not in reasons:
                    # Throttled, or still conflicting after MAX_ATTEMPTS: DynamoDB is busy.
                    raise ProxyError(
                        "service_unavailable",
                        "The limits store is busy; retry after the Retry-After delay.",
                        headers={"Retry-After": "1"},
                    ) from None
                principal = self._on_cancel(principal, reasons, plan, slots, now, recheck)
                continue
            admission = self._admitted(principal, limits, slots, plan, now, attempt)
            admission.request_id, admission.quota_held = request_id, held
            return admission
        raise ProxyError("internal_error", "Could not admit the request; retry.")

    def _transaction(self, principal, limits, slots, quota_hold=0, free=False):
        token, customer = principal.token, principal.customer
        names = self.tables
        pk = {"S": contract.counter_pk(customer.customer_id)}
        items = [
            _status_check(names.tokens, contract.TOKEN_KEY, token.token_hash, token.version),
            _status_check(
                names.customers, contract.CUSTOMER_KEY, customer.customer_id, customer.version
            ),
        ]
        plan: list[tuple[int, str, bool]] = []  # (item index, dimension, warning cap?)
        epoch = int(time.time())
        for dimension in ("rpm", "daily", "monthly"):
            sk, _ = slots[dimension]
            limit = limits[dimension]
            if free and dimension == "monthly":
                limit = None  # counted on MONTH#, but no quota condition: free calls never use it
            if limit is not None and limit <= 0:
                raise self._refusal(dimension, limit, slots)
            if dimension == "rpm" and limit is None:
                continue
            update = {
                "TableName": names.usage_counters,
                "Key": {contract.COUNTER_PK: pk, contract.COUNTER_SK: {"S": sk}},
                "UpdateExpression": "ADD #requests :one",
                "ExpressionAttributeNames": {"#requests": "requests"},
                "ExpressionAttributeValues": {":one": {"N": "1"}},
            }
            if dimension != "monthly":
                ttl = epoch + (MINUTE_TTL if dimension == "rpm" else DAY_TTL)
                update["UpdateExpression"] += " SET #ttl = :ttl"
                update["ExpressionAttributeNames"]["#ttl"] = contract.TTL_ATTRIBUTE
                update["ExpressionAttributeValues"][":ttl"] = {"N": str(ttl)}
            if limit is not None:
                cap, warning = self._cap(customer.customer_id, dimension, sk, limit)
                attr = "#requests" if dimension != "monthly" else "#quota"
                if dimension == "monthly":
                    update["ExpressionAttributeNames"]["#quota"] = QUOTA_ATTRIBUTE
                    if quota_hold > 0:  # the condition sees the value before this update
                        update["UpdateExpression"] += ", #quota :hold"
                        update["ExpressionAttributeValues"][":hold"] = {"N": str(quota_hold)}
                update["ConditionExpression"] = f"attribute_not_exists({attr}) OR {attr} < :cap"
                update["ExpressionAttributeValues"][":cap"] = {"N": str(cap)}
                plan.append((len(items), dimension, warning))
            items.append({"Update": update})
        return items, plan

    def _on_cancel(self, principal, reasons, plan, slots, now, recheck):
        failed = {i for i, code in enumerate(reasons) if code == "ConditionalCheckFailed"}
        token, customer = principal.token, principal.customer
        if failed & {0, 1}:
            # The portal changed the token or customer: read both again (the cache keeps what
            # was read, so a refusal decided here is not read again for a while, auth.py).
            principal = self.auth.reload(token.token_hash)
            auth.check_customer(principal.customer)
            recheck(principal)
            return principal
        for index, dimension, warning in plan:
            if index not in failed:
                continue
            sk, _ = slots[dimension]
            if warning:
                self._remember_warning(customer.customer_id, dimension, sk)
                continue
            raise self._refusal(dimension, self._limits(customer)[dimension], slots, now)
        return principal

    def _remember_warning(self, customer_id, dimension, sk):
        if len(self._warned) > 100_000:
            self._warned.clear()
        self._warned.add((customer_id, dimension, sk))

    def _refusal(self, dimension, limit, slots, now=None) -> ProxyError:
        now = now or datetime.now(UTC)
        _, reset_at = slots[dimension]
        retry_after = max(1, math.ceil((reset_at - now).total_seconds()))
        headers = {
            "Retry-After": str(retry_after),
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(reset_at.timestamp())),
            f"X-RateLimit-Limit-{HEADER_NAMES[dimension]}": str(limit),
        }
        message = {
            "rpm": f"Requests-per-minute limit of {limit} reached; retry in {retry_after} s.",
            "daily": f"Daily request limit of {limit} reached; it resets at 00:00 UTC.",
            "monthly": f"Monthly token quota of {limit} used up; it resets on the 1st (UTC).",
        }[dimension]
        return ProxyError(CODES[dimension], message, headers=headers)

    def _admitted(self, principal, limits, slots, plan, now, attempts) -> Admission:
        customer_id = principal.customer.customer_id
        headers, warnings = {}, []
        for dimension, limit in limits.items():
            if limit is None:
                continue
            sk, reset_at = slots[dimension]
            headers[f"X-RateLimit-Limit-{HEADER_NAMES[dimension]}"] = str(limit)
            headers[f"X-RateLimit-Reset-{HEADER_NAMES[dimension]}"] = str(int(reset_at.timestamp()))
            if (customer_id, dimension, sk) in self._warned:
                warnings.append(f"{dimension} usage above {self.warning_percent}% of {limit}")
        if warnings:
            headers["X-RateLimit-Warning"] = "; ".join(warnings)
        return Admission(
            now=now,
            day_sk=slots["daily"][0],
            month_sk=slots["monthly"][0],
            headers=headers,
            attempts=attempts,
        )


def _status_check(table: str, key: str, value: str, version: int) -> dict:
    return {
        "ConditionCheck": {
            "TableName": table,
            "Key": {key: {"S": value}},
            "ConditionExpression": "#status = :active AND #version = :version",
            "ExpressionAttributeNames": {"#status": "status", "#version": "version"},
            "ExpressionAttributeValues": {
                ":active": {"S": "active"},
                ":version": {"N": str(version)},
            },
        }
    }


def is_conflict(exc: ClientError) -> bool:
    """A concurrent transaction on the same item (TransactionConflict), not a failed condition."""
    error = exc.response.get("Error", {}).get("Code", "")
    if error in ("TransactionConflictException", "TransactionInProgressException"):
        return True
    reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
    return (
        error == "TransactionCanceledException"
        and "TransactionConflict" in reasons
        and "ConditionalCheckFailed" not in reasons
    )
