"""The DynamoDB contract between the portal (writer) and the proxy Lambda (reader).

One module, imported by both sides: table names, key schemas, item shapes (each item carries
`schema_version`), token format and hashing, and the functions that read and write items.
All functions take a low-level boto3 DynamoDB client; nothing happens at import time.

Versioning: the portal gives every customer and token a monotonic `version`. A put only lands
when the stored version is older (`attribute_not_exists(key) OR version < :v`), so a delayed
or repeated delivery never overwrites newer state and re-delivery is a no-op.

Schema versions only ever add fields with a default, so both directions read: an item written
under an earlier `schema_version` lacks the newer fields and reads with their defaults (no
limit, every model), and a reader that predates a field ignores it (`_deserialize`).
  1: the first shapes.
  2: `tpm_limit` on customers; per-token limits on tokens (`daily_request_limit`, `rpm_limit`,
     `monthly_token_quota`, `tpm_limit`, `allowed_models`).
  3: money: `monthly_budget_micros` on customers and tokens, `prepaid` on customers (calls need
     available credit, the CREDIT counter item below).
  4: `counter_shards` on customers: how many admission shards a busy customer's counters are
     spread over (1, the default: one transaction per admission; proxy/sharded.py).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import string
import time
import zlib
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_dynamodb.literals import KeyTypeType
    from mypy_boto3_dynamodb.type_defs import AttributeValueTypeDef

    # An item as DynamoDB returns it: attribute name -> {"S": ...} / {"N": ...} / ...
    RawItem = Mapping[str, AttributeValueTypeDef]

SCHEMA_VERSION = 4

# --- tables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TableNames:
    customers: str
    tokens: str
    usage_counters: str
    prices: str = "bedrock_prices"  # one item per priced model (PriceItem, below)


def table_names() -> TableNames:
    return TableNames(
        customers=os.environ.get("CUSTOMERS_TABLE", "bedrock_customers"),
        tokens=os.environ.get("TOKENS_TABLE", "bedrock_tokens"),
        usage_counters=os.environ.get("USAGE_COUNTERS_TABLE", "bedrock_usage_counters"),
        prices=os.environ.get("PRICES_TABLE", "bedrock_prices"),
    )


CUSTOMER_KEY = "customer_id"
TOKEN_KEY = "token_hash"
PRICE_KEY = "model_id"
COUNTER_PK, COUNTER_SK = "pk", "sk"
TTL_ATTRIBUTE = "ttl"


def _key_schemas(names: TableNames) -> dict[str, list[tuple[str, KeyTypeType]]]:
    return {
        names.customers: [(CUSTOMER_KEY, "HASH")],
        names.tokens: [(TOKEN_KEY, "HASH")],
        names.usage_counters: [(COUNTER_PK, "HASH"), (COUNTER_SK, "RANGE")],
        names.prices: [(PRICE_KEY, "HASH")],
    }


def create_tables(client: DynamoDBClient, names: TableNames | None = None) -> list[str]:
    """Create the tables (on-demand, TTL on tokens and counters); skip existing ones."""
    names = names or table_names()
    existing = set(client.list_tables().get("TableNames", []))
    created = []
    for table, keys in _key_schemas(names).items():
        if table in existing:
            continue
        client.create_table(
            TableName=table,
            KeySchema=[{"AttributeName": n, "KeyType": t} for n, t in keys],
            AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n, _ in keys],
            BillingMode="PAY_PER_REQUEST",
        )
        client.get_waiter("table_exists").wait(TableName=table)
        if table not in (names.customers, names.prices):
            client.update_time_to_live(
                TableName=table,
                TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE},
            )
        created.append(table)
    return created


# --- tokens -----------------------------------------------------------------------------

TOKEN_PREFIX = "bup_"
_BASE62 = string.digits + string.ascii_letters
_RANDOM_LENGTH = 32
_CHECKSUM_LENGTH = 6
IMPORTED_TOKEN_MIN, IMPORTED_TOKEN_MAX = 20, 256


def _base62(number: int, width: int) -> str:
    chars = []
    for _ in range(width):
        number, rem = divmod(number, 62)
        chars.append(_BASE62[rem])
    return "".join(reversed(chars))


def _checksum(random_part: str) -> str:
    return _base62(zlib.crc32(random_part.encode()), _CHECKSUM_LENGTH)


def generate_token() -> str:
    """`bup_` + 32 random base62 characters + a 6-character CRC32 checksum (like `ghp_`)."""
    random_part = "".join(secrets.choice(_BASE62) for _ in range(_RANDOM_LENGTH))
    return TOKEN_PREFIX + random_part + _checksum(random_part)


def token_has_valid_checksum(token: str) -> bool:
    if not token.startswith(TOKEN_PREFIX):
        return False
    body = token[len(TOKEN_PREFIX) :]
    if len(body) != _RANDOM_LENGTH + _CHECKSUM_LENGTH or any(c not in _BASE62 for c in body):
        return False
    return _checksum(body[:_RANDOM_LENGTH]) == body[_RANDOM_LENGTH:]


def token_is_well_formed(token: str) -> bool:
    """Ours with a valid checksum, or an imported token (printable, no spaces, 20-256 chars)."""
    if token.startswith(TOKEN_PREFIX):
        return token_has_valid_checksum(token)
    return (
        IMPORTED_TOKEN_MIN <= len(token) <= IMPORTED_TOKEN_MAX
        and token.isprintable()
        and not any(c.isspace() for c in token)
    )


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


IMPORTED_TOKEN_SHOWN = 4  # leading characters of an imported token shown (with its last 4)


def token_display_prefix(token: str) -> str:
    """What lists show before "…" and token_last4: `bup_` plus 4 random characters of ours; of
    an imported token (at least IMPORTED_TOKEN_MIN long) only its first 4, so at most 8 of its
    characters are ever shown."""
    return token[:8] if token.startswith(TOKEN_PREFIX) else token[:IMPORTED_TOKEN_SHOWN]


def token_last4(token: str) -> str:
    return token[-4:]


# --- items ------------------------------------------------------------------------------


@dataclass
class CustomerItem:
    customer_id: str
    version: int
    status: str  # "active" | "suspended" | "closed"
    name: str
    daily_request_limit: int | None = None
    monthly_token_quota: int | None = None
    rpm_limit: int | None = None
    allowed_models: list[str] = field(default_factory=list)  # aliases or ids; empty = all
    tpm_limit: int | None = None  # input + output tokens of priced models per minute (v2)
    ip_allowlist: list[str] = field(default_factory=list)  # CIDRs; empty = any address
    default_model_params: dict[str, Any] = field(default_factory=dict)
    updated_at: str = ""
    # Money (v3), in integer micro-units of the portal's currency (MICROS_PER_UNIT per unit):
    # the most this month's calls may cost at list price (None: no cap), and whether calls need
    # prepaid credit (the CREDIT item's granted_micros above its used_micros).
    monthly_budget_micros: int | None = None
    prepaid: bool = False
    # (v4) Admission shards: 1 admits with one transaction over the customer's counters; more
    # spreads the limits over this many single-item admission counters (proxy/sharded.py), for
    # a customer that sends more requests a second than one item can take.
    counter_shards: int = 1

    @property
    def is_active(self) -> bool:
        return self.status == "active"


@dataclass
class TokenItem:
    token_hash: str
    version: int
    token_id: str
    customer_id: str
    display_prefix: str
    status: str  # "active" | "revoked"
    expires_at: int | None  # epoch seconds; a rotated token's grace end goes here
    created_at: int | str | None = None
    # Set when the token was rotated: the end of its grace period (epoch seconds). When the
    # token stops because of it, the proxy says "grace ended" rather than "expired".
    grace_ends_at: int | None = None
    # Its own limits (schema v2), inside the customer's: a request must pass both. None: only
    # the customer's limit applies; an empty list: the customer's models.
    daily_request_limit: int | None = None
    rpm_limit: int | None = None
    monthly_token_quota: int | None = None
    tpm_limit: int | None = None
    allowed_models: list[str] = field(default_factory=list)
    monthly_budget_micros: int | None = None  # v3: its own money cap, inside the customer's

    @property
    def has_limits(self) -> bool:
        return (
            self.daily_request_limit is not None
            or self.rpm_limit is not None
            or self.monthly_token_quota is not None
            or self.tpm_limit is not None
            or self.monthly_budget_micros is not None
        )

    def usable_at(self, now_epoch: float) -> bool:
        return self.status == "active" and (self.expires_at is None or now_epoch < self.expires_at)

    @property
    def stopped_by_grace_end(self) -> bool:
        """Its end is the rotation's grace end, not its own expiry."""
        return self.grace_ends_at is not None and self.expires_at == self.grace_ends_at


