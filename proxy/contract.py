"""The DynamoDB contract between the portal (writer) and the proxy Lambda (reader).

One module, imported by both sides: table names, key schemas, item shapes (each item carries
`schema_version`), token format and hashing, and the functions that read and write items.
All functions take a low-level boto3 DynamoDB client; nothing happens at import time.

Versioning: the portal gives every customer and token a monotonic `version`. A put only lands
when the stored version is older (`attribute_not_exists(key) OR version < :v`), so a delayed
or repeated delivery never overwrites newer state and re-delivery is a no-op.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import string
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date

from botocore.exceptions import ClientError

SCHEMA_VERSION = 1

# --- tables -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TableNames:
    customers: str
    tokens: str
    usage_counters: str


def table_names() -> TableNames:
    return TableNames(
        customers=os.environ.get("CUSTOMERS_TABLE", "bedrock_customers"),
        tokens=os.environ.get("TOKENS_TABLE", "bedrock_tokens"),
        usage_counters=os.environ.get("USAGE_COUNTERS_TABLE", "bedrock_usage_counters"),
    )


CUSTOMER_KEY = "customer_id"
TOKEN_KEY = "token_hash"
COUNTER_PK, COUNTER_SK = "pk", "sk"
TTL_ATTRIBUTE = "ttl"


def _key_schemas(names: TableNames) -> dict[str, list[tuple[str, str]]]:
    return {
        names.customers: [(CUSTOMER_KEY, "HASH")],
        names.tokens: [(TOKEN_KEY, "HASH")],
        names.usage_counters: [(COUNTER_PK, "HASH"), (COUNTER_SK, "RANGE")],
    }


def create_tables(client, names: TableNames | None = None) -> list[str]:
    """Create the three tables (on-demand, TTL on tokens and counters); skip existing ones."""
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
        if table != names.customers:
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
    ip_allowlist: list[str] = field(default_factory=list)  # CIDRs; empty = any address
    default_model_params: dict = field(default_factory=dict)
    updated_at: str = ""

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

    def usable_at(self, now_epoch: float) -> bool:
        return self.status == "active" and (self.expires_at is None or now_epoch < self.expires_at)

    @property
    def stopped_by_grace_end(self) -> bool:
        """Its end is the rotation's grace end, not its own expiry."""
        return self.grace_ends_at is not None and self.expires_at == self.grace_ends_at


_TTL_AFTER_EXPIRY = 30 * 24 * 3600


def _to_attr(value):
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


def _from_attr(attr):
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


def _serialize(item) -> dict:
    data = asdict(item)
    data["schema_version"] = SCHEMA_VERSION
    if isinstance(item, TokenItem) and item.expires_at is not None:
        data[TTL_ATTRIBUTE] = int(item.expires_at) + _TTL_AFTER_EXPIRY
    return {k: _to_attr(v) for k, v in data.items()}


def _deserialize(cls, raw: dict):
    data = {k: _from_attr(v) for k, v in raw.items()}
    known = cls.__dataclass_fields__
    return cls(**{k: v for k, v in data.items() if k in known})


def _versioned_put(client, table: str, key: str, item) -> bool:
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


def put_customer(client, item: CustomerItem, names: TableNames | None = None) -> bool:
    """Write a customer unless a same-or-newer version is stored. True if it landed."""
    return _versioned_put(client, (names or table_names()).customers, CUSTOMER_KEY, item)


def put_token(client, item: TokenItem, names: TableNames | None = None) -> bool:
    """Write a token unless a same-or-newer version is stored. True if it landed."""
    return _versioned_put(client, (names or table_names()).tokens, TOKEN_KEY, item)


def get_customer(client, customer_id: str, names=None, consistent=True) -> CustomerItem | None:
    raw = client.get_item(
        TableName=(names or table_names()).customers,
        Key={CUSTOMER_KEY: {"S": customer_id}},
        ConsistentRead=consistent,
    ).get("Item")
    return _deserialize(CustomerItem, raw) if raw else None


