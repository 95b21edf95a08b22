"""Sharded admission: a customer with `counter_shards` = N > 1 is admitted by ONE conditional
UpdateItem on one of N admission items, not by a transaction (limits.py).

Why: DynamoDB cancels two transactions that touch one item at the same time
(TransactionConflict), and fails a single write on an item inside a transaction. Today's
admission transaction holds the token, the customer and the customer's counters, so one
customer's requests exclude each other (tens a second at most). A single-item UpdateItem on a
busy item waits its turn instead of failing, and N items take N times the writes.

The admission item of shard k (pk CUST#<customer_id>, sk ADMIT#<kk>) carries:
  cv, tv#<token_id>   the versions of the customer and of each token it admitted (the stamps):
                      the condition requires them equal to the versions the proxy holds, so a
                      change the portal made (contract.stamp_admission_shards) refuses the very
                      next request on every shard; a shard without the stamp is stamped by a
                      transaction that checks the customer and token items (the slow path, once
                      a shard and token)
  mi, mr, mt          the minute (MIN#...), its requests and tokens (held and settled)
  dy, dr              the day (DAY#...) and its requests
  mo, mq, ms          the month (MONTH#...), its quota tokens and spend in micro-units
and the same under `T#<token_id>#` for a token's own limits. A period stamp older than now is
rolled over by the update itself (SET the new period and the counters, on condition that the
stamp is still the old one): one extra call per shard and period, not per request.

Each limit is split over the shards (shard k may count limit // N, plus one for the first
limit % N shards), so the shards together never admit more than the limit; a request refused
by a full shard tries the others, and is refused when every shard is full. Holds (tokens per
minute, the monthly quota, budgets) are taken and settled per shard, so each shard can be
overshot by one call's hold: the bound is N holds, not one. Prepaid customers (the CREDIT
item's condition) are admitted by the transaction whatever their shard count.

After the call, settle(): the holds replaced by the exact amounts on the same admission item
(one UpdateItem, only when something was held), and the usage counters the portal reads in ONE
TransactWriteItems on one of the customer's usage shards (contract.shard_sk), chosen at random
and changed when it meets a conflict (a cancelled transaction applied nothing, so the retry
applies the usage once). A failed call gives its holds and its daily request back.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from . import auth, contract, models
from .errors import ProxyError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, UpdateTypeDef

    from .limits import Admission, Limiter, Recheck, Scope, Slots

# Period groups: the stamp attribute and its counters.
GROUPS = {"minute": ("mi", ("mr", "mt")), "day": ("dy", ("dr",)), "month": ("mo", ("mq", "ms"))}
# dimension -> (group, counter)
COUNTERS = {
    "rpm": ("minute", "mr"),
    "tpm": ("minute", "mt"),
    "daily": ("day", "dr"),
    "monthly": ("month", "mq"),
    "budget": ("month", "ms"),
}
SLOT_OF = {"minute": "rpm", "day": "daily", "month": "monthly"}
MAX_ATTEMPTS = 40
USAGE_ATTEMPTS = 16
HOLD_ATTEMPTS = 12


def split_cap(limit: int, shards: int, shard: int) -> int:
    """Shard `shard`'s part of `limit`: the parts of all shards add up to the limit exactly."""
    return limit // shards + (1 if shard < limit % shards else 0)


def uses_shards(customer: contract.CustomerItem) -> bool:
    return getattr(customer, "counter_shards", 1) > 1 and not customer.prepaid


@dataclass
class Need:
    """One counter the admission adds to, and the limit it is checked against (or none)."""

    scope: str
    key: str  # the warnings' key, as limits.Planned
    prefix: str  # "" for the customer, "T#<token_id>#" for a token's own limits
    dimension: str
    group: str
    counter: str  # the attribute, prefix included
    add: int
    limit: int | None


# A limited counter's cap on one shard: (its need, the cap, is_warning_cap, the period).
Cap = tuple[Need, int, bool, str]


@dataclass
class ShardState:
    """What a sharded admission took, for settle() and refund()."""

    key: dict[str, AttributeValueTypeDef]
    periods: dict[str, str]  # stamp attribute -> the period it counted in
    # (stamp attribute, counter, held, kind)
    holds: list[tuple[str, str, int, str]] = field(default_factory=list)
    day_requests: list[tuple[str, str]] = field(default_factory=list)  # (stamp attribute, counter)
    usage_shards: int = 4


