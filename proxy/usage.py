"""After the model call: exact token counts into the counters (one call), one usage event.

Counters: the admission transaction already added the request to MIN/DAY/MONTH. A success adds
the token counts to DAY and MONTH and the request and tokens to the per-model DAY/MONTH items,
in one TransactWriteItems. A failed Bedrock call is not billed: its request is taken back from
DAY and MONTH (so it does not use up the daily limit) but stays in MIN, which protects Bedrock.
The holds (limits.py: the monthly quota's on MONTH#, tokens per minute on the MIN# item of the
admission's minute, the token's own on its TOKEN# items, and the money holds: the month's
`spend_micros`, a prepaid customer's CREDIT item) are replaced by the exact count or cost
(prices.cost_micros at the price the call was admitted at) on the same items, or taken back on
failure; still one TransactWriteItems, each item named once. The same transaction SETs the
token's `last_used` on its own LAST item (the call's admission time, epoch seconds), at most
once a minute per token and container, so the portal shows a token's last use live (to the
minute) without an extra DynamoDB call.

Events: exactly one JSON line per request on stdout (CloudWatch). The calls that were admitted
(STORED_STATUSES: successful ones, which are billed, and those Bedrock then failed, which the
import counts for the error rates and never bills: usage/query.py) also go to S3 under
`usage-events/year=YYYY/month=MM/day=DD/<request_id>.json` when USAGE_BUCKET is set, and to
`$USAGE_EVENTS_DIR/usage-events/year=YYYY/month=MM/day=DD/proxy-<pid>.jsonl` when that is set.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from . import contract, models, prices, sharded
from .limits import (
    DAY_TTL,
    MAX_COUNTER_ADD,
    QUOTA_ATTRIBUTE,
    Admission,
    RequestToken,
    idempotency_token,
    is_conflict,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef, TransactWriteItemTypeDef
    from mypy_boto3_s3 import S3Client

    from .metrics import TextStream

logger = logging.getLogger("proxy")
EVENTS_PREFIX = "usage-events"
TOKEN_FIELDS = contract.USAGE_TOKEN_FIELDS
EVENT_FIELDS = contract.USAGE_EVENT_FIELDS  # the event's fields, in order (proxy/contract.py)
# Events stored for the import: admitted calls. "success" is billed; "upstream_error" (Bedrock
# failed an admitted call) only counts in the error rates.
STORED_STATUSES = frozenset({"success", "upstream_error"})
_file_lock = threading.Lock()

# A counter item's (pk, sk), and what one transaction adds to each item's counters by name.
ItemKey = tuple[str, str]
AddsByItem = dict[ItemKey, dict[str, int]]


def _update(
    table: str,
    pk: str,
    sk: str,
    adds: Mapping[str, int],
    ttl: int | None = None,
    sets: Mapping[str, int] | None = None,
) -> TransactWriteItemTypeDef:
    names: dict[str, str] = {}
    values: dict[str, AttributeValueTypeDef] = {}
    parts: list[str] = []
    for i, (name, amount) in enumerate(adds.items()):
        amount = max(-MAX_COUNTER_ADD, min(int(amount), MAX_COUNTER_ADD))  # far below 38 digits
        names[f"#a{i}"], values[f":a{i}"] = name, {"N": str(amount)}
        parts.append(f"#a{i} :a{i}")
    expression = "ADD " + ", ".join(parts) if parts else ""
    assignments = dict(sets or {})
    if ttl is not None:
        assignments[contract.TTL_ATTRIBUTE] = ttl
    if assignments:
        set_parts: list[str] = []
        for i, (name, value) in enumerate(assignments.items()):
            names[f"#s{i}"], values[f":s{i}"] = name, {"N": str(int(value))}
            set_parts.append(f"#s{i} = :s{i}")
        expression = (expression + " SET " + ", ".join(set_parts)).strip()
    return {
        "Update": {
            "TableName": table,
            "Key": {contract.COUNTER_PK: {"S": pk}, contract.COUNTER_SK: {"S": sk}},
            "UpdateExpression": expression,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
        }
    }


def _exact(attribute: str, tokens: int, cost: int) -> int:
    """What settles a hold on `attribute`: the call's tokens, or its cost in micro-units."""
    if attribute in (QUOTA_ATTRIBUTE, contract.MINUTE_TOKENS):
        return tokens
    return cost  # SPEND_MICROS and the CREDIT item's used_micros / used#YYYY-MM


