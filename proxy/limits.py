"""Admission: ONE TransactWriteItems per request checks and counts everything at once.

Items, in this order (CancellationReasons come back in the same order):
  0. ConditionCheck token item: status = active AND version = the cached version
  1. ConditionCheck customer item: status = active AND version = the cached version
  Then the customer's counters (pk CUST#<customer_id>):
  2. Update MIN#<minute>: ADD requests 1 (and the call's hold to `tokens`), if requests < rpm cap
     and tokens < tpm cap                                       (rpm or tpm limit set)
  3. Update DAY#<day>: ADD requests 1, if requests < daily cap
  4. Update MONTH#<month>: ADD requests 1 (and the call's hold to quota_tokens),
     if quota_tokens < quota cap
  Then, when the token has limits of its own, its counters (pk TOKEN#<token_id>), each only
  for the limits it has: MIN# (requests, tokens), DAY# (requests), MONTH# (quota_tokens), with
  the same conditions against the token's caps. A request must pass both scopes.

Because DynamoDB evaluates every condition atomically, no number of concurrent containers can
admit more than the limit, and a revoked token or suspended customer (the portal bumps the item's
version) fails item 0 or 1 on the very next request even when this container's cache is warm.

Warnings (progressive throttling): a cap starts at the warning threshold (80 % by
default). When it fails, the container remembers that this customer passed the threshold in this
period and retries with the hard cap; later requests of the period use the hard cap directly
and carry `X-RateLimit-Warning`. Counters only grow within a period, so this is exact, and it
costs one extra call once per customer, period and container.

Monthly quota and tokens per minute: a call's tokens are known only after it, so admission adds
an estimate (the hold, formats.quota_hold) to quota_tokens (MONTH#) and to tokens (MIN#) in the
same conditional updates, and usage.py replaces it by the exact count afterwards on the same
items (or takes it back when the call fails). Concurrent calls in flight therefore see each
other's holds: a limit is overshot by at most about one call, not by every call in flight. A
free model's call (models.is_free) holds nothing and has neither condition: it is never refused
by the monthly quota or a tokens-per-minute limit (the request still counts on MONTH#, and the
requests-per-minute and daily limits apply to it as to any call).

Money (monthly budgets and prepaid credit): with the call's price (proxy/prices.py) the
admission also holds the most the call can cost (prices.hold_micros of the token hold) in
micro-units: on the customer's MONTH# `spend_micros` always (the live spend the portal shows),
with the condition `spend_micros < budget` when the customer has a monthly budget; on the
token's MONTH# when the token has a budget of its own; and, for a prepaid customer, on the
CREDIT item (contract.CREDIT_SK: `used_micros` and the month's `used#YYYY-MM`, on condition
that `used_micros < granted_micros`, i.e. some credit is left). usage.py settles each hold to
the call's exact cost. So a budget or the credit is overshot by at most about one call's cost
(the last call admitted while some was left), however many calls run at once. Refusals:
`budget_exceeded` (429, with the budget, the amount spent and the reset time) and
`insufficient_credit` (402). A free model's call costs nothing and is never refused by either.
A model without a price cannot be counted against money: with a budget or prepaid credit its
calls are refused (`model_not_priced`); otherwise its spend is simply not counted.

When one item carries two conditions (requests and tokens per minute), it asks for the item as
it was on failure (ReturnValuesOnConditionCheckFailure: ALL_OLD, returned in the cancellation
reasons, no extra call), which tells which limit refused.

Refusals name their scope: `X-RateLimit-Scope: customer | token`, and a token's messages begin
with "Token" ("Token daily request limit of 100 reached; ...").

DynamoDB unreachable or throttling past botocore's retries, during authentication or admission:
`store_errors()` turns it into a retryable 503 `service_unavailable` with Retry-After.
"""

from __future__ import annotations

import math
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, TypedDict

from botocore.exceptions import ClientError, ConnectionError, HTTPClientError