_TTL_AFTER_EXPIRY = 30 * 24 * 3600


def _to_attr(value: object) -> AttributeValueTypeDef:
    if value is None:
        return {"NULL": True}
    if isinstance(value, bool):
        return {"BOOL": value}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, list):
        return {"L": [_to_attr(v) for v in value]}
    if isinstance(value, dict):
        return {"M": {str(k): _to_attr(v) for k, v in value.items()}}
    if hasattr(value, "as_tuple"):  # Decimal from a caller: keep it exact
        return {"N": str(value)}
    if isinstance(value, float):
        # Model parameters such as temperature; never money or counts.
        return {"N": repr(value)}
    raise TypeError(f"cannot store {type(value).__name__} in DynamoDB")


def _from_attr(attr: Mapping[str, Any]) -> Any:
    """A stored attribute's value: None, int, float, str, bool, or lists and dicts of them."""
    ((kind, value),) = attr.items()
    if kind == "NULL":
        return None
    if kind == "N":
        return int(value) if value.lstrip("-").isdigit() else float(value)
    if kind == "L":
        return [_from_attr(v) for v in value]
    if kind == "M":
        return {k: _from_attr(v) for k, v in value.items()}
    return value  # S, BOOL


def _serialize(item: CustomerItem | TokenItem) -> dict[str, AttributeValueTypeDef]:
    data = asdict(item)
    data["schema_version"] = SCHEMA_VERSION
    if isinstance(item, TokenItem) and item.expires_at is not None:
        data[TTL_ATTRIBUTE] = int(item.expires_at) + _TTL_AFTER_EXPIRY
    return {k: _to_attr(v) for k, v in data.items()}


