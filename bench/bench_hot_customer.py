"""Benchmark: one customer pushing the proxy hard, under DynamoDB's concurrency rules.

The limiter's admission and settlement (proxy/limits.py, proxy/sharded.py, proxy/usage.py: the
real code, not the HTTP handler) with the sandbox model (free: no holds), against
portal.dynamodb_conflicts.ConflictingDynamoDB: transactions hold their items for 15 ms and
cancel each other (TransactionConflict), single writes to one item go one at a time (2-5 ms
each), 1,000 write units a second per item. `apply_at="start"`, and behind the double a light
in-memory store (MemoryDynamoDB, below) instead of moto: moto in process takes 1.3 ms of CPU an
UpdateItem and 4.5 ms a transaction, so at a thousand requests a second it would measure moto.
The conditions, updates and errors are DynamoDB's shapes; the latencies are the double's.

Closed-loop callers spread over 20 simulated Lambda containers (20 ProxyApp instances, each
with its own caches and limiter) for BENCH_HOT_SECONDS (3) each:
  - one customer at 1, 10, 50 and 200 callers, with the transaction (counter_shards 1, the
    admission of every customer until now) and with 16 admission shards;
  - 1,000 customers, 5 callers each (5,000 threads), both ways, for BENCH_HOT_MANY_SECONDS (10):
    5,000 Python threads on two cores wait seconds for the interpreter, so there the latencies
    are the threads' turns more than DynamoDB's, and the comparison is the point.
Nothing is counted before every caller has made its first request (caches read, shards
stamped) and half a second more.
Rows: admitted requests a second, errors (503 after the retries, or a settlement that failed),
admission latency p50 / p99, DynamoDB calls and write units per admitted request.

    .venv/bin/python -m bench.run hot_customer
"""

from __future__ import annotations

import copy
import os
import re
import statistics
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path

import boto3

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from portal.dynamodb_conflicts import ConflictingDynamoDB
from proxy import contract, handler, usage
from proxy.config import Settings
from proxy.errors import ProxyError

SECONDS = float(os.environ.get("BENCH_HOT_SECONDS", "3"))
# 5,000 caller threads on a small machine: each waits seconds for its turn at the interpreter,
# so the window is longer than one request's latency.
MANY_SECONDS = float(os.environ.get("BENCH_HOT_MANY_SECONDS", "10"))
CONTAINERS = 20
SHARDS = 16
MODEL = "sandbox.echo-v1"
COUNTS = {"input_tokens": 12, "output_tokens": 30, "cache_read_tokens": 0, "cache_write_tokens": 0}
# DynamoDB on-demand, us-east-1, since the 1 November 2024 reduction: $0.625 per million write
# request units, $0.125 per million read request units (docs/proxy.md cites the sources).
USD_PER_MILLION_WRITE_UNITS = Decimal("0.625")


# --- a light DynamoDB ----------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(#\w+|:\w+|\(|\)|,|<>|<=|>=|=|<|>|[A-Za-z_]\w*)")


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise ValueError(f"cannot parse {text[pos:]!r}")
        out.append(match.group(1))
        pos = match.end()
    return out


def _num(value: dict):
    return Decimal(value["N"]) if "N" in value else value.get("S")