def _merged(
    table: str,
    adds_by_item: AddsByItem,
    ttls: Mapping[ItemKey, int],
    sets: Mapping[ItemKey, Mapping[str, int]] | None = None,
) -> list[TransactWriteItemTypeDef]:
    """One update per item (a transaction may name an item once), in the order first seen."""
    sets = sets or {}
    return [
        _update(table, pk, sk, adds, ttls.get((pk, sk)), sets.get((pk, sk)))
        for (pk, sk), adds in adds_by_item.items()
    ]


# When this container last wrote each token's last use: it is written at most once a minute per
# token and container, so a token's busy minutes cost one item write, not one per call.
LAST_USED_EVERY_SECONDS = 60
_last_written: dict[str, int] = {}


def _last_used(
    adds_by_item: AddsByItem, admission: Admission, token_id: str
) -> dict[ItemKey, dict[str, int]]:
    """The token's last use, SET on its own LAST item (contract.last_used_key) in the same
    transaction, when this container has not written it in the last minute; returns the SETs
    by item for _merged."""
    if not token_id:
        return {}
    now = _epoch(admission)
    if now - _last_written.get(token_id, -LAST_USED_EVERY_SECONDS) < LAST_USED_EVERY_SECONDS:
        return {}
    if len(_last_written) > 100_000:
        _last_written.clear()
    _last_written[token_id] = now
    key = contract.last_used_key(token_id)
    adds_by_item.setdefault(key, {})
    return {key: {contract.LAST_USED: now, contract.TTL_ATTRIBUTE: now + DAY_TTL}}


def _epoch(admission: Admission) -> int:
    return int(admission.now.timestamp()) if admission.now else int(time.time())


def _add(adds_by_item: AddsByItem, pk: str, sk: str, adds: Mapping[str, int]) -> None:
    item = adds_by_item.setdefault((pk, sk), {})
    for name, amount in adds.items():
        item[name] = item.get(name, 0) + amount


def call_cost(admission: Admission, usage: Mapping[str, object]) -> int:
    """The call's cost in micro-units at the price it was admitted at (0 without a price)."""
    if admission.price is None:
        return 0
    return min(prices.cost_micros(admission.price, usage), MAX_COUNTER_ADD)


def record_success(
    dynamodb: DynamoDBClient,
    tables: contract.TableNames,
    customer_id: str,
    admission: Admission,
    model_id: str,
    usage: dict[str, int],
    token_id: str = "",
) -> None:
    if admission.sharded is not None:  # a sharded customer (proxy/sharded.py)
        cost = call_cost(admission, usage)
        sharded.settle(dynamodb, tables, customer_id, admission, model_id, usage, token_id, cost)
        return
    table, pk = tables.usage_counters, contract.counter_pk(customer_id)
    tokens = {name: usage[name] for name in TOKEN_FIELDS}
    month_adds = dict(tokens)
    free = models.is_free(model_id)
    exact = 0 if free else usage["input_tokens"] + usage["output_tokens"]
    if not free:  # the exact count replaces the admission's hold
        month_adds[QUOTA_ATTRIBUTE] = exact - admission.quota_held
    ttl = int(time.time()) + DAY_TTL
    adds_by_item: AddsByItem = {}
    _add(adds_by_item, pk, admission.day_sk, tokens)
    _add(adds_by_item, pk, admission.month_sk, month_adds)
    _add(adds_by_item, pk, f"{admission.day_sk}#MODEL#{model_id}", {"requests": 1, **tokens})
    _add(adds_by_item, pk, f"{admission.month_sk}#MODEL#{model_id}", {"requests": 1, **tokens})
    # Tokens per minute (customer and token, on the MIN# item of the admission's minute), the
    # token's own monthly quota, and the money holds (the month's spend, a token's budget, a
    # prepaid customer's credit): the exact count or cost replaces each hold on its item.
    cost = call_cost(admission, usage)
    for hold_pk, sk, name, held in admission.holds:
        _add(adds_by_item, hold_pk, sk, {name: _exact(name, exact, cost) - held})
    ttls = {(pk, f"{admission.day_sk}#MODEL#{model_id}"): ttl}
    items = _merged(table, adds_by_item, ttls, _last_used(adds_by_item, admission, token_id))
    transact_with_retry(dynamodb, items, token=idempotency_token(admission.request_id, "usage"))