_Item = TypeVar("_Item", CustomerItem, TokenItem)


def _deserialize(cls: type[_Item], raw: RawItem) -> _Item:
    data = {k: _from_attr(v) for k, v in raw.items()}
    known = cls.__dataclass_fields__
    return cls(**{k: v for k, v in data.items() if k in known})


def _versioned_put(
    client: DynamoDBClient, table: str, key: str, item: CustomerItem | TokenItem
) -> bool:
    try:
        client.put_item(
            TableName=table,
            Item=_serialize(item),
            ConditionExpression="attribute_not_exists(#k) OR #v < :v",
            ExpressionAttributeNames={"#k": key, "#v": "version"},
            ExpressionAttributeValues={":v": {"N": str(item.version)}},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def put_customer(
    client: DynamoDBClient, item: CustomerItem, names: TableNames | None = None
) -> bool:
    """Write a customer unless a same-or-newer version is stored. True if it landed; then the
    version is stamped on the customer's admission shards (stamp_admission_shards)."""
    names = names or table_names()
    landed = _versioned_put(client, names.customers, CUSTOMER_KEY, item)
    if landed:
        stamp_admission_shards(client, item.customer_id, CUSTOMER_STAMP, item.version, names)
    return landed


def put_token(client: DynamoDBClient, item: TokenItem, names: TableNames | None = None) -> bool:
    """Write a token unless a same-or-newer version is stored. True if it landed; then the
    version is stamped on its customer's admission shards (stamp_admission_shards)."""
    names = names or table_names()
    landed = _versioned_put(client, names.tokens, TOKEN_KEY, item)
    if landed:
        stamp = token_stamp(item.token_id)
        stamp_admission_shards(client, item.customer_id, stamp, item.version, names)
    return landed


# --- admission shards -------------------------------------------------------------------
# A customer with counter_shards > 1 is admitted by ONE conditional UpdateItem on one of its
# admission items (pk CUST#<customer_id>, sk ADMIT#<k>, k < counter_shards; proxy/sharded.py).
# Each carries the versions of the customer and of the tokens it admitted (the stamps), which
# the update's condition compares with the versions the proxy holds: a change the portal makes
# is stamped on every existing shard when the put lands, so the next request on any shard sees
# it. A shard without a stamp (new, or a token new to it) is stamped by the proxy in a
# transaction that checks the customer and token items themselves.
ADMISSION_SK_PREFIX = "ADMIT#"
CUSTOMER_STAMP = "cv"
MAX_COUNTER_SHARDS = 64
# Usage counters of a sharded customer: its settlements spread over `usage_shards` copies of
# each DAY#/MONTH# item (sk + "#SHARD#<n>"), recorded on the plain item, which readers sum.
SHARD_MARK = "#SHARD#"
USAGE_SHARDS = "usage_shards"
_STAMP_ATTEMPTS = 12
_STAMP_THREADS = 10  # botocore keeps 10 connections a client by default


def token_stamp(token_id: str) -> str:
    """The admission shards' attribute holding one token's version."""
    return f"tv#{token_id}"


def admission_sk(shard: int) -> str:
    return f"{ADMISSION_SK_PREFIX}{shard:02d}"


def usage_shard_count(counter_shards: int) -> int:
    """How many copies of each usage counter item a customer's settlements spread over."""
    return 4 * max(1, min(int(counter_shards), MAX_COUNTER_SHARDS))


def shard_sk(sk: str, shard: int) -> str:
    return f"{sk}{SHARD_MARK}{shard:03d}"


def stamp_admission_shards(
    client: DynamoDBClient,
    customer_id: str,
    attribute: str,
    version: int,
    names: TableNames | None = None,
) -> int:
    """SET `attribute` (the customer's or a token's stamp) to `version` on each admission shard
    of the customer that already carries it at a lower version; shards without it are left to
    the proxy, which stamps them after checking the items themselves. The shards are stamped
    in parallel; a shard held by a transaction (TransactionConflictException) is tried again.
    Returns the shards stamped."""
    table = (names or table_names()).usage_counters
    try:
        shards = client.query(  # strongly consistent: a shard created just now is stamped too
            TableName=table,
            KeyConditionExpression="#pk = :pk AND begins_with(#sk, :prefix)",
            ExpressionAttributeNames={"#pk": COUNTER_PK, "#sk": COUNTER_SK},
            ExpressionAttributeValues={
                ":pk": {"S": counter_pk(customer_id)},
                ":prefix": {"S": ADMISSION_SK_PREFIX},
            },
            ConsistentRead=True,
        ).get("Items", [])  # at most MAX_COUNTER_SHARDS small items: one page
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ResourceNotFoundException":
            return 0  # no counters table (a portal test without the proxy's tables)
        raise
    carrying = [raw for raw in shards if attribute in raw]
    if len(carrying) <= 1:
        return sum(_stamp_shard(client, table, raw, attribute, version) for raw in carrying)
    # All shards at once: the change is on every shard after one round trip, not one per shard
    # (a request on a shard not yet stamped would still be admitted in between).
    with ThreadPoolExecutor(max_workers=min(len(carrying), _STAMP_THREADS)) as pool:
        return sum(pool.map(lambda raw: _stamp_shard(client, table, raw, attribute, version),
                            carrying))  # fmt: skip


def _stamp_shard(
    client: DynamoDBClient,
    table: str,
    raw: Mapping[str, AttributeValueTypeDef],
    attribute: str,
    version: int,
) -> int:
    """1 when this shard's stamp was raised to `version`, 0 when it was there already."""
    for attempt in range(_STAMP_ATTEMPTS):
        try:
            client.update_item(
                TableName=table,
                Key={COUNTER_PK: raw[COUNTER_PK], COUNTER_SK: raw[COUNTER_SK]},
                UpdateExpression="SET #s = :v",
                ConditionExpression="attribute_exists(#s) AND #s < :v",
                ExpressionAttributeNames={"#s": attribute},
                ExpressionAttributeValues={":v": {"N": str(int(version))}},
            )
            return 1
        except ClientError as exc:
            code = exc.response["Error"]["Code"]
            if code == "ConditionalCheckFailedException":
                return 0  # already at this version or newer
            if code != "TransactionConflictException" or attempt == _STAMP_ATTEMPTS - 1:
                raise
            time.sleep(min(0.2, 0.005 * 2**attempt) * (0.5 + secrets.randbelow(1000) / 1000))
    return 0  # pragma: no cover (the last attempt returns or raises)


def get_customer(
    client: DynamoDBClient,
    customer_id: str,
    names: TableNames | None = None,
    consistent: bool = True,
) -> CustomerItem | None:
    raw = client.get_item(
        TableName=(names or table_names()).customers,
        Key={CUSTOMER_KEY: {"S": customer_id}},
        ConsistentRead=consistent,
    ).get("Item")
    return _deserialize(CustomerItem, raw) if raw else None


def get_token(
    client: DynamoDBClient,
    token_hash: str,
    names: TableNames | None = None,
    consistent: bool = True,
) -> TokenItem | None:
    raw = client.get_item(
        TableName=(names or table_names()).tokens,
        Key={TOKEN_KEY: {"S": token_hash}},
        ConsistentRead=consistent,
    ).get("Item")
    return _deserialize(TokenItem, raw) if raw else None


def _scan(client: DynamoDBClient, table: str) -> Iterator[dict[str, AttributeValueTypeDef]]:
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        yield from page.get("Items", [])


def iter_customers(
    client: DynamoDBClient, names: TableNames | None = None
) -> Iterator[CustomerItem]:
    for raw in _scan(client, (names or table_names()).customers):
        yield _deserialize(CustomerItem, raw)


def iter_tokens(client: DynamoDBClient, names: TableNames | None = None) -> Iterator[TokenItem]:
    for raw in _scan(client, (names or table_names()).tokens):
        yield _deserialize(TokenItem, raw)


# --- usage counters ---------------------------------------------------------------------
# pk "CUST#<customer_id>"; sk "DAY#YYYY-MM-DD", "MONTH#YYYY-MM", "MIN#YYYY-MM-DDTHH:MM",
# and per model "DAY#YYYY-MM-DD#MODEL#<model_id>", "MONTH#YYYY-MM#MODEL#<model_id>".
# pk "TOKEN#<token_id>" (a token with its own limits): the same MIN#/DAY#/MONTH# sort keys,
# holding only what those limits compare (requests, MINUTE_TOKENS, QUOTA_TOKENS).
COUNTER_FIELDS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)
# On MONTH# items only: input + output tokens of priced models (the sandbox is free), what the
# monthly token quota is enforced against (proxy/limits.py); while a call runs it also holds an
# estimate of that call's tokens, replaced by the exact count when the call ends.
QUOTA_TOKENS = "quota_tokens"
# On MIN# items, when a tokens-per-minute limit is set: input + output tokens of priced models
# admitted in that minute, holds of calls in flight included (settled like QUOTA_TOKENS).
MINUTE_TOKENS = "tokens"
# On MONTH# items (the customer's, and a token's with a money cap): what the month's calls cost
# at the prices of the price items, in micro-units, holds of calls in flight included (a hold is
# the most the call can cost, settled to its exact cost). Free models cost 0.
SPEND_MICROS = "spend_micros"