class _Condition:
    """Recursive descent over the condition grammar the proxy writes."""

    def __init__(self, text, names, values):
        self.tokens, self.pos = _tokens(text), 0
        self.names, self.values = names, values

    def evaluate(self, item) -> bool:
        self.item = item
        result = self._or()
        return result

    def _peek(self):
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self):
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def _or(self):
        value = self._and()
        while self._peek() and self._peek().upper() == "OR":
            self._take()
            right = self._and()
            value = value or right
        return value

    def _and(self):
        value = self._not()
        while self._peek() and self._peek().upper() == "AND":
            self._take()
            right = self._not()
            value = value and right
        return value

    def _not(self):
        if self._peek() and self._peek().upper() == "NOT":
            self._take()
            return not self._not()
        return self._primary()

    def _operand(self):
        token = self._take()
        if token.startswith("#"):
            attr = self.item.get(self.names[token])
            return None if attr is None else _num(attr)
        if token.startswith(":"):
            return _num(self.values[token])
        raise ValueError(f"unexpected {token}")

    def _primary(self):
        token = self._peek()
        if token == "(":
            self._take()
            value = self._or()
            assert self._take() == ")"
            return value
        if token in ("attribute_exists", "attribute_not_exists"):
            self._take()
            assert self._take() == "("
            name = self.names[self._take()]
            assert self._take() == ")"
            return (name in self.item) == (token == "attribute_exists")
        left = self._operand()
        op = self._take()
        right = self._operand()
        if left is None or right is None:
            return op == "<>" and (left is None) != (right is None)
        try:
            return {
                "=": left == right,
                "<>": left != right,
                "<": left < right,
                "<=": left <= right,
                ">": left > right,
                ">=": left >= right,
            }[op]
        except TypeError:
            return False


def _apply_update(item: dict, text: str, names: dict, values: dict) -> None:
    tokens = _tokens(text)
    clause, i = None, 0
    while i < len(tokens):
        token = tokens[i]
        if token.upper() in ("SET", "ADD", "REMOVE"):
            clause, i = token.upper(), i + 1
            continue
        if token == ",":
            i += 1
            continue
        name = names[token]
        if clause == "SET":
            assert tokens[i + 1] == "="
            item[name] = copy.deepcopy(values[tokens[i + 2]])
            i += 3
        elif clause == "ADD":
            add = Decimal(values[tokens[i + 1]]["N"])
            old = Decimal(item[name]["N"]) if name in item else Decimal(0)
            item[name] = {"N": str(old + add)}
            i += 2
        else:
            item.pop(name, None)
            i += 1