class _Expr:
    """Placeholders for one expression."""

    def __init__(self) -> None:
        self.names: dict[str, str] = {}
        self.values: dict[str, AttributeValueTypeDef] = {}

    def name(self, attribute: str) -> str:
        placeholder = f"#n{len(self.names)}"
        for existing, value in self.names.items():
            if value == attribute:
                return existing
        self.names[placeholder] = attribute
        return placeholder

    def value(self, attr_value: AttributeValueTypeDef) -> str:
        placeholder = f":v{len(self.values)}"
        self.values[placeholder] = attr_value
        return placeholder


def _n(value: int) -> AttributeValueTypeDef:
    return {"N": str(int(value))}


def _number(item: Mapping[str, AttributeValueTypeDef], attribute: str) -> int:
    raw = item.get(attribute, {}).get("N")
    return int(raw) if raw is not None else 0


def _condition_item(response: Mapping[str, Any]) -> dict[str, AttributeValueTypeDef]:
    """The item as a failed condition saw it (ReturnValuesOnConditionCheckFailure ALL_OLD), from
    a ClientError's response or one of its CancellationReasons; {} when absent. (botocore's
    stubs declare neither the response's `Item` nor a reason's as the attribute map it is.)"""
    return response.get("Item") or {}


class ShardedAdmission:
    """Used by limits.Limiter for customers with counter_shards > 1 (one per container)."""

    def __init__(self, limiter: Limiter) -> None:
        self.limiter = limiter
        # (key, dimension, period) -> full shards
        self.full: dict[tuple[str, str, str], set[int]] = {}

    # --- planning ---------------------------------------------------------------------------

    def needs(
        self,
        principal: auth.Principal,
        scopes: list[Scope],
        slots: Slots,
        quota_hold: int,
        free: bool,
        money_hold: int,
        currency: str = "",
    ) -> list[Need]:
        out: list[Need] = []
        for scope, key, _, limits in scopes:
            if free:
                limits = {**limits, "tpm": None, "monthly": None, "budget": None}
            for dimension, limit in limits.items():
                if limit is not None and limit <= 0:
                    raise self.limiter._refusal(scope, dimension, limit, slots, currency=currency)
            prefix = "" if scope == "customer" else f"T#{principal.token.token_id}#"
            adds = {"rpm": 1, "tpm": quota_hold, "daily": 1, "monthly": quota_hold}
            adds["budget"] = money_hold
            groups: set[str] = set()
            if limits["rpm"] is not None or limits["tpm"] is not None:
                groups.add("minute")
            if limits["daily"] is not None:
                groups.add("day")
            if limits["monthly"] is not None or limits["budget"] is not None:
                groups.add("month")
            for dimension, (group, counter) in COUNTERS.items():
                if group not in groups:
                    continue
                limit = limits[dimension]
                add = adds[dimension] if (limit is not None or dimension == "rpm") else 0
                out.append(Need(scope, key, prefix, dimension, group, prefix + counter, add, limit))
        return out

    def _caps(
        self, need: Need, limit: int, shards: int, shard: int, period: str
    ) -> tuple[int, bool]:
        """(shard `shard`'s cap of `need`, whose limit is `limit`; is_warning_cap)."""
        warn_at = limit * self.limiter.warning_percent // 100
        warned = (need.key, need.dimension, period) in self.limiter._warned
        if 0 < warn_at < limit and not warned:
            return split_cap(warn_at, shards, shard), True
        return split_cap(limit, shards, shard), False

    def _candidates(
        self, needs: list[Need], shards: int, slots: Slots
    ) -> tuple[list[int], Need | None]:
        """Shards with room for every limited counter, as far as this container knows."""
        blocked: set[int] = set()
        last: Need | None = None
        for need in needs:
            if need.limit is None:
                continue
            period = slots[need.dimension][0]
            for shard in range(shards):
                if split_cap(need.limit, shards, shard) <= 0:
                    blocked.add(shard)
            full = self.full.get((need.key, need.dimension, period), set())
            blocked |= full
            if len(blocked) >= shards and last is None:
                last = need
        return [k for k in range(shards) if k not in blocked], last

    def _mark_full(self, need: Need, period: str, shard: int) -> None:
        if len(self.full) > 100_000:
            self.full.clear()
        self.full.setdefault((need.key, need.dimension, period), set()).add(shard)

    # --- the update -------------------------------------------------------------------------

    def _update(
        self,
        table: str,
        key: dict[str, AttributeValueTypeDef],
        needs: list[Need],
        gates: list[tuple[str, int]],
        slots: Slots,
        seen: Mapping[str, AttributeValueTypeDef] | None,
        shards: int,
        shard: int,
        stamp_gates: bool = False,
    ) -> tuple[UpdateTypeDef, dict[str, str], list[Cap]]:
        """The conditional UpdateItem of shard `shard`. `seen`: the item as a failed condition
        returned it (None: assume every period current)."""
        expr = _Expr()
        conditions: list[str] = []
        sets: list[str] = []
        adds: list[str] = []
        for attribute, version in gates:
            g, v = expr.name(attribute), expr.value(_n(version))
            if stamp_gates:  # the slow path: raise a missing or older stamp to ours
                conditions.append(f"(attribute_not_exists({g}) OR {g} <= {v})")
                sets.append(f"{g} = {v}")
            else:
                conditions.append(f"{g} = {v}")
        periods: dict[str, str] = {}
        caps: list[Cap] = []
        by_stamp: dict[str, list[Need]] = {}
        for need in needs:
            stamp = need.prefix + GROUPS[need.group][0]
            by_stamp.setdefault(stamp, []).append(need)
        for stamp, group_needs in by_stamp.items():
            group = group_needs[0].group
            period = slots[SLOT_OF[group]][0]
            old = (seen or {}).get(stamp, {}).get("S") if seen is not None else period
            s = expr.name(stamp)
            if old is not None and old >= period:  # current (or another container is ahead)
                period = old
                conditions.append(f"{s} = {expr.value({'S': period})}")
                for need in group_needs:
                    if need.add:
                        adds.append(f"{expr.name(need.counter)} {expr.value(_n(need.add))}")
                    if need.limit is not None:
                        c = expr.name(need.counter)
                        cap, warning = self._caps(need, need.limit, shards, shard, period)
                        caps.append((need, cap, warning, period))
                        conditions.append(
                            f"(attribute_not_exists({c}) OR {c} < {expr.value(_n(cap))})"
                        )
            else:  # a new period: start its counters at this request's amounts
                if old is None:
                    conditions.append(f"attribute_not_exists({s})")
                else:
                    conditions.append(f"{s} = {expr.value({'S': old})}")
                sets.append(f"{s} = {expr.value({'S': period})}")
                prefix = group_needs[0].prefix
                counters = {prefix + c for c in GROUPS[group][1]}
                amounts = {need.counter: need.add for need in group_needs}
                for counter in sorted(counters):
                    sets.append(f"{expr.name(counter)} = {expr.value(_n(amounts.get(counter, 0)))}")
                for need in group_needs:
                    if need.limit is not None:
                        cap, warning = self._caps(need, need.limit, shards, shard, period)
                        caps.append((need, cap, warning, period))
            periods[stamp] = period
        if not adds and not sets:
            adds.append(f"{expr.name('n')} {expr.value(_n(1))}")
        expression = " ".join(
            part
            for part in (
                "SET " + ", ".join(sets) if sets else "",
                "ADD " + ", ".join(adds) if adds else "",
            )
            if part
        )
        update: UpdateTypeDef = {
            "TableName": table,
            "Key": key,
            "UpdateExpression": expression,
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": expr.names,
            "ExpressionAttributeValues": expr.values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
        return update, periods, caps

    # --- admission ----------------------------------------------------------------------------

    def admit(
        self,
        principal: auth.Principal,
        recheck: Recheck,
        now: datetime,
        slots: Slots,
        quota_hold: int,
        free: bool,
        money_hold: int,
        currency: str = "",
    ) -> tuple[auth.Principal, ShardState, int]:
        """(principal, ShardState, attempts) or raises ProxyError. `currency`: the price's, for
        a budget refusal."""
        limiter = self.limiter
        table = limiter.tables.usage_counters
        pk = contract.counter_pk(principal.customer.customer_id)
        seen_by_shard: dict[int, dict[str, AttributeValueTypeDef]] = {}
        # A shard to try again at once (a period to roll over, a stamp to set).
        again: int | None = None
        probed = False
        for attempt in range(1, MAX_ATTEMPTS + 1):
            customer, token = principal.customer, principal.token
            shards = max(1, min(customer.counter_shards, contract.MAX_COUNTER_SHARDS))
            scopes = limiter._scopes(principal)
            needs = self.needs(principal, scopes, slots, quota_hold, free, money_hold, currency)
            candidates, blocking = self._candidates(needs, shards, slots)
            if not candidates:
                # Every shard full as far as this container knows: one shard asked all the
                # same, so a revoked token or suspended customer is named as such, and a
                # refund or a higher limit is seen.
                if probed:
                    assert blocking is not None  # no candidate: some need blocked them all
                    raise self._refusal(blocking, slots, now, currency, shards, seen_by_shard)
                probed, shard = True, random.randrange(shards)  # noqa: S311
            elif again is not None and again in candidates:
                shard = again
            else:
                shard = random.choice(candidates)  # noqa: S311
            again = None
            key: dict[str, AttributeValueTypeDef] = {
                contract.COUNTER_PK: {"S": pk},
                contract.COUNTER_SK: {"S": contract.admission_sk(shard)},
            }
            gates = [
                (contract.CUSTOMER_STAMP, customer.version),
                (contract.token_stamp(token.token_id), token.version),
            ]
            seen = seen_by_shard.get(shard)
            slow = seen is not None and any(a not in seen or _number(seen, a) < v for a, v in gates)
            update, periods, caps = self._update(
                table, key, needs, gates, slots, seen, shards, shard, stamp_gates=slow
            )
            try:
                if slow:
                    self._stamp_and_admit(principal, update)
                else:
                    limiter.dynamodb.update_item(**update)
            except ClientError as exc:
                code = exc.response["Error"]["Code"]
                if code in ("TransactionConflictException", "TransactionCanceledException"):
                    item = self._cancelled_item(exc)
                    if item is False:  # a conflict: nothing applied; another shard, shortly
                        time.sleep(random.uniform(0.001, 0.005 * min(attempt, 8)))  # noqa: S311
                        continue
                    if item is True:  # the customer or token item changed
                        principal = self._reload(principal, recheck)
                        seen_by_shard.clear()
                        continue
                    seen_by_shard[shard] = item
                    again = self._diagnose(item, caps, shard)
                    continue
                if code != "ConditionalCheckFailedException":
                    raise
                item = _condition_item(exc.response)
                seen_by_shard[shard] = item
                if any(_number(item, a) > v for a, v in gates):  # the portal changed them
                    principal = self._reload(principal, recheck)
                    seen_by_shard.clear()
                    continue
                again = self._diagnose(item, caps, shard)
                continue
            return principal, self._state(key, periods, needs, shards), attempt
        raise ProxyError(
            "service_unavailable",
            "The limits store is busy; retry after the Retry-After delay.",
            headers={"Retry-After": "1"},
        )

    def _state(
        self,
        key: dict[str, AttributeValueTypeDef],
        periods: dict[str, str],
        needs: list[Need],
        shards: int,
    ) -> ShardState:
        state = ShardState(
            key=key, periods=periods, usage_shards=contract.usage_shard_count(shards)
        )
        for need in needs:
            stamp = need.prefix + GROUPS[need.group][0]
            if need.dimension in ("tpm", "monthly", "budget") and need.add:
                kind = "money" if need.dimension == "budget" else "tokens"
                state.holds.append((stamp, need.counter, need.add, kind))
            if need.dimension == "daily":
                state.day_requests.append((stamp, need.counter))
        return state

    def _diagnose(
        self, item: Mapping[str, AttributeValueTypeDef], caps: list[Cap], shard: int
    ) -> int | None:
        """After a failed condition: a counter at its cap (a warning threshold passed, or the
        shard full), else a stamp or period to set, which the same shard does next (`seen`
        holds the item): returns that shard."""
        at_cap = False
        for need, cap, warning, period in caps:
            stamp = need.prefix + GROUPS[need.group][0]
            if item.get(stamp, {}).get("S") != period:
                continue
            if _number(item, need.counter) >= cap:
                at_cap = True
                if warning:
                    self.limiter._remember_warning(need.key, need.dimension, period)
                else:
                    self._mark_full(need, period, shard)
        return None if at_cap else shard

    def _reload(self, principal: auth.Principal, recheck: Recheck) -> auth.Principal:
        fresh = self.limiter.auth.reload(principal.token.token_hash)
        auth.check_customer(fresh.customer)
        recheck(fresh)
        return fresh

    def _stamp_and_admit(self, principal: auth.Principal, update: UpdateTypeDef) -> None:
        """The slow path: the customer and token items checked in the same transaction that
        stamps their versions on the shard and counts the request."""
        tables = self.limiter.tables
        from .limits import _status_check

        token, customer = principal.token, principal.customer
        update = update.copy()
        update["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        self.limiter.dynamodb.transact_write_items(
            TransactItems=[
                _status_check(tables.tokens, contract.TOKEN_KEY, token.token_hash, token.version),
                _status_check(
                    tables.customers, contract.CUSTOMER_KEY, customer.customer_id, customer.version
                ),
                {"Update": update},
            ]
        )

    @staticmethod
    def _cancelled_item(exc: ClientError) -> bool | dict[str, AttributeValueTypeDef]:
        """False: a conflict or throttle (nothing applied); True: the token or customer check
        failed; else the shard item as its failed condition saw it."""
        reasons = exc.response.get("CancellationReasons") or []
        codes = [r.get("Code") for r in reasons]
        if "ConditionalCheckFailed" not in codes:
            if any(c in ("ThrottlingError", "ProvisionedThroughputExceeded") for c in codes):
                raise ProxyError(
                    "service_unavailable",
                    "The limits store is busy; retry after the Retry-After delay.",
                    headers={"Retry-After": "1"},
                )
            return False
        if "ConditionalCheckFailed" in codes[:2]:
            return True
        return _condition_item(reasons[2])

    def _refusal(
        self,
        need: Need,
        slots: Slots,
        now: datetime,
        currency: str,
        shards: int,
        seen_by_shard: Mapping[int, Mapping[str, AttributeValueTypeDef]],
    ) -> ProxyError:
        from .limits import budget_refusal

        limit = need.limit
        assert limit is not None  # a blocking need is a limited one (_candidates)
        if need.dimension == "budget":
            spent, exact = self._spent(need, slots, shards, seen_by_shard)
            return budget_refusal(
                need.scope, limit, slots, now, currency, spent, at_least=not exact
            )
        return self.limiter._refusal(need.scope, need.dimension, limit, slots, now)

    def _spent(
        self,
        need: Need,
        slots: Slots,
        shards: int,
        seen_by_shard: Mapping[int, Mapping[str, AttributeValueTypeDef]],
    ) -> tuple[int, bool]:
        """(the month's spend of `need`'s scope over the shards, exact): the spend each shard
        this request saw had (as its failed condition returned it), plus, for a shard it did not
        see that this container knows full, its part of the budget (a lower bound). Exact when
        the request saw every shard."""
        assert need.limit is not None
        period = slots[need.dimension][0]
        stamp = need.prefix + GROUPS[need.group][0]
        full = self.full.get((need.key, need.dimension, period), set())
        spent = 0
        for shard in range(shards):
            item = seen_by_shard.get(shard)
            if item is not None:
                if item.get(stamp, {}).get("S") == period:
                    spent += _number(item, need.counter)
            elif shard in full:
                spent += split_cap(need.limit, shards, shard)
        return spent, len(seen_by_shard) >= shards


# --- after the call ---------------------------------------------------------------------------

_marked: dict[tuple[str, str], int] = {}


def _adjust(
    dynamodb: DynamoDBClient, table: str, state: ShardState, amounts: dict[tuple[str, str], int]
) -> None:
    """ADD `amounts` {(stamp, counter): n} to the admission item, each only while its period is
    still the one the admission counted in (a later period's counters are not this call's)."""
    amounts = {k: v for k, v in amounts.items() if v}
    for _ in range(HOLD_ATTEMPTS):
        if not amounts:
            return
        expr = _Expr()
        conditions: list[str] = []
        for stamp in sorted({s for s, _ in amounts}):
            period = state.periods[stamp]
            conditions.append(f"{expr.name(stamp)} = {expr.value({'S': period})}")
        parts = [f"{expr.name(c)} {expr.value(_n(n))}" for (_, c), n in amounts.items()]
        try:
            dynamodb.update_item(
                TableName=table,
                Key=state.key,
                UpdateExpression="ADD " + ", ".join(parts),
                ConditionExpression=" AND ".join(conditions),
                ExpressionAttributeNames=expr.names,
                ExpressionAttributeValues=expr.values,
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
            return
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "TransactionConflictException":  # refused, not applied: again
                time.sleep(random.uniform(0.001, 0.01))  # noqa: S311
                continue
            if code != "ConditionalCheckFailedException":
                raise
            item = _condition_item(exc.response)
            amounts = {
                (s, c): n
                for (s, c), n in amounts.items()
                if item.get(s, {}).get("S") == state.periods[s]
            }
    raise RuntimeError("the admission item stayed busy; hold not settled")


def _mark_usage_shards(
    dynamodb: DynamoDBClient, table: str, pk: str, sks: Iterable[str], count: int
) -> None:
    """Record on the plain DAY#/MONTH# items how many copies readers must sum, before the
    first settlement of the period on a copy (once a period and container)."""
    for sk in sks:
        if _marked.get((pk, sk), 0) >= count:
            continue
        try:
            dynamodb.update_item(
                TableName=table,
                Key={contract.COUNTER_PK: {"S": pk}, contract.COUNTER_SK: {"S": sk}},
                UpdateExpression="SET #u = :u",
                ConditionExpression="attribute_not_exists(#u) OR #u < :u",
                ExpressionAttributeNames={"#u": contract.USAGE_SHARDS},
                ExpressionAttributeValues={":u": _n(count)},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        if len(_marked) > 100_000:
            _marked.clear()
        _marked[(pk, sk)] = count


def settle(
    dynamodb: DynamoDBClient,
    tables: contract.TableNames,
    customer_id: str,
    admission: Admission,
    model_id: str,
    usage_counts: dict[str, int],
    token_id: str,
    cost: int,
) -> None:
    """The call's exact tokens and cost: holds replaced on the admission item, usage counters
    added on one usage shard."""
    from . import usage as usage_module
    from .limits import DAY_TTL, idempotency_token, is_conflict

    state = admission.sharded
    assert state is not None  # usage.py settles here only a sharded admission
    table, pk = tables.usage_counters, contract.counter_pk(customer_id)
    free = models.is_free(model_id)
    exact = 0 if free else usage_counts["input_tokens"] + usage_counts["output_tokens"]
    corrections: dict[tuple[str, str], int] = {}
    for stamp, counter, held, kind in state.holds:
        value = cost if kind == "money" else exact
        corrections[(stamp, counter)] = corrections.get((stamp, counter), 0) + value - held
    _adjust(dynamodb, table, state, corrections)
    tokens = {name: usage_counts[name] for name in usage_module.TOKEN_FIELDS}
    month_adds = {"requests": 1, **tokens}
    if not free:
        month_adds[contract.QUOTA_TOKENS] = exact
    if admission.price is not None:
        month_adds[contract.SPEND_MICROS] = cost
    _mark_usage_shards(
        dynamodb, table, pk, (admission.day_sk, admission.month_sk), state.usage_shards
    )
    ttl = int(time.time()) + DAY_TTL
    for attempt in range(USAGE_ATTEMPTS):
        shard = random.randrange(state.usage_shards)  # noqa: S311
        adds_by_item: usage_module.AddsByItem = {}
        day_model = contract.shard_sk(f"{admission.day_sk}#MODEL#{model_id}", shard)
        month_model = contract.shard_sk(f"{admission.month_sk}#MODEL#{model_id}", shard)
        usage_module._add(adds_by_item, pk, contract.shard_sk(admission.day_sk, shard),
                          {"requests": 1, **tokens})  # fmt: skip
        usage_module._add(adds_by_item, pk, contract.shard_sk(admission.month_sk, shard),
                          month_adds)  # fmt: skip
        usage_module._add(adds_by_item, pk, day_model, {"requests": 1, **tokens})
        usage_module._add(adds_by_item, pk, month_model, {"requests": 1, **tokens})
        sets = usage_module._last_used(adds_by_item, admission, token_id)
        items = usage_module._merged(table, adds_by_item, {(pk, day_model): ttl}, sets)
        # Each copy is another set of items, so each attempt has its own request token: a
        # botocore retry of the same attempt applies once; a conflict applied nothing.
        token = idempotency_token(admission.request_id, f"usage/{attempt}")
        try:
            dynamodb.transact_write_items(TransactItems=items, **token)
            return
        except ClientError as exc:
            if not is_conflict(exc) or attempt == USAGE_ATTEMPTS - 1:
                raise
            if sets:
                usage_module._last_written.pop(token_id, None)  # not written: next attempt
            time.sleep(random.uniform(0.001, 0.005))  # noqa: S311 (another copy, at once)


def refund(dynamodb: DynamoDBClient, tables: contract.TableNames, admission: Admission) -> None:
    """A failed call: its holds and its daily request given back on the admission item (the
    minute keeps the request, as with the transaction); nothing was added to usage."""
    state = admission.sharded
    assert state is not None  # usage.py refunds here only a sharded admission
    amounts: dict[tuple[str, str], int] = {}
    for stamp, counter, held, _ in state.holds:
        amounts[(stamp, counter)] = amounts.get((stamp, counter), 0) - held
    for stamp, counter in state.day_requests:
        amounts[(stamp, counter)] = amounts.get((stamp, counter), 0) - 1
    _adjust(dynamodb, tables.usage_counters, state, amounts)
