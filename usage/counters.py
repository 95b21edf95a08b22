"""Read the proxy's DynamoDB usage counters (real time, provisional until a day is ingested).

Keys and attributes are the proxy's contract (proxy/contract.py): pk `CUST#<customer_id>`,
sk `DAY#YYYY-MM-DD`, `MONTH#YYYY-MM` (and `#MODEL#<model_id>` per model); requests and the four
token counts. Many customers are read with strongly consistent batch gets (100 keys a call,
several calls at once).
"""

import datetime as dt
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields

from core.aws import aws_client
from proxy import contract

# The proxy's name for the MONTH item's quota counter (proxy/limits.py); read, never written.
QUOTA_ATTRIBUTE = contract.QUOTA_TOKENS
# The MONTH item's money counter: what the month's calls cost, in micro-units (holds included).
SPEND_ATTRIBUTE = contract.SPEND_MICROS

COUNTER_FIELDS = contract.COUNTER_FIELDS


@dataclass(frozen=True)
class CounterTotals:
    requests: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    # On MONTH items: input + output tokens of priced models, what the proxy holds against
    # the monthly quota (free models excluded). None when the item has no such attribute:
    # the proxy writes it with the month's first priced call, so none were made yet.
    quota_tokens: int | None = None
    # On MONTH items: what the month's calls cost at list price, in micro-units of the portal's
    # currency, holds of calls in flight included (settled to the exact cost when they end).
    spend_micros: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def quota_used(self) -> int:
        """Tokens counted against the monthly quota: the sandbox's free tokens never are."""
        return self.quota_tokens or 0

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"tokens": self.tokens}


def counters_table_name() -> str:
    return contract.table_names().usage_counters


def customer_pk(customer_id) -> str:
    return contract.counter_pk(str(customer_id))


def token_pk(token_id) -> str:
    """The counters of one token's own limits: the proxy keeps them only for the limits the
    token has (its MONTH item's spend_micros once it has a monthly budget)."""
    return contract.token_counter_pk(str(token_id))


def day_sk(day: dt.date) -> str:
    return contract.day_sk(day)


def month_sk(day: dt.date) -> str:
    return contract.month_sk(day)


def _totals(item: dict | None) -> CounterTotals:
    if not item:
        return CounterTotals()
    values = {f: int(item[f]["N"]) if f in item else 0 for f in COUNTER_FIELDS}
    if QUOTA_ATTRIBUTE in item:
        values["quota_tokens"] = int(item[QUOTA_ATTRIBUTE]["N"])
    if SPEND_ATTRIBUTE in item:
        values["spend_micros"] = int(item[SPEND_ATTRIBUTE]["N"])
    return CounterTotals(**values)


BATCH_KEYS = 100  # BatchGetItem's limit
READ_THREADS = 8  # batches read at once (botocore clients are thread-safe)


def _batch_get(client, table: str, keys: list[tuple[str, str]], **options) -> list[dict]:
    """The items of up to 100 (pk, sk) keys, strongly consistent; unprocessed keys are asked
    again with jittered backoff."""
    items: list[dict] = []
    request = {
        table: {
            "Keys": [{"pk": {"S": pk}, "sk": {"S": sk}} for pk, sk in keys],
            "ConsistentRead": True,
            **options,
        }
    }
    for attempt in range(10):
        response = client.batch_get_item(RequestItems=request)
        items += response.get("Responses", {}).get(table, [])
        request = response.get("UnprocessedKeys") or None
        if not request:
            return items
        time.sleep(min(1.0, 0.05 * 2**attempt) * random.random())  # noqa: S311 (jitter)
    raise RuntimeError(f"DynamoDB left {len(request[table]['Keys'])} counter keys unread")


def _read_batch(client, table: str, keys: list[tuple[str, str]]) -> dict:
    return {(item["pk"]["S"], item["sk"]["S"]): item for item in _batch_get(client, table, keys)}