from . import auth, contract, prices, sharded
from .errors import ProxyError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import (
        AttributeValueTypeDef,
        TransactWriteItemTypeDef,
        UpdateTypeDef,
    )

    from .sharded import ShardState

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
# The most one call may hold in money, in micro-units (a billion units of the currency).
MAX_MONEY_HOLD = 10**15
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
# Each dimension's period: (its counter item's sk, when it resets; None: never, the credit).
Slots = dict[str, tuple[str, datetime | None]]
# A limit's value by dimension (None: no limit).
Limits = dict[str, int | None]
# (scope, the warnings' key, the counter pk, its limits): the customer's, then the token's.
Scope = tuple[str, str, str, Limits]
# A hold taken at admission: (pk, sk, attribute, amount held).
Hold = tuple[str, str, str, int]
# Re-validates a refreshed principal (IP allowlist, model access); raises ProxyError.
Recheck = Callable[[auth.Principal], None]


@dataclass
class Admission:
    now: datetime
    day_sk: str
    month_sk: str
    headers: dict[str, str] = field(default_factory=dict)
    attempts: int = 1
    request_id: str = ""
    quota_held: int = 0  # tokens added to the customer's quota_tokens, settled by usage.py
    minute_sk: str = ""
    # Other holds taken at admission, each replaced by the exact count (or given back) by
    # usage.py on the same item: (pk, sk, attribute, tokens held). The customer's and the
    # token's MIN# `tokens` (tokens per minute) and the token's MONTH# `quota_tokens`.
    holds: list[Hold] = field(default_factory=list)
    # Token counter items whose request a failed call takes back, as the customer's DAY#.
    token_requests: list[tuple[str, str]] = field(default_factory=list)
    # The call's price (prices.Price) when known: usage.py settles the money holds (in `holds`,
    # attributes SPEND_MICROS and the CREDIT item's) to the call's exact cost at this price.
    price: prices.Price | None = None
    # A sharded customer's admission (sharded.ShardState): what settle() and refund() adjust.
    sharded: ShardState | None = None


@dataclass(slots=True)
class Planned:
    """A condition of the admission transaction: which item, scope, limit and cap."""

    index: int  # the item's position (CancellationReasons come back in the same order)
    scope: str  # "customer" | "token"
    key: str  # the warnings' key: the customer id, or "token:<token id>"
    dimension: str  # "rpm" | "tpm" | "daily" | "monthly"
    limit: int
    cap: int
    warning: bool  # the cap is the warning threshold, not the limit
    attribute: str  # the counter the condition compares
    currency: str = ""  # money dimensions: the currency of the amounts


class RequestToken(TypedDict, total=False):
    """The keyword arguments idempotency_token() adds to a TransactWriteItems call."""

    ClientRequestToken: str


def idempotency_token(request_id: str, purpose: str) -> RequestToken:
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
def store_errors() -> Iterator[None]:
    """Around the DynamoDB reads and the admission: unreachable or throttled -> 503."""
    try:
        yield
    except (ClientError, ConnectionError, HTTPClientError) as exc:
        mapped = store_unavailable(exc)
        if mapped is None:
            raise
        raise mapped from None


def periods(now: datetime) -> Slots:
    minute = now.replace(second=0, microsecond=0)
    day = now.date()
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
    month_start = datetime(day.year + (day.month == 12), day.month % 12 + 1, 1, tzinfo=UTC)
    this_minute = (
        contract.minute_sk(minute.strftime("%Y-%m-%dT%H:%M")),
        minute + timedelta(minutes=1),
    )
    return {
        "rpm": this_minute,
        "tpm": this_minute,
        "daily": (contract.day_sk(day), midnight),
        "monthly": (contract.month_sk(day), month_start),
        "budget": (contract.month_sk(day), month_start),
        "credit": (contract.CREDIT_SK, None),  # no reset: a top-up reopens
    }