# One small item per token, pk TOKEN#<token_id>, sk LAST: `last_used`, the epoch seconds of the
# admission of the token's latest call, SET by the usage transaction the call already makes
# (proxy/usage.py; no extra DynamoDB call), with a TTL. One item per token, not an attribute
# per token on a customer item, so no item grows with the number of a customer's tokens
# (DynamoDB items hold at most 400 KB). The portal reads it for its token pages.
LAST_USED_SK = "LAST"
LAST_USED = "last_used"


def last_used_key(token_id: str) -> tuple[str, str]:
    """(pk, sk) of a token's last-use item."""
    return token_counter_pk(token_id), LAST_USED_SK


# Prepaid credit: one item per prepaid customer, pk CUST#<customer_id>, sk CREDIT.
#   granted_micros, credit_version: SET by the portal only (billing/credit_sync.py), at a
#     monotonic version: the wallet's balance plus the credit-item spend of every period
#     already invoiced (invoicing takes that spend out of the wallet instead).
#   used_micros: ADDed by the proxy only: holds and exact costs of every priced call while the
#     customer is prepaid, for all time; and the same amounts per month in used#YYYY-MM, which
#     the portal reads when it invoices that month.
# Credit available now = granted_micros - used_micros; admission refuses when it is 0 or less.
CREDIT_SK = "CREDIT"
CREDIT_GRANTED = "granted_micros"
CREDIT_USED = "used_micros"
CREDIT_VERSION = "credit_version"


