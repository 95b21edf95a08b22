"""The auth cache: bounded LRU with TTL; a warm container reads neither item per request."""

from proxy.auth import TTLCache

from .conftest import chat, event


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_lru_evicts_the_least_recently_used():
    cache = TTLCache(2, 60)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recent
    cache.put("c", 3)
    assert cache.get("b") is None and cache.get("a") == 1 and cache.get("c") == 3
    assert len(cache) == 2


def test_entries_expire_after_the_ttl():
    clock = Clock()
    cache = TTLCache(10, 5, clock=clock)
    cache.put("a", 1)
    clock.now = 4.9
    assert cache.get("a") == 1
    clock.now = 5.0
    assert cache.get("a") is None


def test_none_is_never_cached():
    cache = TTLCache(10, 5)
    cache.put("a", None)
    assert len(cache) == 0


def test_warm_requests_do_not_read_the_items(app, dynamodb, principal):
    token = principal[0]
    reads = []
    dynamodb.meta.events.register(
        "before-call.dynamodb",
        lambda model, **kw: reads.append(model.name) if model.name == "GetItem" else None,
    )
    app.handle(event(chat(), token=token))
    assert len(reads) == 2  # cold: token, then customer
    for _ in range(5):
        app.handle(event(chat(), token=token))
    assert len(reads) == 2