DIMENSIONS = ("rpm", "tpm", "daily", "monthly", "budget")
MONEY_DIMENSIONS = ("budget", "credit")
CODES = {
    "rpm": "rpm_limit_exceeded",
    "tpm": "tpm_limit_exceeded",
    "daily": "daily_limit_exceeded",
    "monthly": "monthly_quota_exceeded",
    "budget": "budget_exceeded",
    "credit": "insufficient_credit",
}
HEADER_NAMES = {
    "rpm": "Requests-Minute",
    "tpm": "Tokens-Minute",
    "daily": "Requests-Day",
    "monthly": "Tokens-Month",
    "budget": "Budget-Month",
}
# The counter each dimension's condition compares, and its placeholder in the expressions.
ATTRIBUTES = {
    "rpm": "requests",
    "tpm": contract.MINUTE_TOKENS,
    "daily": "requests",
    "monthly": QUOTA_ATTRIBUTE,
    "budget": contract.SPEND_MICROS,
    "credit": contract.CREDIT_USED,
}
_PLACEHOLDERS = {
    "requests": "#r",
    contract.MINUTE_TOKENS: "#t",
    QUOTA_ATTRIBUTE: "#q",
    contract.SPEND_MICROS: "#s",
}
SCOPE_HEADER = "X-RateLimit-Scope"
_CENT = Decimal("0.01")


def limits_of(item: contract.CustomerItem | contract.TokenItem) -> Limits:
    """A customer's or a token's limits by dimension (both items name them alike). Budgets
    are in micro-units of the currency."""
    return {
        "rpm": item.rpm_limit,
        "tpm": item.tpm_limit,
        "daily": item.daily_request_limit,
        "monthly": item.monthly_token_quota,
        "budget": getattr(item, "monthly_budget_micros", None),
    }


def money(micros: int, currency: str = "") -> str:
    """Micro-units as an amount people read: 50000000 -> "50.00 USD" (half-up to the cent)."""
    amount = (Decimal(int(micros)) / contract.MICROS_PER_UNIT).quantize(_CENT, ROUND_HALF_UP)
    return f"{amount:,} {currency}".strip()