def credit_used_in(month: str) -> str:
    """The CREDIT item's attribute holding one month's (YYYY-MM) credit spend."""
    return f"used#{month}"


def counter_pk(customer_id: str) -> str:
    return f"CUST#{customer_id}"


def token_counter_pk(token_id: str) -> str:
    """The counters of one token's own limits (only those it has)."""
    return f"TOKEN#{token_id}"


def day_sk(day: date, model_id: str | None = None) -> str:
    base = f"DAY#{day.isoformat()}"
    return f"{base}#MODEL#{model_id}" if model_id else base


def month_sk(day: date, model_id: str | None = None) -> str:
    base = f"MONTH#{day.strftime('%Y-%m')}"
    return f"{base}#MODEL#{model_id}" if model_id else base


def minute_sk(minute_iso: str) -> str:
    return f"MIN#{minute_iso}"


def _counter_values(raw: RawItem) -> dict[str, int]:
    return {name: int(raw.get(name, {}).get("N", 0)) for name in COUNTER_FIELDS}


def _query_prefix(
    client: DynamoDBClient, table: str, pk: str, prefix: str
) -> list[dict[str, AttributeValueTypeDef]]:
    items: list[dict[str, AttributeValueTypeDef]] = []
    paginator = client.get_paginator("query")
    for page in paginator.paginate(
        TableName=table,
        KeyConditionExpression="#pk = :pk AND begins_with(#sk, :prefix)",
        ExpressionAttributeNames={"#pk": COUNTER_PK, "#sk": COUNTER_SK},
        ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": prefix}},
    ):
        items.extend(page.get("Items", []))
    return items