class MemoryDynamoDB:
    def __init__(self, region: str = "us-east-1"):
        # A real client for `meta` (the service model) and `exceptions` only: never called.
        self._client = boto3.client(
            "dynamodb",
            region_name=region,
            aws_access_key_id="memory",
            aws_secret_access_key="memory",
        )
        self.meta, self.exceptions = self._client.meta, self._client.exceptions
        self._tables: dict[str, dict] = {}
        self._schemas: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    # --- tables ---------------------------------------------------------------------------

    def create_table(self, TableName, KeySchema, **_):
        self._tables[TableName] = {}
        self._schemas[TableName] = [part["AttributeName"] for part in KeySchema]
        return {}

    def list_tables(self, **_):
        return {"TableNames": list(self._tables)}

    def describe_table(self, TableName):
        keys = self._schemas[TableName]
        schema = [{"AttributeName": keys[0], "KeyType": "HASH"}]
        if len(keys) > 1:
            schema.append({"AttributeName": keys[1], "KeyType": "RANGE"})
        return {"Table": {"TableName": TableName, "KeySchema": schema}}

    def get_waiter(self, _name):
        class _Ready:
            def wait(self, **_):
                return None

        return _Ready()

    def update_time_to_live(self, **_):
        return {}

    def _key(self, table, key: dict) -> tuple:
        return tuple(next(iter(key[name].values())) for name in self._schemas[table])

    # --- errors -----------------------------------------------------------------------------

    def _error(self, operation, code, message, **extra):
        response = {"Error": {"Code": code, "Message": message}, **extra}
        return self.exceptions.from_code(code)(response, operation)

    # --- single items -----------------------------------------------------------------------

    def get_item(self, TableName, Key, **_):
        with self._lock:
            item = self._tables[TableName].get(self._key(TableName, Key))
            return {"Item": copy.deepcopy(item)} if item is not None else {}

    def _check(self, item, kwargs) -> bool:
        text = kwargs.get("ConditionExpression")
        if not text:
            return True
        names = kwargs.get("ExpressionAttributeNames", {})
        values = kwargs.get("ExpressionAttributeValues", {})
        return _Condition(text, names, values).evaluate(item or {})

    def _failed(self, operation, item, kwargs):
        extra = {}
        if kwargs.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and item:
            extra["Item"] = copy.deepcopy(item)
        return self._error(
            operation, "ConditionalCheckFailedException", "The conditional request failed",
            **extra,
        )  # fmt: skip

    def _update(self, table, kwargs) -> None:
        rows = self._tables[table]
        key = self._key(table, kwargs["Key"])
        item = rows.get(key)
        new = copy.deepcopy(item) if item is not None else copy.deepcopy(kwargs["Key"])
        _apply_update(
            new,
            kwargs["UpdateExpression"],
            kwargs.get("ExpressionAttributeNames", {}),
            kwargs.get("ExpressionAttributeValues", {}),
        )
        rows[key] = new

    def update_item(self, **kwargs):
        table = kwargs["TableName"]
        with self._lock:
            item = self._tables[table].get(self._key(table, kwargs["Key"]))
            if not self._check(item, kwargs):
                raise self._failed("UpdateItem", item, kwargs)
            self._update(table, kwargs)
        return {}

    def put_item(self, **kwargs):
        table = kwargs["TableName"]
        key = self._key(table, kwargs["Item"])
        with self._lock:
            item = self._tables[table].get(key)
            if not self._check(item, kwargs):
                raise self._failed("PutItem", item, kwargs)
            self._tables[table][key] = copy.deepcopy(kwargs["Item"])
        return {}

    def delete_item(self, **kwargs):
        table = kwargs["TableName"]
        with self._lock:
            self._tables[table].pop(self._key(table, kwargs["Key"]), None)
        return {}

    # --- transactions -----------------------------------------------------------------------

    def transact_write_items(self, TransactItems, **_):
        with self._lock:
            reasons, failed = [], False
            for action in TransactItems:
                ((kind, body),) = action.items()
                key = body["Key"] if kind != "Put" else body["Item"]
                item = self._tables[body["TableName"]].get(self._key(body["TableName"], key))
                if self._check(item, body):
                    reasons.append({"Code": "None"})
                    continue
                failed = True
                reason = {"Code": "ConditionalCheckFailed", "Message": "The conditional "
                          "request failed"}  # fmt: skip
                if body.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and item:
                    reason["Item"] = copy.deepcopy(item)
                reasons.append(reason)
            if failed:
                codes = ", ".join(r["Code"] for r in reasons)
                raise self._error(
                    "TransactWriteItems",
                    "TransactionCanceledException",
                    f"Transaction cancelled, please refer cancellation reasons for specific "
                    f"reasons [{codes}]",
                    CancellationReasons=reasons,
                )
            for action in TransactItems:
                ((kind, body),) = action.items()
                table = body["TableName"]
                if kind == "Update":
                    self._update(table, body)
                elif kind == "Put":
                    self._tables[table][self._key(table, body["Item"])] = copy.deepcopy(
                        body["Item"]
                    )
        return {}

    # --- reads of many items ----------------------------------------------------------------

    def query(self, TableName, ExpressionAttributeValues, **_):
        pk = ExpressionAttributeValues[":pk"]["S"]
        prefix = ExpressionAttributeValues.get(":prefix", {}).get("S", "")
        with self._lock:
            items = [
                copy.deepcopy(item)
                for (p, s), item in sorted(self._tables[TableName].items())
                if p == pk and s.startswith(prefix)
            ]
        return {"Items": items, "Count": len(items)}

    def batch_get_item(self, RequestItems):
        out = {}
        with self._lock:
            for table, request in RequestItems.items():
                rows = self._tables[table]
                found = [rows.get(self._key(table, key)) for key in request["Keys"]]
                out[table] = [copy.deepcopy(item) for item in found if item is not None]
        return {"Responses": out, "UnprocessedKeys": {}}

    def get_paginator(self, operation):
        store = self

        class _Pages:
            def paginate(self, **kwargs):
                if operation == "query":
                    yield store.query(**kwargs)
                else:  # scan
                    with store._lock:
                        items = copy.deepcopy(list(store._tables[kwargs["TableName"]].values()))
                    yield {"Items": items}

        return _Pages()