def _credit_update(table: str, pk: str, month: str, hold: int) -> TransactWriteItemTypeDef:
    """The prepaid customer's CREDIT item: hold `hold` micro-units of credit, if some is left
    (used below granted, before this update; nothing granted yet, or 0: nothing is left)."""
    return {
        "Update": {
            "TableName": table,
            "Key": {contract.COUNTER_PK: {"S": pk}, contract.COUNTER_SK: {"S": contract.CREDIT_SK}},
            "UpdateExpression": "ADD #u :h, #um :h",
            "ConditionExpression": (
                "attribute_exists(#g) AND ((attribute_not_exists(#u) AND #g > :zero) OR #u < #g)"
            ),
            "ExpressionAttributeNames": {
                "#u": contract.CREDIT_USED,
                "#um": contract.credit_used_in(month),
                "#g": contract.CREDIT_GRANTED,
            },
            "ExpressionAttributeValues": {":h": {"N": str(hold)}, ":zero": {"N": "0"}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def _counter_update(
    table: str,
    pk: str,
    sk: str,
    adds: Iterable[tuple[str, int]],
    ttl: AttributeValueTypeDef | None = None,
    conditions: Sequence[tuple[str, int]] = (),
) -> TransactWriteItemTypeDef:
    """ADD `adds` [(attribute, amount)] to one counter item, if every (attribute, cap) of
    `conditions` is below its cap (the values before this update)."""
    names: dict[str, str] = {}
    values: dict[str, AttributeValueTypeDef] = {}
    parts: list[str] = []
    for i, (attribute, amount) in enumerate(adds):
        placeholder = _PLACEHOLDERS[attribute]
        names[placeholder] = attribute
        values[f":a{i}"] = {"N": str(amount)}
        parts.append(f"{placeholder} :a{i}")
    expression = "ADD " + ", ".join(parts)
    if ttl is not None:
        names["#ttl"], values[":ttl"] = contract.TTL_ATTRIBUTE, ttl
        expression += " SET #ttl = :ttl"
    update: UpdateTypeDef = {
        "TableName": table,
        "Key": {contract.COUNTER_PK: {"S": pk}, contract.COUNTER_SK: {"S": sk}},
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    if conditions:
        checks: list[str] = []
        for j, (attribute, cap) in enumerate(conditions):
            placeholder = _PLACEHOLDERS[attribute]
            names[placeholder] = attribute
            values[f":c{j}"] = {"N": str(cap)}
            checks.append(f"(attribute_not_exists({placeholder}) OR {placeholder} < :c{j})")
        update["ConditionExpression"] = " AND ".join(checks)
        if len(conditions) > 1 or any(a == contract.SPEND_MICROS for a, _ in conditions):
            # Two limits on one item (requests and tokens per minute), or a budget: the item as
            # it was tells which of them refused, and how much was spent. Returned only when
            # the condition fails.
            update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {"Update": update}


class Limiter:
    def __init__(
        self,
        dynamodb: DynamoDBClient,
        tables: contract.TableNames,
        authenticator: auth.Authenticator,
        warning_percent: int = 80,
    ) -> None:
        self.dynamodb, self.tables, self.auth = dynamodb, tables, authenticator
        self.warning_percent = warning_percent
        self._warned: set[tuple[str, str, str]] = set()
        self.sharded = sharded.ShardedAdmission(self)

    @staticmethod
    def _scopes(principal: auth.Principal) -> list[Scope]:
        """(scope, warnings key, counter pk, limits): the customer's, then the token's own
        limits when it has any (a request must pass both)."""
        customer, token = principal.customer, principal.token
        scopes: list[Scope] = [
            ("customer", customer.customer_id, contract.counter_pk(customer.customer_id),
             limits_of(customer)),
        ]  # fmt: skip
        if token.has_limits:
            scopes.append(
                ("token", "token:" + token.token_id, contract.token_counter_pk(token.token_id),
                 limits_of(token))
            )  # fmt: skip
        return scopes

    def _cap(self, key: str, dimension: str, sk: str, limit: int) -> tuple[int, bool]:
        """(cap, is_warning_cap)."""
        warn_at = limit * self.warning_percent // 100
        if 0 < warn_at < limit and (key, dimension, sk) not in self._warned:
            return warn_at, True
        return limit, False

    def admit(
        self,
        principal: auth.Principal,
        recheck: Recheck,
        now: datetime | None = None,
        request_id: str = "",
        quota_hold: int = 0,
        free: bool = False,
        price: prices.Price | None = None,
    ) -> Admission:
        """Count this request or raise ProxyError. `recheck(principal)` re-validates a refreshed
        customer (IP allowlist, model access) when its item changed since it was cached.
        `quota_hold`: tokens held against the monthly quota and the tokens-per-minute limits
        until the call reports its own. `free`: a free model's call, which neither the monthly
        quota, the tokens-per-minute limits nor money limits hold for or refuse. `price`: the
        model's price now (None: unknown), for the money holds."""
        now = now or datetime.now(UTC)
        slots = periods(now)
        quota_hold = 0 if free else max(0, min(int(quota_hold), MAX_QUOTA_HOLD))
        if free:
            price = None
        money_hold = 0
        if price is not None:
            money_hold = min(prices.hold_micros(price, quota_hold), MAX_MONEY_HOLD)
        if sharded.uses_shards(principal.customer):
            return self._admit_sharded(
                principal, recheck, now, slots, request_id, quota_hold, free, price, money_hold
            )
        for attempt in range(1, MAX_ATTEMPTS + 1):
            scopes = self._scopes(principal)
            planned = self._transaction(
                principal, scopes, slots, quota_hold, free, price, money_hold
            )
            items, plan = planned[0], planned[1]
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
                reasons = exc.response.get("CancellationReasons", [])
                if not any(r.get("Code") == "ConditionalCheckFailed" for r in reasons):
                    # Throttled, or still conflicting after MAX_ATTEMPTS: DynamoDB is busy.
                    raise ProxyError(
                        "service_unavailable",
                        "The limits store is busy; retry after the Retry-After delay.",
                        headers={"Retry-After": "1"},
                    ) from None
                principal = self._on_cancel(principal, reasons, plan, slots, now, recheck)
                continue
            currency = price.currency if price is not None else ""
            admission = self._admitted(principal, scopes, slots, now, attempt, currency)
            admission.request_id = request_id
            admission.quota_held, admission.holds, admission.token_requests = planned[2:]
            admission.price = price
            return admission
        # The portal changed the token or customer item on every attempt (each reread found a
        # newer version): nothing is wrong with the request, so the client retries shortly.
        raise ProxyError(
            "service_unavailable",
            "The account's settings were changing while the request was checked; retry after "
            "the Retry-After delay.",
            headers={"Retry-After": "1"},
        )

    def _admit_sharded(
        self,
        principal: auth.Principal,
        recheck: Recheck,
        now: datetime,
        slots: Slots,
        request_id: str,
        quota_hold: int,
        free: bool,
        price: prices.Price | None,
        money_hold: int,
    ) -> Admission:
        """A customer spread over admission shards: one UpdateItem (sharded.py)."""
        if not free and price is None:
            self._refuse_unpriced(principal)
        currency = price.currency if price is not None else ""
        principal, state, attempts = self.sharded.admit(
            principal, recheck, now, slots, quota_hold, free, money_hold, currency
        )
        admission = self._admitted(
            principal, self._scopes(principal), slots, now, attempts, currency
        )
        admission.request_id, admission.price, admission.sharded = request_id, price, state
        return admission

    def _transaction(
        self,
        principal: auth.Principal,
        scopes: list[Scope],
        slots: Slots,
        quota_hold: int = 0,
        free: bool = False,
        price: prices.Price | None = None,
        money_hold: int = 0,
    ) -> tuple[
        list[TransactWriteItemTypeDef], list[Planned], int, list[Hold], list[tuple[str, str]]
    ]:
        """(items, plan, the customer's quota hold, other holds, token requests)."""
        token, customer = principal.token, principal.customer
        currency = price.currency if price is not None else ""
        if not free and price is None:
            self._refuse_unpriced(principal)
        names = self.tables
        table = names.usage_counters
        items: list[TransactWriteItemTypeDef] = [
            _status_check(names.tokens, contract.TOKEN_KEY, token.token_hash, token.version),
            _status_check(
                names.customers, contract.CUSTOMER_KEY, customer.customer_id, customer.version
            ),
        ]
        plan: list[Planned] = []
        holds: list[Hold] = []
        token_requests: list[tuple[str, str]] = []
        customer_held = 0
        epoch = int(time.time())
        minute_ttl: AttributeValueTypeDef = {"N": str(epoch + MINUTE_TTL)}
        day_ttl: AttributeValueTypeDef = {"N": str(epoch + DAY_TTL)}
        adds: list[tuple[str, int]]
        conditions: list[tuple[str, int]]
        minute_sk, day_sk, month_sk = slots["rpm"][0], slots["daily"][0], slots["monthly"][0]
        for scope, key, pk, limits in scopes:
            if free:  # a request like any, but nothing held: no quota, tokens per minute, money
                limits = {**limits, "tpm": None, "monthly": None, "budget": None}
            for dimension in DIMENSIONS:
                limit = limits[dimension]
                if limit is not None and limit <= 0:
                    raise self._refusal(scope, dimension, limit, slots, currency=currency)
            is_customer = scope == "customer"

            def planned(
                dimension: str, sk: str, limit: int, scope: str = scope, key: str = key
            ) -> tuple[str, int]:
                """The condition of `dimension` (its `limit`) on the item about to be appended."""
                cap, warning = self._cap(key, dimension, sk, limit)
                attribute = ATTRIBUTES[dimension]
                plan.append(
                    Planned(
                        len(items), scope, key, dimension, limit, cap, warning, attribute, currency
                    )
                )
                return attribute, cap

            rpm, tpm = limits["rpm"], limits["tpm"]
            if rpm is not None or tpm is not None:  # MIN#: requests, and tokens held
                adds, conditions = [("requests", 1)], []
                if rpm is not None:
                    conditions.append(planned("rpm", minute_sk, rpm))
                if tpm is not None:
                    adds.append((contract.MINUTE_TOKENS, quota_hold))
                    holds.append((pk, minute_sk, contract.MINUTE_TOKENS, quota_hold))
                    conditions.append(planned("tpm", minute_sk, tpm))
                items.append(_counter_update(table, pk, minute_sk, adds, minute_ttl, conditions))
            daily = limits["daily"]
            if is_customer or daily is not None:  # DAY#: requests
                conditions = [planned("daily", day_sk, daily)] if daily is not None else []
                items.append(
                    _counter_update(table, pk, day_sk, [("requests", 1)], day_ttl, conditions)
                )
                if not is_customer:
                    token_requests.append((pk, day_sk))
            monthly, budget = limits["monthly"], limits["budget"]
            if is_customer:  # MONTH#: requests, the quota's hold, the money hold (live spend)
                adds, conditions = [("requests", 1)], []
                if monthly is not None:
                    conditions.append(planned("monthly", month_sk, monthly))
                    if quota_hold > 0:  # the condition sees the value before this update
                        adds.append((QUOTA_ATTRIBUTE, quota_hold))
                        customer_held = quota_hold
                if budget is not None:
                    conditions.append(planned("budget", month_sk, budget))
                if money_hold > 0:
                    adds.append((contract.SPEND_MICROS, money_hold))
                    holds.append((pk, month_sk, contract.SPEND_MICROS, money_hold))
                items.append(_counter_update(table, pk, month_sk, adds, None, conditions))
            elif monthly is not None or budget is not None:  # the token's MONTH#: its holds
                adds, conditions = [], []
                if monthly is not None:
                    conditions.append(planned("monthly", month_sk, monthly))
                    adds.append((QUOTA_ATTRIBUTE, quota_hold))
                    holds.append((pk, month_sk, QUOTA_ATTRIBUTE, quota_hold))
                if budget is not None:
                    conditions.append(planned("budget", month_sk, budget))
                    adds.append((contract.SPEND_MICROS, money_hold))
                    holds.append((pk, month_sk, contract.SPEND_MICROS, money_hold))
                items.append(_counter_update(table, pk, month_sk, adds, day_ttl, conditions))
        if customer.prepaid and not free:  # the CREDIT item: some credit must be left
            pk = contract.counter_pk(customer.customer_id)
            month = month_sk.removeprefix("MONTH#")
            plan.append(
                Planned(len(items), "customer", customer.customer_id, "credit", 0, 0, False,
                        contract.CREDIT_USED, currency)
            )  # fmt: skip
            items.append(_credit_update(table, pk, month, money_hold))
            holds.append((pk, contract.CREDIT_SK, contract.CREDIT_USED, money_hold))
            holds.append((pk, contract.CREDIT_SK, contract.credit_used_in(month), money_hold))
        return items, plan, customer_held, holds, token_requests

    @staticmethod
    def _refuse_unpriced(principal: auth.Principal) -> None:
        """A call whose model has no price cannot be counted against money: refused when the
        customer or token has a budget or the customer is prepaid; otherwise admitted, its
        spend not counted."""
        if principal.counts_money:
            raise ProxyError(
                "model_not_priced",
                "This model has no price yet, so its calls cannot be counted against the "
                "account's budget or prepaid credit; ask the operator to price it, or use "
                "another model.",
            )

    def _on_cancel(
        self,
        principal: auth.Principal,
        reasons: Sequence[Mapping[str, Any]],
        plan: list[Planned],
        slots: Slots,
        now: datetime,
        recheck: Recheck,
    ) -> auth.Principal:
        failed = {i for i, r in enumerate(reasons) if r.get("Code") == "ConditionalCheckFailed"}
        token = principal.token
        if failed & {0, 1}:
            # The portal changed the token or customer: read both again (the cache keeps what
            # was read, so a refusal decided here is not read again for a while, auth.py).
            principal = self.auth.reload(token.token_hash)
            auth.check_customer(principal.customer)
            recheck(principal)
            return principal
        refusal: ProxyError | None = None
        for index in sorted(failed):
            entries = [entry for entry in plan if entry.index == index]
            if len(entries) > 1:  # which of the item's two conditions refused
                entries = self._which_failed(entries, reasons[index].get("Item"))
            for entry in entries:
                sk, _ = slots[entry.dimension]
                if entry.warning:
                    self._remember_warning(entry.key, entry.dimension, sk)
                elif refusal is None and entry.dimension in MONEY_DIMENSIONS:
                    refusal = self._money_refusal(entry, reasons[index].get("Item"), slots, now)
                elif refusal is None:
                    refusal = self._refusal(entry.scope, entry.dimension, entry.limit, slots, now)
        if refusal is not None:
            raise refusal
        return principal

    @staticmethod
    def _which_failed(
        entries: list[Planned], item: Mapping[str, AttributeValueTypeDef] | None
    ) -> list[Planned]:
        """The entries whose counter reached its cap, on the item as the failed condition saw
        it (DynamoDB returns it with the cancellation, ALL_OLD). A store that does not return
        it: every entry, so warning caps are passed and a hard cap refuses (the request is
        refused rightly, though the first of the item's limits is named). No read: the proxy
        may only update the counters table."""
        if item is None:
            return entries
        return [e for e in entries if _number(item, e.attribute) >= e.cap]

    def _remember_warning(self, key: str, dimension: str, sk: str) -> None:
        if len(self._warned) > 100_000:
            self._warned.clear()
        self._warned.add((key, dimension, sk))

    def _money_refusal(
        self,
        entry: Planned,
        item: Mapping[str, AttributeValueTypeDef] | None,
        slots: Slots,
        now: datetime,
    ) -> ProxyError:
        """`budget_exceeded` with the budget, the amount spent (from the item as the failed
        condition saw it) and the reset time; `insufficient_credit` with what is left."""
        item = item or {}
        currency = entry.currency
        if entry.dimension == "credit":
            granted = _number(item, contract.CREDIT_GRANTED)
            used = _number(item, entry.attribute)
            return credit_refusal(granted, used, currency)
        spent = _number(item, entry.attribute)
        return budget_refusal(entry.scope, entry.limit, slots, now, currency, spent)

    def _refusal(
        self,
        scope: str,
        dimension: str,
        limit: int,
        slots: Slots,
        now: datetime | None = None,
        currency: str = "",
    ) -> ProxyError:
        now = now or datetime.now(UTC)
        if dimension == "budget":  # a budget of 0: refused before anything is counted
            return budget_refusal(scope, limit, slots, now, currency, None)
        _, reset_at = slots[dimension]
        assert reset_at is not None  # only the credit never resets, and it has its own refusal
        retry_after = max(1, math.ceil((reset_at - now).total_seconds()))
        headers = {
            "Retry-After": str(retry_after),
            "X-RateLimit-Limit": str(limit),
            "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": str(int(reset_at.timestamp())),
            f"X-RateLimit-Limit-{HEADER_NAMES[dimension]}": str(limit),
            SCOPE_HEADER: scope,
        }
        message = {
            "rpm": f"requests-per-minute limit of {limit} reached; retry in {retry_after} s.",
            "tpm": f"tokens-per-minute limit of {limit} reached; retry in {retry_after} s.",
            "daily": f"daily request limit of {limit} reached; it resets at 00:00 UTC.",
            "monthly": f"monthly token quota of {limit} used up; it resets on the 1st (UTC).",
        }[dimension]
        message = f"Token {message}" if scope == "token" else message[0].upper() + message[1:]
        return ProxyError(CODES[dimension], message, headers=headers)

    def _admitted(
        self,
        principal: auth.Principal,
        scopes: list[Scope],
        slots: Slots,
        now: datetime,
        attempts: int,
        currency: str = "",
    ) -> Admission:
        """Admitted responses name, for each dimension, the tighter of the customer's and the
        token's limits, and warn about each scope past its warning threshold."""
        headers: dict[str, str] = {}
        warnings: list[str] = []
        tightest: dict[str, int] = {}

        def shown(dimension: str, limit: int) -> str:
            return money(limit, currency) if dimension == "budget" else str(limit)

        for scope, key, _, limits in scopes:
            for dimension, limit in limits.items():
                if limit is None:
                    continue
                if dimension not in tightest or limit < tightest[dimension]:
                    tightest[dimension] = limit
                if (key, dimension, slots[dimension][0]) in self._warned:
                    prefix = "token " if scope == "token" else ""
                    label = "tokens-per-minute" if dimension == "tpm" else dimension
                    warnings.append(
                        f"{prefix}{label} usage above {self.warning_percent}% of "
                        f"{shown(dimension, limit)}"
                    )
        for dimension in DIMENSIONS:
            if dimension in tightest:
                name = HEADER_NAMES[dimension]
                reset_at = slots[dimension][1]
                assert reset_at is not None  # DIMENSIONS: each resets (the credit is not one)
                headers[f"X-RateLimit-Limit-{name}"] = shown(dimension, tightest[dimension])
                headers[f"X-RateLimit-Reset-{name}"] = str(int(reset_at.timestamp()))
        if warnings:
            headers["X-RateLimit-Warning"] = "; ".join(warnings)
        return Admission(
            now=now,
            day_sk=slots["daily"][0],
            month_sk=slots["monthly"][0],
            minute_sk=slots["rpm"][0],
            headers=headers,
            attempts=attempts,
        )


def amount(micros: int) -> str:
    """Micro-units as an exact decimal string for clients: 10120000 -> "10.12",
    204000 -> "0.204" (at least two decimals, never a float)."""
    value = (Decimal(int(micros)) / contract.MICROS_PER_UNIT).quantize(Decimal("0.000001"))
    text = f"{value:f}".rstrip("0")
    whole, _, cents = text.partition(".")
    return f"{whole}.{cents.ljust(2, '0')}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def budget_refusal(
    scope: str,
    limit: int,
    slots: Slots,
    now: datetime,
    currency: str,
    spent: int | None,
    at_least: bool = False,
) -> ProxyError:
    """`budget_exceeded`: the budget, the amount spent (None: not known, a budget of 0; with
    `at_least`, a lower bound: what the shards the request saw had spent) and the reset, in the
    message, the headers and the error body's `limit` object."""
    _, reset_at = slots["budget"]
    assert reset_at is not None  # only the credit never resets
    retry_after = max(1, math.ceil((reset_at - now).total_seconds()))
    who = "Token monthly budget" if scope == "token" else "Monthly budget"
    headers = {
        "Retry-After": str(retry_after),
        "X-RateLimit-Limit-Budget-Month": money(limit, currency),
        "X-RateLimit-Reset": str(int(reset_at.timestamp())),
        SCOPE_HEADER: scope,
    }
    fields: dict[str, str | bool] = {
        "kind": "monthly_budget",
        "scope": scope,
        "cap": amount(max(limit, 0)),
        "currency": currency,
        "resets_at": _iso(reset_at),
    }
    spent_text = ""
    if spent is not None:
        bound = "at least " if at_least else ""
        spent_text = f" (spent {bound}{money(spent, currency)})"
        headers["X-Budget-Spent"] = money(spent, currency)
        fields["spent"] = amount(spent)
        if at_least:
            fields["spent_is_minimum"] = True
    return ProxyError(
        "budget_exceeded",
        f"{who} of {money(limit, currency)} reached{spent_text}; it resets on "
        f"{reset_at:%Y-%m-%d} at 00:00 UTC.",
        headers=headers,
        limit=fields,
    )


def credit_refusal(granted: int, used: int, currency: str) -> ProxyError:
    """`insufficient_credit`: what was granted, used and is left, in the message, the
    X-Credit-Available header and the error body's `limit` object (the credit never resets)."""
    available = max(granted - used, 0)
    return ProxyError(
        "insufficient_credit",
        f"Prepaid credit is used up (available: {money(available, currency)}); top up to "
        "continue. Calls resume on the next request after a top-up.",
        headers={"X-Credit-Available": money(available, currency), SCOPE_HEADER: "customer"},
        limit={
            "kind": "prepaid_credit",
            "scope": "customer",
            "cap": amount(granted),
            "spent": amount(used),
            "available": amount(available),
            "currency": currency,
        },
    )


def _status_check(table: str, key: str, value: str, version: int) -> TransactWriteItemTypeDef:
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


def _number(item: Mapping[str, AttributeValueTypeDef], attribute: str) -> int:
    """A number attribute of an item in DynamoDB's shape ({"N": "12"}); absent: 0."""
    value = item.get(attribute, {}).get("N", "0")
    try:
        return int(value)
    except ValueError:
        return int(Decimal(value))


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