def get_usage_snapshot(
    client: DynamoDBClient, customer_id: str, day: date, names: TableNames | None = None
) -> dict[str, Any]:
    """Today's and this month's counters for one customer, in total and per model.

    {"day": {...totals}, "month": {...totals}, "day_by_model": {model: {...}},
     "month_by_model": {model: {...}}}; missing counters read as zeros. The month's totals also
    carry `quota_tokens` once the proxy has counted tokens of a priced model, and
    `spend_micros` once it has held money for a call. A sharded customer's copies of each item
    (sk + "#SHARD#<n>") are summed. Two Queries.
    """
    table = (names or table_names()).usage_counters
    pk = counter_pk(customer_id)
    empty = dict.fromkeys(COUNTER_FIELDS, 0)
    snapshot: dict[str, Any] = {
        "day": dict(empty),
        "month": dict(empty),
        "day_by_model": {},
        "month_by_model": {},
    }
    extras: tuple[str, ...]
    for period, prefix in (("day", day_sk(day)), ("month", month_sk(day))):
        for raw in _query_prefix(client, table, pk, prefix):
            sk = raw[COUNTER_SK]["S"].partition(SHARD_MARK)[0]
            if sk == prefix:
                totals = snapshot[period]
                extras = (QUOTA_TOKENS, SPEND_MICROS)  # MONTH#: quota and money held
            elif sk.startswith(prefix + "#MODEL#"):
                model = sk[len(prefix) + len("#MODEL#") :]
                totals = snapshot[f"{period}_by_model"].setdefault(model, dict(empty))
                extras = ()
            else:
                continue
            for name, value in _counter_values(raw).items():
                totals[name] += value
            for extra in extras:
                if extra in raw:
                    totals[extra] = totals.get(extra, 0) + int(raw[extra]["N"])
    return snapshot


@dataclass(frozen=True)
class CreditState:
    """A prepaid customer's CREDIT item: what the portal granted, what calls used."""

    granted_micros: int
    used_micros: int
    used_by_month: dict[str, int]
    version: int

    @property
    def available_micros(self) -> int:
        return self.granted_micros - self.used_micros


def _attr_int(raw: RawItem, name: str) -> int:
    value = raw.get(name, {}).get("N")
    return int(value) if value is not None else 0


def read_credit(raw: RawItem) -> CreditState:
    """A CREDIT item in DynamoDB's shape; missing attributes read as 0 (ValueError: a value is
    not a whole number, a hand edit)."""
    by_month = {
        name.removeprefix("used#"): _attr_int(raw, name) for name in raw if name.startswith("used#")
    }
    return CreditState(
        granted_micros=_attr_int(raw, CREDIT_GRANTED),
        used_micros=_attr_int(raw, CREDIT_USED),
        used_by_month=by_month,
        version=_attr_int(raw, CREDIT_VERSION),
    )


def get_credit(
    client: DynamoDBClient, customer_id: str, names: TableNames | None = None
) -> CreditState:
    """The CREDIT item, read strongly consistent; a missing item reads as all zeros."""
    raw = client.get_item(
        TableName=(names or table_names()).usage_counters,
        Key={COUNTER_PK: {"S": counter_pk(customer_id)}, COUNTER_SK: {"S": CREDIT_SK}},
        ConsistentRead=True,
    ).get("Item", {})
    return read_credit(raw)


