"""The embedded AWS emulator (moto's threaded server) as `make run`, the tests and the
benchmarks start it, with DynamoDB's per-request atomicity restored.

moto applies a DynamoDB write as read-modify-write without a lock, and a TransactWriteItems
by copying each table it touches and putting the copies back when a condition fails. Under
concurrent requests that loses updates: 40 concurrent two-item ADD transactions ended at 39,
and a daily limit of 13 admitted 14. DynamoDB itself applies every request atomically (and a
transaction serialisably), and the proxy's limits rely on it. `make_dynamodb_atomic()` puts one
lock around each request of moto's DynamoDB backend, in this process: the writes (PutItem,
UpdateItem, DeleteItem, TransactWriteItems; BatchWriteItem is a PutItem or DeleteItem per item,
as in DynamoDB, where a batch is not atomic either; PartiQL statements) and the reads (GetItem,
Query, Scan), which would otherwise see half a transaction, or a table changing under them.
It serialises the emulator's own bookkeeping only: the decisions are still the conditions'.

Only the portal side imports this (runstack, tests, bench): the proxy Lambda never does.
"""

from __future__ import annotations

import functools
import threading
import time

# DynamoDBBackend methods that each run under the lock. transact_write_items calls put_item,
# update_item and delete_item, and execute_transaction calls execute_statement: an RLock.
LOCKED_METHODS = (
    "put_item",
    "update_item",
    "delete_item",
    "transact_write_items",
    "execute_statement",
    "execute_transaction",
    "batch_execute_statement",
    "get_item",
    "query",
    "scan",
)

_lock = threading.RLock()
_installed = threading.Lock()


# DynamoDB applies a TransactWriteItems carrying a ClientRequestToken once, however often it
# is sent within 10 minutes (botocore re-sends a call whose answer timed out); moto ignores the
# token, so under load a retried admission counted twice.
TOKEN_LIFETIME_SECONDS = 600
_applied_tokens: dict[str, float] = {}


def _idempotent_transactions(handler_class) -> None:
    original = handler_class.transact_write_items
    if getattr(original, "_idempotent", False):
        return

    @functools.wraps(original)
    def transact_write_items(self, _original=original):
        token = self.body.get("ClientRequestToken") if isinstance(self.body, dict) else None
        if not token:
            return _original(self)
        with _lock:
            now = time.monotonic()
            for seen, at in list(_applied_tokens.items()):
                if now - at > TOKEN_LIFETIME_SECONDS:
                    del _applied_tokens[seen]
            if token in _applied_tokens:  # already applied: the same answer, nothing done again
                from moto.core.responses import ActionResult

                return ActionResult({"ConsumedCapacity": [], "ItemCollectionMetrics": {}})
            answer = _original(self)
            _applied_tokens[token] = now  # only once it applied: a cancelled one may retry
            return answer

    transact_write_items._idempotent = True
    handler_class.transact_write_items = transact_write_items


def _require_moto() -> None:
    """moto comes with the `run` extra, which the production image does not install."""
    try:
        import moto  # noqa: F401
    except ImportError as missing:
        raise ImportError(
            "The embedded AWS emulator needs moto, from the `run` extra: make install "
            "(or pip install --require-hashes -r requirements/run.txt)."
        ) from missing


def make_dynamodb_atomic() -> None:
    """Serialise moto's DynamoDB requests in this process, and apply a transaction sent again
    with the same ClientRequestToken once, as DynamoDB does. Idempotent."""
    _require_moto()
    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler

    with _installed:
        _idempotent_transactions(DynamoHandler)
        for name in LOCKED_METHODS:
            original = getattr(DynamoDBBackend, name)
            if getattr(original, "_atomic", False):
                continue

            @functools.wraps(original)
            def locked(self, *args, _original=original, **kwargs):
                with _lock:
                    return _original(self, *args, **kwargs)

            locked._atomic = True
            setattr(DynamoDBBackend, name, locked)


def start(port: int):
    """moto's ThreadedMotoServer on 127.0.0.1:`port` (0: any free port), started, with atomic
    DynamoDB. `server.stop()` stops it."""
    _require_moto()
    from moto.server import ThreadedMotoServer

    make_dynamodb_atomic()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    return server