def get_token(client, token_hash: str, names=None, consistent=True) -> TokenItem | None:
    raw = client.get_item(
        TableName=(names or table_names()).tokens,
        Key={TOKEN_KEY: {"S": token_hash}},
        ConsistentRead=consistent,
    ).get("Item")
    return _deserialize(TokenItem, raw) if raw else None


def _scan(client, table: str) -> Iterator[dict]:
    for page in client.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        yield from page.get("Items", [])


def iter_customers(client, names: TableNames | None = None) -> Iterator[CustomerItem]:
    for raw in _scan(client, (names or table_names()).customers):
        yield _deserialize(CustomerItem, raw)


def iter_tokens(client, names: TableNames | None = None) -> Iterator[TokenItem]:
    for raw in _scan(client, (names or table_names()).tokens):
        yield _deserialize(TokenItem, raw)


# --- usage counters ---------------------------------------------------------------------
# pk "CUST#<customer_id>"; sk "DAY#YYYY-MM-DD", "MONTH#YYYY-MM", "MIN#YYYY-MM-DDTHH:MM",
# and per model "DAY#YYYY-MM-DD#MODEL#<model_id>", "MONTH#YYYY-MM#MODEL#<model_id>".
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


def counter_pk(customer_id: str) -> str:
    return f"CUST#{customer_id}"


def day_sk(day: date, model_id: str | None = None) -> str:
    base = f"DAY#{day.isoformat()}"
    return f"{base}#MODEL#{model_id}" if model_id else base


def month_sk(day: date, model_id: str | None = None) -> str:
    base = f"MONTH#{day.strftime('%Y-%m')}"
    return f"{base}#MODEL#{model_id}" if model_id else base


def minute_sk(minute_iso: str) -> str:
    return f"MIN#{minute_iso}"


def _counter_values(raw: dict) -> dict:
    return {name: int(raw.get(name, {}).get("N", 0)) for name in COUNTER_FIELDS}


def _query_prefix(client, table: str, pk: str, prefix: str) -> list[dict]:
    items = []
    paginator = client.get_paginator("query")
    for page in paginator.paginate(
        TableName=table,
        KeyConditionExpression="#pk = :pk AND begins_with(#sk, :prefix)",
        ExpressionAttributeNames={"#pk": COUNTER_PK, "#sk": COUNTER_SK},
        ExpressionAttributeValues={":pk": {"S": pk}, ":prefix": {"S": prefix}},
    ):
        items.extend(page.get("Items", []))
    return items


def get_usage_snapshot(client, customer_id: str, day: date, names=None) -> dict:
    """Today's and this month's counters for one customer, in total and per model.

    {"day": {...totals}, "month": {...totals}, "day_by_model": {model: {...}},
     "month_by_model": {model: {...}}}; missing counters read as zeros. The month's totals also
    carry `quota_tokens` once the proxy has counted tokens of a priced model. Two Queries.
    """
    table = (names or table_names()).usage_counters
    pk = counter_pk(customer_id)
    empty = dict.fromkeys(COUNTER_FIELDS, 0)
    snapshot = {"day": dict(empty), "month": dict(empty), "day_by_model": {}, "month_by_model": {}}
    for period, prefix in (("day", day_sk(day)), ("month", month_sk(day))):
        for raw in _query_prefix(client, table, pk, prefix):
            sk = raw[COUNTER_SK]["S"]
            if sk == prefix:
                snapshot[period] = _counter_values(raw)
                if QUOTA_TOKENS in raw:  # MONTH#: what the monthly quota is held against
                    snapshot[period][QUOTA_TOKENS] = int(raw[QUOTA_TOKENS]["N"])
            elif sk.startswith(prefix + "#MODEL#"):
                model = sk[len(prefix) + len("#MODEL#") :]
                snapshot[f"{period}_by_model"][model] = _counter_values(raw)
    return snapshot