def put_credit(
    client: DynamoDBClient,
    customer_id: str,
    granted_micros: int,
    version: int,
    names: TableNames | None = None,
) -> bool:
    """SET the credit granted unless a same-or-newer version is stored (the proxy's used_*
    attributes are left alone). True if it landed."""
    try:
        client.update_item(
            TableName=(names or table_names()).usage_counters,
            Key={COUNTER_PK: {"S": counter_pk(customer_id)}, COUNTER_SK: {"S": CREDIT_SK}},
            UpdateExpression="SET #g = :g, #v = :v",
            ConditionExpression="attribute_not_exists(#v) OR #v < :v",
            ExpressionAttributeNames={"#g": CREDIT_GRANTED, "#v": CREDIT_VERSION},
            ExpressionAttributeValues={
                ":g": {"N": str(int(granted_micros))},
                ":v": {"N": str(int(version))},
            },
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


# --- prices -----------------------------------------------------------------------------
# One item per priced model in the prices table, keyed by the price book's model id (a base id:
# an alias or an inference profile is priced as the model it names, proxy/models.priced_as).
# Money is in integer micro-units of the portal's currency (BILLING_CURRENCY; 1 USD is
# 1,000,000), never a float. The portal writes them through its outbox at a monotonic
# `version` (billing/price_sync.py), the proxy reads them all at once (proxy/prices.py).
# An item carries its own `schema_version` (PRICE_SCHEMA_VERSION); a reader treats an item of
# another schema, or with any value out of shape, as missing: the model is then unpriced.

PRICE_SCHEMA_VERSION = 1
MICROS_PER_UNIT = 1_000_000
# The most a price may be, per 1,000 tokens or per request: 1,000,000 units of the currency.
PRICE_MICROS_LIMIT = 10**12
_EPOCH_LIMIT = 10**11  # seconds (the year 5138): an effective_from beyond it is hostile
_VERSION_LIMIT = 2**63  # the portal's version counter is a signed 64-bit column
RATE_FIELDS = (
    "input_per_1k",
    "output_per_1k",
    "cache_read_per_1k",
    "cache_write_per_1k",
    "per_request",
)


@dataclass(frozen=True)
class PriceRates:
    """A model's prices from `effective_from` (epoch seconds) on, in micro-units: per 1,000
    input, output, cache-read and cache-write tokens, and per request."""

    effective_from: int
    input_per_1k: int
    output_per_1k: int
    cache_read_per_1k: int
    cache_write_per_1k: int
    per_request: int = 0

    @property
    def is_free(self) -> bool:
        return not any(getattr(self, name) for name in RATE_FIELDS)


@dataclass
class PriceItem:
    """The price of one model: the rates in force when it was written (`current`) and the next
    scheduled change (`next`), so a reader switches at `next.effective_from` without reading
    again. Both None: the model has no price (it left the price book)."""

    model_id: str
    version: int
    currency: str  # ISO 4217, e.g. "USD"
    current: PriceRates | None = None
    next: PriceRates | None = None
    updated_at: str = ""

    def rates_at(self, epoch: float) -> PriceRates | None:
        """The rates in force at `epoch` (seconds), or None before the first of them."""
        if self.next is not None and epoch >= self.next.effective_from:
            return self.next
        if self.current is not None and epoch >= self.current.effective_from:
            return self.current
        return None


@dataclass(frozen=True)
class UnreadablePriceItem:
    """A stored price item without the contract's shape (a hand edit, a newer schema): readers
    treat its model as unpriced; the portal's reconciliation rewrites it."""

    model_id: str
    version: int | None
    problem: str


def _whole(attr: object, low: int, high: int, what: str) -> int:
    """A DynamoDB number that is a whole number in [low, high]; ValueError naming it if not."""
    text = attr.get("N") if isinstance(attr, dict) else None
    digits = text[1:] if isinstance(text, str) and text.startswith("-") else text
    # (digits is a str only if text is one: testing text too tells the type checker so.)
    if not (
        isinstance(text, str) and isinstance(digits, str) and digits.isascii() and digits.isdigit()
    ):
        raise ValueError(f"{what} is not a whole number")
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{what} is out of range")
    return value


def _read_rates(attr: object, what: str) -> PriceRates | None:
    if attr == {"NULL": True}:
        return None
    fields = attr.get("M") if isinstance(attr, dict) else None
    if not isinstance(fields, dict):
        raise ValueError(f"{what} is not a map")
    return PriceRates(
        effective_from=_whole(
            fields.get("effective_from"), 0, _EPOCH_LIMIT, f"{what}.effective_from"
        ),
        **{
            name: _whole(fields.get(name), 0, PRICE_MICROS_LIMIT, f"{what}.{name}")
            for name in RATE_FIELDS
        },
    )


def read_price_item(raw: Mapping[str, Any]) -> PriceItem | UnreadablePriceItem:
    """A price item from DynamoDB's attributes, checked: every price a whole number of
    micro-units from 0 to PRICE_MICROS_LIMIT, instants whole epoch seconds, the next change
    after the current one, this schema. Anything else: UnreadablePriceItem (never raises)."""
    key = raw.get(PRICE_KEY) if isinstance(raw, dict) else None
    model_id = key.get("S", "") if isinstance(key, dict) else ""
    version = None
    try:
        version = _whole(raw.get("version"), 1, _VERSION_LIMIT - 1, "version")
        if not isinstance(model_id, str) or not model_id:
            raise ValueError("model_id is missing")
        schema = _whole(raw.get("schema_version"), 0, _VERSION_LIMIT, "schema_version")
        if schema != PRICE_SCHEMA_VERSION:
            raise ValueError(f"schema_version {schema} is not {PRICE_SCHEMA_VERSION}")
        currency = raw.get("currency", {}).get("S")
        if not (
            isinstance(currency, str)
            and len(currency) == 3
            and currency.isascii()
            and currency.isalpha()
            and currency.isupper()
        ):
            raise ValueError("currency is not a 3-letter code")
        current = _read_rates(raw.get("current", {"NULL": True}), "current")
        upcoming = _read_rates(raw.get("next", {"NULL": True}), "next")
        if current and upcoming and upcoming.effective_from <= current.effective_from:
            raise ValueError("next does not come after current")
        updated = raw.get("updated_at", {}).get("S", "")
        return PriceItem(
            model_id=model_id,
            version=version,
            currency=currency,
            current=current,
            next=upcoming,
            updated_at=updated if isinstance(updated, str) else "",
        )
    except (ValueError, TypeError, AttributeError) as exc:
        return UnreadablePriceItem(model_id=str(model_id), version=version, problem=str(exc))


def _rates_attr(rates: PriceRates | None) -> AttributeValueTypeDef:
    if rates is None:
        return {"NULL": True}
    return {"M": {name: {"N": str(value)} for name, value in asdict(rates).items()}}


def price_attributes(item: PriceItem) -> dict[str, AttributeValueTypeDef]:
    """The item as DynamoDB attributes. ValueError if a reader would not accept it."""
    attrs: dict[str, AttributeValueTypeDef] = {
        PRICE_KEY: {"S": item.model_id},
        "version": {"N": str(item.version)},
        "schema_version": {"N": str(PRICE_SCHEMA_VERSION)},
        "currency": {"S": item.currency},
        "current": _rates_attr(item.current),
        "next": _rates_attr(item.next),
        "updated_at": {"S": item.updated_at},
    }
    checked = read_price_item(attrs)
    if isinstance(checked, UnreadablePriceItem):
        raise ValueError(f"price item {item.model_id}: {checked.problem}")
    return attrs


def put_price(client: DynamoDBClient, item: PriceItem, names: TableNames | None = None) -> bool:
    """Write a price item unless a same-or-newer version is stored. True if it landed."""
    try:
        client.put_item(
            TableName=(names or table_names()).prices,
            Item=price_attributes(item),
            ConditionExpression="attribute_not_exists(#k) OR #v < :v",
            ExpressionAttributeNames={"#k": PRICE_KEY, "#v": "version"},
            ExpressionAttributeValues={":v": {"N": str(item.version)}},
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def get_price(
    client: DynamoDBClient,
    model_id: str,
    names: TableNames | None = None,
    consistent: bool = True,
) -> PriceItem | UnreadablePriceItem | None:
    raw = client.get_item(
        TableName=(names or table_names()).prices,
        Key={PRICE_KEY: {"S": model_id}},
        ConsistentRead=consistent,
    ).get("Item")
    return read_price_item(raw) if raw else None


def iter_prices(
    client: DynamoDBClient, names: TableNames | None = None, consistent: bool = True
) -> Iterator[PriceItem | UnreadablePriceItem]:
    """Every price item: one Scan of a small table (one 1 MB page holds thousands of them)."""
    table = (names or table_names()).prices
    paginator = client.get_paginator("scan")
    for page in paginator.paginate(TableName=table, ConsistentRead=consistent):
        for raw in page.get("Items", []):
            yield read_price_item(raw)


def delete_price(client: DynamoDBClient, model_id: str, names: TableNames | None = None) -> None:
    """Remove an item (the portal's reconciliation, for an item it cannot overwrite)."""
    client.delete_item(TableName=(names or table_names()).prices, Key={PRICE_KEY: {"S": model_id}})


# --- The usage event -------------------------------------------------------------------------
# One JSON line per call (proxy/usage.py writes them), read by the portal's daily import: the
# DuckDB engine (usage/duckdb_engine.py) and Athena through the Glue table of
# deploy/template.yaml (usage/athena.py prints the same table's DDL). Each reader's column list
# is made from this one, and tests/proxy/test_template.py checks the template's against it.
# Column -> Glue (Hive) type. The token counts are strings: the JSON SerDe fails the whole
# query on a value that does not fit a bigint column, so the import's SQL checks them instead.
USAGE_EVENT_TAGS = ("applicationId", "costCenter", "environment", "userId")
USAGE_EVENT_COLUMNS: dict[str, str] = {
    "request_id": "string",
    "timestamp": "string",
    "customer_id": "string",
    "token_id": "string",
    "model_id": "string",
    "model_alias": "string",
    "input_tokens": "string",
    "output_tokens": "string",
    "cache_read_tokens": "string",
    "cache_write_tokens": "string",
    "latency_ms": "bigint",
    "status": "string",
    "tags": "struct<" + ",".join(f"{tag}:string" for tag in USAGE_EVENT_TAGS) + ">",
    "client_ip": "string",
    "api_format": "string",
    "http_status": "int",
    "error_code": "string",
    "stream": "boolean",
    "completed": "boolean",
}
USAGE_EVENT_FIELDS = tuple(USAGE_EVENT_COLUMNS)
USAGE_TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