def transact_with_retry(
    dynamodb: DynamoDBClient,
    items: Sequence[TransactWriteItemTypeDef],
    attempts: int = 6,
    token: RequestToken | None = None,
) -> None:
    """Unconditional counter updates: a conflict with a concurrent transaction on the same hot
    counter item (TransactionConflict) is retried with jitter; anything else is raised.
    `token` ({"ClientRequestToken": ...}) makes a retried identical call apply once."""
    for attempt in range(attempts):
        try:
            dynamodb.transact_write_items(TransactItems=items, **(token or {}))
            return
        except ClientError as exc:
            if attempt == attempts - 1 or not is_conflict(exc):
                raise
            time.sleep(random.uniform(0.005, 0.02 * (attempt + 1)))  # noqa: S311


def refund_request(
    dynamodb: DynamoDBClient,
    tables: contract.TableNames,
    customer_id: str,
    admission: Admission,
    token_id: str = "",
) -> None:
    """A failed call: its request taken back from DAY# and MONTH# (the customer's, and the
    token's DAY# when it has a daily limit), every hold given back; MIN# keeps the request."""
    if admission.sharded is not None:
        sharded.refund(dynamodb, tables, admission)
        return
    table, pk = tables.usage_counters, contract.counter_pk(customer_id)
    month_adds = {"requests": -1}
    if admission.quota_held:
        month_adds[QUOTA_ATTRIBUTE] = -admission.quota_held
    adds_by_item: AddsByItem = {}
    _add(adds_by_item, pk, admission.day_sk, {"requests": -1})
    _add(adds_by_item, pk, admission.month_sk, month_adds)
    for token_pk, sk in admission.token_requests:
        _add(adds_by_item, token_pk, sk, {"requests": -1})
    for hold_pk, sk, name, held in admission.holds:
        _add(adds_by_item, hold_pk, sk, {name: -held})
    items = _merged(table, adds_by_item, {}, _last_used(adds_by_item, admission, token_id))
    transact_with_retry(dynamodb, items, token=idempotency_token(admission.request_id, "refund"))


def timestamp(now: datetime) -> str:
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def make_event(**values: Any) -> dict[str, Any]:
    event: dict[str, Any] = dict.fromkeys(EVENT_FIELDS)
    event.update(values)
    for name in TOKEN_FIELDS:
        event[name] = int(event.get(name) or 0)
    event["tags"] = {name: (event.get("tags") or {}).get(name) for name in _TAG_NAMES}
    return event


_TAG_NAMES = ("applicationId", "costCenter", "environment", "userId")


def partition(now: datetime) -> str:
    return f"{EVENTS_PREFIX}/year={now:%Y}/month={now:%m}/day={now:%d}"


class EventSink:
    def __init__(
        self,
        s3: S3Client | None = None,
        bucket: str = "",
        events_dir: str = "",
        stream: TextStream | None = None,
    ) -> None:
        self.s3, self.bucket, self.events_dir = s3, bucket, events_dir
        self.stream = stream

    def emit(self, event: Mapping[str, Any], now: datetime, store: bool) -> None:
        line = json.dumps(event, separators=(",", ":"))
        out = self.stream or sys.stdout
        out.write(line + "\n")
        out.flush()
        if not store:  # refused before admission: CloudWatch only (a refused flood costs no PUT)
            return
        folder = partition(now)
        if self.bucket and self.s3 is not None:
            try:
                self.s3.put_object(
                    Bucket=self.bucket,
                    Key=f"{folder}/{event['request_id']}.json",
                    Body=(line + "\n").encode(),
                    ContentType="application/json",
                )
            except Exception as exc:  # the stdout line stays the record of last resort
                logger.error(
                    "usage event %s not stored in S3: %s", event["request_id"], type(exc).__name__
                )
        if self.events_dir:
            path = Path(self.events_dir) / folder / f"proxy-{os.getpid()}.jsonl"
            try:
                with _file_lock:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    with path.open("a") as handle:
                        handle.write(line + "\n")
            except OSError as exc:
                logger.error("usage event %s not written locally: %s", event["request_id"], exc)
