"""A DynamoDB client for tests and benchmarks that conflicts and throttles as DynamoDB does.

moto applies every request at once and in order (portal/emulator.py even puts one lock around
each), so a test against it cannot show what DynamoDB does to a hot customer: transactions on
the same items cancel each other, and a hot item stops accepting writes past its ceiling.
`ConflictingDynamoDB(client)` wraps a real botocore DynamoDB client (moto in process under
`mock_aws`, or the emulator's server) and applies DynamoDB's documented concurrency rules in
front of it; the data itself, and every condition, is still the wrapped client's.

The model (`item` = table + full primary key):

- **A TransactWriteItems holds every item it touches** (Put, Update, Delete and ConditionCheck
  items alike) while it is in flight, `transaction_seconds` (15 ms by default; a (low, high)
  pair draws each transaction's time uniformly, e.g. (0.010, 0.025)). Then it is applied through
  the wrapped client, so its conditions are evaluated by the real logic, and its items are
  released: they are held for `transaction_seconds` plus the wrapped client's own time to
  apply the transaction (`stats()["hold_seconds_mean"]`; moto in process takes several
  ms, more when short of CPU). `apply_at="start"` applies first and holds the items for the rest
  of `transaction_seconds`, so the hold is the configured latency however slow the emulator is
  (conditions are then evaluated when the transaction starts, as DynamoDB's prepare does, and a
  GetItem sees its writes a little early). A TransactWriteItems that touches an item
  held by another one is cancelled and applies nothing: `TransactionCanceledException`,
  `CancellationReasons` in request order, `TransactionConflict` for the held items and `None`
  for the others.
  Developer Guide, "Transaction conflict handling": "An item within a TransactWriteItems request
  is part of another ongoing TransactWriteItems request" is a conflict, and "If any item-level
  request within TransactWriteItems ... is rejected, the request fails with a
  TransactionCanceledException".
- **A PutItem, UpdateItem or DeleteItem on a held item fails** with
  `TransactionConflictException` ("A PutItem, UpdateItem, or DeleteItem request for an item
  conflicts with an ongoing TransactWriteItems request that includes the same item"; "When a
  PutItem, UpdateItem, or DeleteItem request is rejected, the request fails with a
  TransactionConflictException"). A GetItem is not refused: "If an ongoing TransactWriteItems
  ... conflicts with a concurrent GetItem request, both operations can succeed"; it reads the
  last committed value.
- **Single-item writes to one item are applied one at a time**: DynamoDB applies each
  PutItem/UpdateItem/DeleteItem atomically on the item's latest version (Developer Guide, "Best
  practices for handling concurrent updates": "Individual write operations such as UpdateItem
  are atomic and always operate on the most recent version of the item"). Here each item has
  a queue, and a write holds it for `write_seconds` (uniform 2-5 ms by default). A transaction
  applying its items waits for a write already under way on one of them.
- **Up to about 1,000 write units per second per item** (`item_write_ceiling`). DynamoDB
  documents 1,000 WCU per second per partition ("as long as the traffic against a given
  partition key does not exceed 3000 read capacity units or 1000 write capacity units",
  "Best practices for designing and using partition keys effectively"; on-demand tables
  included: "Each partition on the table can serve up to 3,000 read request units or 1,000
  write request units"). `ceiling_scope="item"` (default) counts per item, as if every hot item
  had been split onto a partition of its own; `"partition"` counts all items that share a
  partition key value, the bound before DynamoDB splits a hot partition. A write counts 1 unit
  (every item this project writes is under 1 KB; the double does not read items to size them)
  and each item of a transaction 2 ("DynamoDB performs two underlying reads or writes of every
  item in the transaction: one to prepare the transaction and one to commit the transaction",
  "Capacity management for transactions"; a ConditionCheck item too, measured at 2 write units
  against DynamoDB: martinhicks.dev/articles/what-a-conditional-dynamodb-transaction-costs).
  A failed conditional write still counts ("If the expression evaluates to false, DynamoDB
  will still consume write capacity units"); a refused one (throttled, conflicting) does not.
  Over the ceiling the write is throttled:
  `throttle_code="ThrottlingException"` (default: what an on-demand table answers for a hot
  key) or `"ProvisionedThroughputExceededException"` (a provisioned table), with
  `ThrottlingReasons` `TableWriteKeyRangeThroughputExceeded`; a transaction over the ceiling is
  cancelled with reason `ThrottlingError` (on-demand) or `ProvisionedThroughputExceeded`.
  Reads are not throttled unless `item_read_ceiling` is set (GetItem only: 1 unit strongly
  consistent, 0.5 eventually consistent; DynamoDB's figure is 3,000 per partition).
- Errors are raised to the caller directly: the double sits in front of the client, so
  botocore's own retries do not see them. botocore's standard mode retries ThrottlingException
  and ProvisionedThroughputExceededException, not TransactionConflictException nor
  TransactionCanceledException: `throttle_retries=3` replays the proxy's client
  (`retries={"max_attempts": 3, "mode": "standard"}`) for throttled single-item calls, waiting
  rand(0, 1) * min(`throttle_backoff` * 2 ** i, 20) seconds as botocore does (`throttle_backoff`
  is 1 s there). The default, 0, raises the first throttle.
- BatchWriteItem, TransactGetItems, Scan and PartiQL go to the wrapped client unmodelled
  (`__getattr__`); nothing in this project sends them on the request path.

The latencies are assumptions (typical figures), not documented constants; the rules, codes and
messages are DynamoDB's. Error responses are parsed by botocore's own JSON parser from the body
DynamoDB sends, so `exc.response` has the real shape (`Error`, `CancellationReasons`,
`ThrottlingReasons`/`throttlingReasons`) and the exception is the client's modelled class
(`client.exceptions.TransactionCanceledException`, ...).

Sources (AWS Amazon DynamoDB Developer Guide / API Reference):
- transaction-apis.html#transaction-conflict-handling and #transaction-capacity-handling
- API_TransactWriteItems.html and the TransactionCanceledException / CancellationReason shapes
  (botocore data/dynamodb service-2.json): codes `None`, `ConditionalCheckFailed`,
  `TransactionConflict` "Transaction is ongoing for the item.", `ThrottlingError`
  "Throughput exceeds the current capacity of your table or index. ..." ("returned when writes
  get throttled on an On-Demand table"), `ProvisionedThroughputExceeded`; `None` has no message
- bp-partition-key-design.html, HowItWorks.Partitions.html,
  throttling-key-range-limit-exceeded-mitigation.html (key range throttling "affecting both
  provisioned and on-demand modes"), API_ThrottlingReason.html
- read-write-operations.html (1 write unit per write of up to 1 KB; failed conditions count)
- BestPractices_ImplementingVersionControl.html
- the on-demand hot-key answer to a PutItem as seen in the field: `ThrottlingException:
  Throughput exceeds the current capacity of your table or index. ...`
  (github.com/praetorian-inc/chariot-ui/issues/684, github.com/cowinapi/developer.cowin/issues/151)

Only the portal side imports this (tests, benchmarks): the proxy Lambda never does.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, deque
from contextlib import ExitStack, contextmanager

from botocore import parsers

CONFLICT_MESSAGE = "Transaction is ongoing for the item"
ON_DEMAND_THROTTLE_MESSAGE = (
    "Throughput exceeds the current capacity of your table or index. DynamoDB is automatically "
    "scaling your table or index so please try again shortly. If exceptions persist, check if "
    "you have a hot key: "
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html"
)
PROVISIONED_THROTTLE_MESSAGE = (
    "The level of configured provisioned throughput for the table was exceeded. Consider "
    "increasing your provisioning level with the UpdateTable API."
)
# throttle_code -> (cancellation reason code, message, name of the reasons member in the body)
THROTTLES = {
    "ThrottlingException": ("ThrottlingError", ON_DEMAND_THROTTLE_MESSAGE, "throttlingReasons"),
    "ProvisionedThroughputExceededException": (
        "ProvisionedThroughputExceeded",
        PROVISIONED_THROTTLE_MESSAGE,
        "ThrottlingReasons",
    ),
}
_TYPE_PREFIX = "com.amazonaws.dynamodb.v20120810#"
_WINDOW = 1.0  # seconds: the ceilings are per second
_MAX_BACKOFF = 20.0  # botocore's cap on one retry's wait


class ConflictingDynamoDB:
    """See the module docstring. Thread-safe; share one instance between all the callers that
    play "one DynamoDB" (one per test or benchmark)."""

    def __init__(
        self,
        client,
        *,
        transaction_seconds: float | tuple[float, float] = 0.015,
        write_seconds: float | tuple[float, float] = (0.002, 0.005),
        item_write_ceiling: float | None = 1000.0,
        item_read_ceiling: float | None = None,
        ceiling_scope: str = "item",
        throttle_code: str = "ThrottlingException",
        apply_at: str = "end",
        throttle_retries: int = 0,
        throttle_backoff: float = 1.0,
        queue_timeout: float = 30.0,
        clock=time.monotonic,
        sleep=time.sleep,
        rng: random.Random | None = None,
    ):
        if throttle_code not in THROTTLES:
            raise ValueError(f"throttle_code must be one of {sorted(THROTTLES)}")
        if ceiling_scope not in ("item", "partition"):
            raise ValueError("ceiling_scope must be 'item' or 'partition'")
        if apply_at not in ("end", "start"):
            raise ValueError("apply_at must be 'end' or 'start'")
        self._client = client
        self.transaction_seconds, self.write_seconds = transaction_seconds, write_seconds
        self.item_write_ceiling, self.item_read_ceiling = item_write_ceiling, item_read_ceiling
        self.ceiling_scope, self.throttle_code = ceiling_scope, throttle_code
        self.apply_at = apply_at
        self.throttle_retries, self.throttle_backoff = throttle_retries, throttle_backoff
        self.queue_timeout = queue_timeout
        self._clock, self._sleep = clock, sleep
        self._rng = rng or random.Random()  # noqa: S311 (latency jitter, not security)
        self._mutex = threading.Lock()
        self._held: dict[tuple, object] = {}  # item -> the transaction holding it
        self._queues: dict[tuple, _ItemQueue] = {}  # item -> its single-write queue
        self._windows: dict[tuple, tuple[deque, list]] = {}  # (kind, scope) -> (entries, [sum])
        self._schemas: dict[str, list[tuple[str, str]]] = {}
        self._parser = parsers.create_parser("json")  # DynamoDB speaks awsJson1_0
        self.reset_stats()

    # --- the client's surface ------------------------------------------------------------

    def __getattr__(self, name):
        if name.startswith("_"):  # our own state, never the client's (copy, pickle, __init__)
            raise AttributeError(name)
        return getattr(self._client, name)

    def transact_write_items(self, **kwargs):
        actions = kwargs.get("TransactItems") or []
        items = [self._action_item(action) for action in actions]
        token = object()
        with self._mutex:
            self._calls["TransactWriteItems"] += 1
            self._counts["transactions_attempted"] += 1
            held = [item in self._held for item in items]
            if any(held):
                self._counts["transactions_cancelled"] += 1
                self._counts["cancelled_by_conflict"] += 1
                self._counts["conflicts"] += 1
                raise self._cancelled(
                    [
                        {"Code": "TransactionConflict", "Message": CONFLICT_MESSAGE}
                        if is_held
                        else {"Code": "None"}
                        for is_held in held
                    ]
                )
            now = self._clock()
            need: Counter = Counter(self._scope(item) for item in items)
            short = {
                scope
                for scope, units in need.items()
                if not self._has_room("write", scope, 2 * units, now)
            }
            if short:
                self._counts["transactions_cancelled"] += 1
                self._counts["cancelled_by_throttle"] += 1
                self._counts["throttles"] += 1
                reason_code, message, _ = THROTTLES[self.throttle_code]
                raise self._cancelled(
                    [
                        {"Code": reason_code, "Message": message}
                        if self._scope(item) in short
                        else {"Code": "None"}
                        for item in items
                    ]
                )
            for item in items:
                self._held[item] = token
                self._charge("write", item, 2, now)
        started, hold = time.perf_counter(), self._draw(self.transaction_seconds)
        try:
            if self.apply_at == "end":
                self._sleep(hold)  # in flight: prepare, commit
            with self._queued(items):
                result = self._client.transact_write_items(**kwargs)
            if self.apply_at == "start":  # held for the rest of `hold`, the apply included
                self._sleep(max(0.0, hold - (time.perf_counter() - started)))
        except BaseException as exc:
            code = getattr(exc, "response", {}).get("Error", {}).get("Code")
            with self._mutex:
                if code == "TransactionCanceledException":  # by the real logic: a condition
                    self._counts["transactions_cancelled"] += 1
                    self._counts["cancelled_by_condition"] += 1
                else:
                    self._counts["transactions_failed"] += 1
            raise
        finally:
            held_for = time.perf_counter() - started
            with self._mutex:
                for item in items:
                    if self._held.get(item) is token:
                        del self._held[item]
                self._holds["count"] += 1
                self._holds["total"] += held_for
                self._holds["max"] = max(self._holds["max"], held_for)
        with self._mutex:
            self._counts["transactions_committed"] += 1
        return result

    def update_item(self, **kwargs):
        item = self._item(kwargs["TableName"], kwargs["Key"])
        return self._single_write("UpdateItem", self._client.update_item, kwargs, item)

    def put_item(self, **kwargs):
        item = self._item_of(kwargs["TableName"], kwargs["Item"])
        return self._single_write("PutItem", self._client.put_item, kwargs, item)

    def delete_item(self, **kwargs):
        item = self._item(kwargs["TableName"], kwargs["Key"])
        return self._single_write("DeleteItem", self._client.delete_item, kwargs, item)

    def get_item(self, **kwargs):
        if self.item_read_ceiling is None:
            with self._mutex:
                self._calls["GetItem"] += 1
            return self._client.get_item(**kwargs)
        item = self._item(kwargs["TableName"], kwargs["Key"])
        units = 1.0 if kwargs.get("ConsistentRead") else 0.5
        return self._with_throttle_retries(lambda: self._read_once(item, units, kwargs))

    def batch_get_item(self, **kwargs):
        with self._mutex:
            self._calls["BatchGetItem"] += 1
        return self._client.batch_get_item(**kwargs)

    def query(self, **kwargs):
        with self._mutex:
            self._calls["Query"] += 1
        return self._client.query(**kwargs)

    # --- inspection ------------------------------------------------------------------------

    def stats(self) -> dict:
        """A snapshot: transactions attempted = committed + cancelled + failed; cancelled =
        by_conflict + by_throttle + by_condition; conflicts = transactions cancelled by a
        conflict + single-item writes refused with TransactionConflictException. `hold_seconds_*`:
        how long transactions really held their items (transaction_seconds plus the wrapped
        client's time to apply them, which grows when the emulator is short of CPU)."""
        with self._mutex:
            out = dict(self._counts)
            out["calls"] = dict(self._calls)
            out["write_units"] = dict(self._write_units)
            out["peak_write_units_per_second"] = dict(self._peaks)
            holds = self._holds
            out["hold_seconds_mean"] = holds["total"] / holds["count"] if holds["count"] else 0.0
            out["hold_seconds_max"] = holds["max"]
            return out

    def in_flight(self) -> list[str]:
        """The items held by transactions in flight right now, as `table[key=value, ...]`."""
        with self._mutex:
            return sorted(_label(item) for item in self._held)

    def reset_stats(self) -> None:
        """Zero every counter (items in flight, queues and ceiling windows are left as they are)."""
        names = (
            "transactions_attempted",
            "transactions_committed",
            "transactions_cancelled",
            "transactions_failed",
            "cancelled_by_conflict",
            "cancelled_by_throttle",
            "cancelled_by_condition",
            "conflicts",
            "write_conflicts",
            "throttles",
        )
        with self._mutex:
            self._counts = dict.fromkeys(names, 0)
            self._calls: Counter = Counter()
            self._write_units: Counter = Counter()  # item label -> units
            self._peaks: dict[str, float] = {}  # ceiling scope label -> most units in a second
            self._holds = {"count": 0, "total": 0.0, "max": 0.0}  # wall time items were held

    # --- single-item writes --------------------------------------------------------------

    def _single_write(self, operation, method, kwargs, item):
        return self._with_throttle_retries(
            lambda: self._write_once(operation, method, kwargs, item)
        )

    def _write_once(self, operation, method, kwargs, item):
        with self._queued([item]):  # one at a time per item
            with self._mutex:
                self._calls[operation] += 1
                if item in self._held:
                    self._counts["conflicts"] += 1
                    self._counts["write_conflicts"] += 1
                    raise self._error(
                        operation, "TransactionConflictException", {"message": CONFLICT_MESSAGE}
                    )
                now = self._clock()
                if not self._has_room("write", self._scope(item), 1, now):
                    self._counts["throttles"] += 1
                    raise self._throttled(operation, item, "Write")
                self._charge("write", item, 1, now)
            self._sleep(self._draw(self.write_seconds))
            return method(**kwargs)

    def _read_once(self, item, units, kwargs):
        with self._mutex:
            self._calls["GetItem"] += 1
            now = self._clock()
            if not self._has_room("read", self._scope(item), units, now):
                self._counts["throttles"] += 1
                raise self._throttled("GetItem", item, "Read")
            self._charge("read", item, units, now)
        return self._client.get_item(**kwargs)

    def _with_throttle_retries(self, call):
        for attempt in range(self.throttle_retries + 1):
            try:
                return call()
            except Exception as exc:
                code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                if code != self.throttle_code or attempt == self.throttle_retries:
                    raise
                wait = min(self.throttle_backoff * 2**attempt, _MAX_BACKOFF)
                self._sleep(self._rng.random() * wait)
        raise AssertionError("unreachable")  # pragma: no cover

    @contextmanager
    def _queued(self, items):
        """Wait for the items' single-write queues. A transaction takes its place in every one
        of its items' lines at the same moment (tickets handed out under one mutex, so in one
        global order), then waits to be served in each: it waits only for writers that came
        before it, so waits never go round in a circle, and it is never overtaken by later
        single writes. (Holding one queue while only then joining the next let a transaction
        that stamps a shard keep the customer's queue while it waited behind the callers' writes
        on a busy shard; waiting for every queue to be idle at once starved the portal's
        writes for a minute under 200 callers.) A queue times out only when it stops moving."""
        with self._mutex:
            queues = [self._queues.setdefault(item, _ItemQueue()) for item in sorted(set(items))]
            tickets = [queue.ticket() for queue in queues]
        with ExitStack() as stack:
            for index, (queue, ticket) in enumerate(zip(queues, tickets, strict=True)):
                if not queue.wait(ticket, timeout=self.queue_timeout):
                    for later in range(index + 1, len(queues)):
                        queues[later].give_up(tickets[later])
                    raise TimeoutError("an item's write queue did not move within queue_timeout")
                stack.callback(queue.release)
            yield

    # --- ceilings ----------------------------------------------------------------------------

    def _ceiling(self, kind):
        return self.item_write_ceiling if kind == "write" else self.item_read_ceiling

    def _window(self, kind, scope, now):
        entries, total = self._windows.setdefault((kind, scope), (deque(), [0.0]))
        while entries and entries[0][0] <= now - _WINDOW:
            total[0] -= entries.popleft()[1]
        return entries, total

    def _has_room(self, kind, scope, units, now) -> bool:
        ceiling = self._ceiling(kind)
        if ceiling is None:
            return True
        _, total = self._window(kind, scope, now)
        return total[0] + units <= ceiling

    def _charge(self, kind, item, units, now) -> None:
        scope = self._scope(item)
        entries, total = self._window(kind, scope, now)
        entries.append((now, units))
        total[0] += units
        if kind == "write":
            self._write_units[_label(item)] += units
            label = _label(scope)
            self._peaks[label] = max(self._peaks.get(label, 0.0), total[0])

    def _scope(self, item):
        if self.ceiling_scope == "item":
            return item
        table, key = item
        hash_name = next(name for name, kind in self._schema(table) if kind == "HASH")
        return table, tuple(part for part in key if part[0] == hash_name)

    # --- items -----------------------------------------------------------------------------

    def _schema(self, table) -> list[tuple[str, str]]:
        schema = self._schemas.get(table)
        if schema is None:
            described = self._client.describe_table(TableName=table)["Table"]["KeySchema"]
            schema = [(part["AttributeName"], part["KeyType"]) for part in described]
            self._schemas[table] = schema
        return schema

    def _item(self, table, key: dict) -> tuple:
        if self.ceiling_scope == "partition":
            self._schema(table)  # read here, outside the mutex, where _scope needs it
        return table, tuple(
            sorted((name, json.dumps(value, sort_keys=True)) for name, value in key.items())
        )

    def _item_of(self, table, attributes: dict) -> tuple:
        return self._item(table, {name: attributes[name] for name, _ in self._schema(table)})

    def _action_item(self, action: dict) -> tuple:
        if "Put" in action:
            return self._item_of(action["Put"]["TableName"], action["Put"]["Item"])
        (body,) = (
            action[kind] for kind in ("Update", "Delete", "ConditionCheck") if kind in action
        )
        return self._item(body["TableName"], body["Key"])

    # --- errors, as botocore parses DynamoDB's answers ------------------------------------

    def _error(self, operation: str, code: str, body: dict):
        service = self._client.meta.service_model
        response = {
            "status_code": 400,
            "headers": {"x-amzn-requestid": f"conflicting-{threading.get_ident()}"},
            "body": json.dumps({"__type": _TYPE_PREFIX + code, **body}).encode(),
        }
        parsed = self._parser.parse(response, service.operation_model(operation).output_shape)
        shape = service.shape_for_error_code(code)
        if shape is not None:
            parsed.update(self._parser.parse(response, shape))
        return self._client.exceptions.from_code(code)(parsed, operation)

    def _cancelled(self, reasons: list[dict]):
        codes = ", ".join(reason["Code"] for reason in reasons)
        message = (
            "Transaction cancelled, please refer cancellation reasons for specific reasons "
            f"[{codes}]"
        )
        body = {"Message": message, "CancellationReasons": reasons}
        return self._error("TransactWriteItems", "TransactionCanceledException", body)

    def _throttled(self, operation, item, kind):
        _, message, member = THROTTLES[self.throttle_code]
        table = item[0]
        region = self._client.meta.region_name or "us-east-1"
        reason = {
            "reason": f"Table{kind}KeyRangeThroughputExceeded",
            "resource": f"arn:aws:dynamodb:{region}:123456789012:table/{table}",
        }
        return self._error(operation, self.throttle_code, {"message": message, member: [reason]})

    def _draw(self, spec) -> float:
        if isinstance(spec, tuple):
            return self._rng.uniform(*spec)
        return float(spec)


class _ItemQueue:
    """One item's single-write queue: first come, first served (a ticket each), so a writer
    waits for the writers ahead of it and no longer. `acquire` gives up only when the queue has
    not moved (no writer finished) for `timeout` seconds: a stuck item, not a busy one. (A plain
    lock is not fair: under a short CPU, a writer could lose the race to newcomers for 30 s while
    the item kept accepting writes, and fail with a TimeoutError no DynamoDB would raise.)"""

    def __init__(self) -> None:
        self._moved = threading.Condition(threading.Lock())
        self._next = 0  # the next ticket to hand out
        self._serving = 0  # the ticket that holds the item (== _next: free)
        self._abandoned: set[int] = set()

    def ticket(self) -> int:
        """A place in the line (taken under the double's mutex, so that every queue hands out
        tickets in one global order and waiting on them can never go round in a circle)."""
        with self._moved:
            ticket, self._next = self._next, self._next + 1
            return ticket

    def wait(self, ticket: int, timeout: float) -> bool:
        """Wait until `ticket` holds the item; False (the ticket given up) when the queue did
        not move for `timeout` seconds."""
        with self._moved:
            seen, deadline = self._serving, time.monotonic() + timeout
            while self._serving != ticket:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self._abandoned.add(ticket)
                    return False
                self._moved.wait(remaining)
                if self._serving != seen:  # a writer finished: the queue moves
                    seen, deadline = self._serving, time.monotonic() + timeout
            return True

    def give_up(self, ticket: int) -> None:
        """A ticket no longer wanted, whether or not it holds the item yet."""
        with self._moved:
            if self._serving == ticket:
                self._advance()
            else:
                self._abandoned.add(ticket)

    def release(self) -> None:
        with self._moved:
            self._advance()

    def _advance(self) -> None:
        self._serving += 1
        while self._serving in self._abandoned:  # those who gave up are skipped
            self._abandoned.discard(self._serving)
            self._serving += 1
        self._moved.notify_all()


def _label(item) -> str:
    table, key = item
    parts = []
    for name, value in key:
        (plain,) = json.loads(value).values()
        parts.append(f"{name}={plain}")
    return f"{table}[{', '.join(parts)}]"