def _read_items(client, table: str, keys: list[tuple[str, str]]) -> dict:
    batches = [keys[i : i + BATCH_KEYS] for i in range(0, len(keys), BATCH_KEYS)]
    found: dict[tuple[str, str], dict] = {}
    if len(batches) == 1:
        found = _read_batch(client, table, batches[0])
    elif batches:
        with ThreadPoolExecutor(max_workers=min(READ_THREADS, len(batches))) as pool:
            for part in pool.map(lambda batch: _read_batch(client, table, batch), batches):
                found.update(part)
    return found


def _summed(totals: list[CounterTotals]) -> CounterTotals:
    """Several copies of one counter (a sharded customer's, proxy/sharded.py) as one."""
    values = {}
    for f in fields(CounterTotals):
        parts = [getattr(t, f.name) for t in totals]
        if f.name == "quota_tokens":
            present = [p for p in parts if p is not None]
            values[f.name] = sum(present) if present else None
        else:
            values[f.name] = sum(parts)
    return CounterTotals(**values)


def read_counters(
    keys: list[tuple[str, str]], *, client=None
) -> dict[tuple[str, str], CounterTotals]:
    """Totals for each (pk, sk); keys without an item read as zero. Batches of 100 keys are
    read READ_THREADS at a time: 9,000 customers are 90 calls, about 12 round trips. An item
    that says its counts are spread over copies (`usage_shards`, a customer the proxy admits
    over several shards) is summed with its copies, read in a second round."""
    client = client or aws_client("dynamodb")
    table = counters_table_name()
    unique = list(dict.fromkeys(keys))
    found = _read_items(client, table, unique)
    copies = {}
    for key, item in found.items():
        count = int(item.get(contract.USAGE_SHARDS, {}).get("N", 0))
        copies[key] = [(key[0], contract.shard_sk(key[1], n)) for n in range(count)]
    more = _read_items(client, table, [k for keys in copies.values() for k in keys])
    result = {}
    for key in unique:
        parts = [_totals(found.get(key))] + [_totals(more.get(k)) for k in copies.get(key, [])]
        result[key] = parts[0] if len(parts) == 1 else _summed(parts)
    return result


def customer_snapshot(customer_id, *, today: dt.date, client=None) -> dict:
    """Today's and this month's counters of one customer, in total and by model."""
    client = client or aws_client("dynamodb")
    # Two Queries: the DAY# and MONTH# items with their per-model items.
    raw = contract.get_usage_snapshot(client, str(customer_id), today)
    return {
        "today": CounterTotals(**raw["day"]),
        "month": CounterTotals(**raw["month"]),
        "today_by_model": sorted(
            ((m, CounterTotals(**v)) for m, v in raw["day_by_model"].items()),
            key=lambda mv: -mv[1].tokens,
        ),
    }


def day_totals(customer_ids, *, day: dt.date, client=None) -> dict[str, CounterTotals]:
    """DAY# counters of many customers, keyed by customer id string."""
    keys = [(customer_pk(c), day_sk(day)) for c in customer_ids]
    result = read_counters(keys, client=client)
    return {pk.removeprefix("CUST#"): totals for (pk, _), totals in result.items()}


def tokens_last_used(token_ids, *, client=None) -> dict[str, dt.datetime]:
    """Each token's last call as the proxy recorded it (its LAST item, contract.last_used_key):
    {token id string: aware datetime}, for the tokens that have one. Strongly consistent batch
    reads of 100 keys."""
    client = client or aws_client("dynamodb")
    table = counters_table_name()
    ids = list(dict.fromkeys(str(t) for t in token_ids))
    found: dict[str, dt.datetime] = {}
    for i in range(0, len(ids), BATCH_KEYS):
        keys = [contract.last_used_key(t) for t in ids[i : i + BATCH_KEYS]]
        projection = {
            "ProjectionExpression": "pk, #u",
            "ExpressionAttributeNames": {"#u": contract.LAST_USED},
        }
        for item in _batch_get(client, table, keys, **projection):
            value = item.get(contract.LAST_USED, {}).get("N")
            if value is not None and value.isdigit():
                token_id = item["pk"]["S"].removeprefix("TOKEN#")
                found[token_id] = dt.datetime.fromtimestamp(int(value), dt.UTC)
    return found