# --- the benchmark ---------------------------------------------------------------------------


class _Discard:
    def write(self, text):
        return len(text)

    def flush(self):
        pass


def _account(store, shards: int, **limits) -> tuple[str, str, str]:
    """A customer and one token written through the contract; (token, customer id, token id)."""
    customer = contract.CustomerItem(
        customer_id=str(uuid.uuid4()),
        version=1,
        status="active",
        name="Busy",
        counter_shards=shards,
        **limits,
    )
    contract.put_customer(store, customer)
    token = contract.generate_token()
    item = contract.TokenItem(
        token_hash=contract.hash_token(token),
        version=1,
        token_id=str(uuid.uuid4()),
        customer_id=customer.customer_id,
        display_prefix=token[:8],
        status="active",
        expires_at=int(time.time()) + 3600,
    )
    contract.put_token(store, item)
    return token, customer.customer_id, item.token_id


def _world():
    store = MemoryDynamoDB()
    contract.create_tables(store)
    double = ConflictingDynamoDB(store, apply_at="start", transaction_seconds=0.015)
    settings = Settings(tables=contract.table_names())
    apps = [
        handler.ProxyApp(settings, dynamodb=double, stream=_Discard()) for _ in range(CONTAINERS)
    ]
    return store, double, apps


def _measure(double, apps, accounts: list, callers_each: int, seconds: float) -> dict:
    """Closed loop: `callers_each` callers per account, caller i in container i % 20."""
    stop, measuring = threading.Event(), threading.Event()
    results: list[tuple[int, list, dict]] = []
    lock = threading.Lock()
    warmed = [0]  # callers past their first request (caches read, shards stamped)
    workers = [account for account in accounts for _ in range(callers_each)]

    def caller(index, account):
        token, customer_id, token_id = account
        app = apps[index % len(apps)]
        headers = {"authorization": f"Bearer {token}"}
        admitted, latencies, errors, first_done = 0, [], {}, False
        while not stop.is_set():
            counted = measuring.is_set()
            try:
                principal = app.auth.authenticate(headers, "203.0.113.7")
                started = time.perf_counter()
                admission = app.limiter.admit(
                    principal, lambda _: None, request_id=str(uuid.uuid4())
                )
                took = time.perf_counter() - started
                usage.record_success(
                    app.dynamodb, app.settings.tables, customer_id, admission, MODEL, COUNTS,
                    token_id,
                )  # fmt: skip
            except ProxyError as exc:
                if counted:
                    errors[exc.code] = errors.get(exc.code, 0) + 1
                continue
            except Exception as exc:  # a settlement that failed
                if counted:
                    name = type(exc).__name__
                    errors[name] = errors.get(name, 0) + 1
                continue
            if counted:
                admitted += 1
                latencies.append(took)
            elif not first_done:
                first_done = True
                with lock:
                    warmed[0] += 1
        with lock:
            results.append((admitted, latencies, errors))

    threads = [
        threading.Thread(target=caller, args=(i, account), daemon=True)
        for i, account in enumerate(workers)
    ]
    for thread in threads:
        thread.start()
    # Warm: every caller past its first request (its container's caches read, the shards
    # stamped), then a moment more; only then is anything counted.
    deadline = time.monotonic() + 30
    while warmed[0] < len(workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    double.reset_stats()
    measuring.set()
    started = time.perf_counter()
    time.sleep(seconds)
    elapsed = time.perf_counter() - started
    stats = double.stats()
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    admitted = sum(r[0] for r in results)
    latencies = sorted(x for r in results for x in r[1])
    errors: dict = {}
    for _, _, errs in results:
        for code, n in errs.items():
            errors[code] = errors.get(code, 0) + n
    calls = sum(stats["calls"].values())
    units = sum(stats["write_units"].values())
    return {
        "rps": admitted / elapsed,
        "admitted": admitted,
        "errors": errors,
        "p50": statistics.median(latencies) * 1000 if latencies else 0.0,
        "p99": latencies[int(len(latencies) * 0.99) - 1] * 1000 if len(latencies) > 1 else 0.0,
        "calls": calls / admitted if admitted else 0.0,
        "units": units / admitted if admitted else 0.0,
        "conflicts": stats["conflicts"],
    }


def _detail(result: dict) -> str:
    errors = sum(result["errors"].values())
    named = ", ".join(f"{n} {c}" for c, n in sorted(result["errors"].items()))
    usd = Decimal(str(round(result["units"], 2))) * USD_PER_MILLION_WRITE_UNITS
    return (
        f"{errors} errors{f' ({named})' if named else ''} in {result['admitted']:,} admitted; "
        f"admission p50 {result['p50']:.1f} / p99 {result['p99']:.1f} ms; "
        f"{result['calls']:.2f} DynamoDB calls and {result['units']:.1f} write units a request "
        f"(${usd:.2f} a million requests on demand); {result['conflicts']:,} conflicts; "
        "ConflictingDynamoDB apply_at=start over an in-memory store (not moto), limiter "
        "admission + settlement measured (not the HTTP handler)"
    )


def _rows(label: str, result: dict, goal: str = "", met=None) -> list[dict]:
    row = {"name": f"{label}: admitted requests a second", "value": f"{result['rps']:,.0f}",
           "unit": "req/s", "goal": goal}  # fmt: skip
    if met is not None:
        row["met"] = met
    detail = {"name": f"{label}: errors, latency, calls, cost", "value": _detail(result),
              "unit": "", "goal": "0 errors" if goal else ""}  # fmt: skip
    if goal:
        detail["met"] = not result["errors"]
    return [row, detail]


def run() -> list[dict]:
    rows = []
    limits = {"daily_request_limit": 10**9, "rpm_limit": 10**8}
    for design, shards in (("transaction", 1), (f"{SHARDS} admission shards", SHARDS)):
        for callers in (1, 10, 50, 200):
            _, double, apps = _world()
            account = _account(double._client, shards, **limits)
            result = _measure(double, apps, [account], callers, SECONDS)
            who = "1 caller" if callers == 1 else f"{callers} callers"
            label = f"one customer, {who} in 20 containers, {design}"
            goal, met = "", None
            if callers == 200 and shards > 1:
                goal = ">= 1,000 req/s, 0 errors"
                met = result["rps"] >= 1000 and not result["errors"]
            rows += _rows(label, result, goal, met)
            print(f"   {label}: {result['rps']:,.0f} req/s; {_detail(result)}", flush=True)
    customers = int(os.environ.get("BENCH_HOT_CUSTOMERS", "1000"))
    many = {}
    for design, shards in (("transaction", 1), (f"{SHARDS} admission shards", SHARDS)):
        _, double, apps = _world()
        accounts = [_account(double._client, shards, **limits) for _ in range(customers)]
        result = _measure(double, apps, accounts, 5, MANY_SECONDS)
        many[shards] = result
        label = f"{customers:,} customers, 5 callers each, {design}"
        rows += _rows(label, result)
        print(f"   {label}: {result['rps']:,.0f} req/s; {_detail(result)}", flush=True)
    rows.append(
        {
            "name": f"{customers:,} customers x 5 callers: sharded no worse than the transaction",
            "value": f"{many[SHARDS]['rps']:,.0f} vs {many[1]['rps']:,.0f}",
            "unit": "req/s",
            "goal": "sharded >= 95 % of the transaction's, 0 errors",
            "met": many[SHARDS]["rps"] >= 0.95 * many[1]["rps"] and not many[SHARDS]["errors"],
        }
    )
    return rows


if __name__ == "__main__":
    for r in run():
        print(f"| {r['name']} | {r['value']} | {r['unit']} | {r['goal']} | {r.get('met', '')} |")
