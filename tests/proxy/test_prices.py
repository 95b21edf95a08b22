"""Model prices at the edge (proxy/prices.py): price items read back through the contract,
switching at a scheduled change, aliases and inference profiles, hostile items, the cache, and
a call's cost in integer micro-units against hand-worked examples."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import pytest
from botocore.exceptions import EndpointConnectionError

from proxy import contract, models, prices

from .test_limits import count_calls

HAIKU = "anthropic.claude-3-haiku-20240307-v1:0"
JAN_2024 = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp())
JULY_2027 = int(datetime(2027, 7, 1, tzinfo=UTC).timestamp())


def rates(effective_from=JAN_2024, inp=250, out=1250, cache_read=None, cache_write=None, req=0):
    return contract.PriceRates(
        effective_from=effective_from,
        input_per_1k=inp,
        output_per_1k=out,
        cache_read_per_1k=inp if cache_read is None else cache_read,
        cache_write_per_1k=inp if cache_write is None else cache_write,
        per_request=req,
    )


def put(dynamodb, model_id=HAIKU, version=1, current=None, upcoming=None, currency="USD"):
    item = contract.PriceItem(
        model_id=model_id,
        version=version,
        currency=currency,
        current=current if current is not None else rates(),
        next=upcoming,
    )
    assert contract.put_price(dynamodb, item)
    return item


class CountingClient:
    """The moto client, counting the calls made through it."""

    def __init__(self, client):
        self.client, self.calls = client, []

    def __getattr__(self, name):
        attr = getattr(self.client, name)
        if name in ("get_item", "scan", "query", "batch_get_item"):
            self.calls.append(name)
        return attr

    def get_paginator(self, name):
        self.calls.append(name)
        return self.client.get_paginator(name)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


# --- cost arithmetic (no DynamoDB) -------------------------------------------------------

HAIKU_PRICE = prices.Price(HAIKU, "USD", 250, 1250, 250, 250)  # $0.00025 / $0.00125 per 1K


def test_claude_3_haiku_1000_in_and_500_out_cost_875_micro_dollars():
    # 1,000 x $0.00025/1K = $0.00025 = 250; 500 x $0.00125/1K = $0.000625 = 625.
    assert prices.cost_micros(HAIKU_PRICE, {"input_tokens": 1000, "output_tokens": 500}) == 875


def test_cost_is_rounded_up_once_to_the_micro_unit():
    # 1 input token of Haiku is 0.25 micro-dollars: charged 1, never 0.
    assert prices.cost_micros(HAIKU_PRICE, {"input_tokens": 1}) == 1
    # 3 + 1 tokens: 0.75 + 1.25 = 2.0 exactly, summed before rounding (not 1 + 2 = 3).
    assert prices.cost_micros(HAIKU_PRICE, {"input_tokens": 3, "output_tokens": 1}) == 2
    # 7 output tokens: 8.75 -> 9.
    assert prices.cost_micros(HAIKU_PRICE, {"output_tokens": 7}) == 9
    assert prices.cost_micros(HAIKU_PRICE, {}) == 0


def test_cache_tokens_and_the_per_request_price():
    # Claude 3.5 Sonnet style: $3 in, $15 out, $0.30 cache read, $3.75 cache write per 1M,
    # i.e. 3,000 / 15,000 / 300 / 3,750 micro-dollars per 1K; plus $0.001 per request.
    price = prices.Price("m", "USD", 3000, 15000, 300, 3750, per_request=1000)
    usage = {
        "input_tokens": 2000,  # 6,000
        "output_tokens": 100,  # 1,500
        "cache_read_tokens": 10_000,  # 3,000
        "cache_write_tokens": 1000,  # 3,750
    }
    assert prices.cost_micros(price, usage) == 6000 + 1500 + 3000 + 3750 + 1000
    assert prices.cost_micros(price, {**usage, "requests": 3}) == 14_250 + 3000


def test_a_hold_prices_every_held_token_at_the_highest_price():
    # 4,096 tokens held at Haiku's output price: 4,096 x 1.25 = 5,120.
    assert prices.hold_micros(HAIKU_PRICE, 4096) == 5120
    assert prices.hold_micros(HAIKU_PRICE, 1) == 2  # 1.25 -> 2
    assert prices.hold_micros(HAIKU_PRICE, 0) == 0
    # A hold is never below the cost of any usage of as many tokens.
    for usage in ({"input_tokens": 4096}, {"output_tokens": 4096}, {"input_tokens": 4000}):
        assert prices.cost_micros(HAIKU_PRICE, usage) <= prices.hold_micros(HAIKU_PRICE, 4096)
    odd = prices.Price("m", "USD", 100, 200, 50, 300, per_request=7)  # cache write highest
    assert prices.hold_micros(odd, 10) == 3 + 7


def test_free_models_cost_nothing():
    free = prices.Price(models.SANDBOX_MODEL_ID, "", 0, 0, 0, 0)
    assert free.is_free
    assert prices.cost_micros(free, {"input_tokens": 10**9, "output_tokens": 10**9}) == 0
    assert prices.hold_micros(free, 10**9) == 0


def test_arithmetic_is_integer_only_even_for_huge_counts():
    price = prices.Price("m", "USD", contract.PRICE_MICROS_LIMIT, contract.PRICE_MICROS_LIMIT, 0, 0)
    cost = prices.cost_micros(price, {"input_tokens": 10**15 + 1})
    assert isinstance(cost, int)
    assert cost == (10**15 + 1) * 10**9  # exact: a float would have lost the + 1


@pytest.mark.parametrize("bad", [-1, 1.5, "10", True, None])
def test_usage_counts_must_be_whole_and_not_negative(bad):
    with pytest.raises(ValueError, match="input_tokens"):
        prices.cost_micros(HAIKU_PRICE, {"input_tokens": bad})
    with pytest.raises(ValueError, match="token_hold"):
        prices.hold_micros(HAIKU_PRICE, bad)


# --- items and the reader ------------------------------------------------------------------


def test_an_item_round_trips_and_the_put_is_conditional_on_its_version(dynamodb):
    item = put(dynamodb, version=3, upcoming=rates(JULY_2027, inp=200, out=1000))
    assert contract.get_price(dynamodb, HAIKU) == item
    older = contract.PriceItem(HAIKU, 2, "USD", rates(inp=1, out=1))
    assert contract.put_price(dynamodb, older) is False  # a late delivery
    assert contract.put_price(dynamodb, item) is False  # a replay
    assert contract.get_price(dynamodb, HAIKU).current.input_per_1k == 250
    assert contract.get_price(dynamodb, "no.such-model") is None


@pytest.mark.parametrize(
    "item",
    [
        contract.PriceItem(HAIKU, 1, "USD", rates(inp=-1)),
        contract.PriceItem(HAIKU, 1, "USD", rates(out=contract.PRICE_MICROS_LIMIT + 1)),
        contract.PriceItem(HAIKU, 1, "USD", rates(inp=2.5)),
        contract.PriceItem(HAIKU, 1, "usd", rates()),
        contract.PriceItem(HAIKU, 1, "USD", rates(JULY_2027), rates(JAN_2024)),
        contract.PriceItem(HAIKU, 0, "USD", rates()),
    ],
    ids=["negative", "huge", "fraction", "currency", "next-before-current", "version-0"],
)
def test_the_writer_refuses_what_a_reader_would_not_read(dynamodb, item):
    with pytest.raises(ValueError, match="price item"):
        contract.put_price(dynamodb, item)
    assert contract.get_price(dynamodb, HAIKU) is None


def test_a_scheduled_change_switches_at_its_instant_without_a_read(dynamodb):
    put(dynamodb, upcoming=rates(JULY_2027, inp=200, out=1000))
    clock = Clock()
    counting = CountingClient(dynamodb)
    reader = prices.PriceReader(counting, ttl_seconds=60, clock=clock)
    before = reader.price_at(HAIKU, now=JULY_2027 - 1)
    at = reader.price_at(HAIKU, now=JULY_2027)
    after = reader.price_at(HAIKU, now=datetime(2027, 8, 1, tzinfo=UTC))
    assert (before.input_per_1k, before.output_per_1k, before.effective_from) == (
        250,
        1250,
        JAN_2024,
    )
    assert (at.input_per_1k, at.output_per_1k, at.effective_from) == (200, 1000, JULY_2027)
    assert after == at
    assert counting.calls == ["scan"]  # one read for all three
    # Before the first price took effect the model had no price (the item does not say).
    assert reader.price_at(HAIKU, now=JAN_2024 - 1) is None


def test_aliases_and_inference_profiles_resolve_to_their_models_price(dynamodb):
    put(dynamodb)
    put(dynamodb, model_id="amazon.nova-lite-v1:0", current=rates(inp=60, out=240))
    reader = prices.PriceReader(dynamodb)
    expected = reader.price_at(HAIKU)
    assert expected.input_per_1k == 250 and expected.currency == "USD"
    for name in (
        "haiku",
        "claude-3-haiku",
        "us.anthropic.claude-3-haiku-20240307-v1:0",
        "eu.anthropic.claude-3-haiku-20240307-v1:0",
        "apac.anthropic.claude-3-haiku-20240307-v1:0",
        "global.anthropic.claude-3-haiku-20240307-v1:0",
    ):
        assert reader.price_at(name) == expected, name
    assert reader.price_at("nova-lite").output_per_1k == 240
    assert reader.price_at("us.amazon.nova-lite-v1:0").output_per_1k == 240
    assert models.priced_as("us.anthropic.claude-3-haiku-20240307-v1:0") == HAIKU
    assert models.priced_as("haiku") == HAIKU


def test_unpriced_models_are_none_and_free_models_cost_zero(dynamodb):
    put(dynamodb)
    reader = prices.PriceReader(dynamodb)
    assert reader.price_at("anthropic.claude-3-opus-20240229-v1:0") is None
    assert reader.price_at("") is None and reader.price_at(None) is None
    for free in ("sandbox", models.SANDBOX_MODEL_ID, models.EMBED_SANDBOX_MODEL_ID):
        price = reader.price_at(free)
        assert price.is_free and prices.cost_micros(price, {"input_tokens": 50}) == 0
    # An item without prices (its model left the price book): no price.
    assert contract.put_price(dynamodb, contract.PriceItem("old.model-v1", 2, "USD", None, None))
    assert prices.PriceReader(dynamodb).price_at("old.model-v1") is None


def _raw(**overrides):
    item = {
        "model_id": {"S": HAIKU},
        "version": {"N": "7"},
        "schema_version": {"N": str(contract.PRICE_SCHEMA_VERSION)},
        "currency": {"S": "USD"},
        "current": {
            "M": {
                "effective_from": {"N": str(JAN_2024)},
                "input_per_1k": {"N": "250"},
                "output_per_1k": {"N": "1250"},
                "cache_read_per_1k": {"N": "250"},
                "cache_write_per_1k": {"N": "250"},
                "per_request": {"N": "0"},
            }
        },
        "next": {"NULL": True},
    }
    item.update(overrides)
    return item


def _rate(name, value):
    raw = _raw()["current"]
    raw["M"][name] = value
    return raw


HOSTILE = {
    "negative": {"current": _rate("input_per_1k", {"N": "-250"})},
    "huge": {"current": _rate("output_per_1k", {"N": "1" + "0" * 37})},
    "fraction": {"current": _rate("input_per_1k", {"N": "0.25"})},
    "string": {"current": _rate("input_per_1k", {"S": "250"})},
    "missing-price": {"current": {"M": {"effective_from": {"N": str(JAN_2024)}}}},
    "not-a-map": {"current": {"S": "250"}},
    "list": {"current": {"L": [{"N": "250"}]}},
    "bool": {"current": _rate("per_request", {"BOOL": True})},
    "no-currency": {"currency": {"NULL": True}},
    "currency-number": {"currency": {"N": "840"}},
    "other-schema": {"schema_version": {"N": "99"}},
    "no-schema": {"schema_version": {"NULL": True}},
    "version-text": {"version": {"S": "7"}},
    "version-huge": {"version": {"N": str(2**64)}},
    "epoch-huge": {"current": _rate("effective_from", {"N": "9" * 30})},
    "next-not-after": {"next": _raw()["current"]},
}


@pytest.mark.parametrize("overrides", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_item_is_treated_as_missing_and_never_crashes(dynamodb, overrides, caplog):
    caplog.set_level(logging.WARNING, logger="proxy.prices")  # whatever earlier tests left
    names = contract.table_names()
    dynamodb.put_item(TableName=names.prices, Item=_raw(**overrides))
    put(dynamodb, model_id="amazon.nova-lite-v1:0", current=rates(inp=60, out=240))
    read = contract.get_price(dynamodb, HAIKU)
    assert isinstance(read, contract.UnreadablePriceItem)
    assert read.model_id == HAIKU and read.problem
    reader = prices.PriceReader(dynamodb)
    assert reader.price_at(HAIKU) is None
    assert reader.price_at("haiku") is None
    # The other models are read as usual, and the problem is logged once.
    assert reader.price_at("nova-lite").input_per_1k == 60
    reader.refresh()
    logged = [r for r in caplog.records if "unreadable" in r.getMessage()]
    assert len(logged) == 1 and HAIKU in logged[0].getMessage()


def test_the_raw_item_reads():
    assert contract.read_price_item(_raw()) == contract.PriceItem(HAIKU, 7, "USD", rates())
    assert isinstance(contract.read_price_item({}), contract.UnreadablePriceItem)
    assert isinstance(contract.read_price_item("junk"), contract.UnreadablePriceItem)


def test_prices_are_read_once_per_ttl_and_a_change_is_seen_after_it(dynamodb):
    put(dynamodb, version=1)
    clock = Clock()
    counting = CountingClient(dynamodb)
    reader = prices.PriceReader(counting, ttl_seconds=60, clock=clock)
    for _ in range(5):
        assert reader.price_at("haiku").input_per_1k == 250
    assert counting.calls == ["scan"]
    put(dynamodb, version=2, current=rates(inp=300, out=1500))
    clock.now += 59
    assert reader.price_at("haiku").input_per_1k == 250  # within the bound
    clock.now += 1
    assert reader.price_at("haiku").input_per_1k == 300
    assert counting.calls == ["scan", "scan"]
    no_cache = prices.PriceReader(counting, ttl_seconds=0, clock=clock)
    no_cache.price_at("haiku")
    no_cache.price_at("haiku")
    assert counting.calls == ["scan"] * 4


class Failing:
    def __init__(self, client):
        self.client, self.down = client, False

    def get_paginator(self, name):
        if self.down:
            raise EndpointConnectionError(endpoint_url="http://127.0.0.1:9")
        return self.client.get_paginator(name)


def test_a_failed_refresh_keeps_the_prices_read_before(dynamodb):
    put(dynamodb)
    clock = Clock()
    flaky = Failing(dynamodb)
    reader = prices.PriceReader(flaky, ttl_seconds=60, clock=clock)
    assert reader.price_at("haiku").input_per_1k == 250
    flaky.down = True
    clock.now += 61
    assert reader.price_at("haiku").input_per_1k == 250  # the copy held, no error
    flaky.down = False
    put(dynamodb, version=2, current=rates(inp=300, out=1500))
    clock.now += prices.RETRY_AFTER_FAILURE_SECONDS
    assert reader.price_at("haiku").input_per_1k == 300


def test_with_nothing_read_yet_a_failure_is_the_callers_to_answer(dynamodb):
    flaky = Failing(dynamodb)
    flaky.down = True
    with pytest.raises(EndpointConnectionError):
        prices.PriceReader(flaky).price_at("haiku")


def test_with_nothing_read_a_failed_store_is_not_asked_again_for_a_few_seconds(dynamodb):
    put(dynamodb)
    clock = Clock()
    flaky = Failing(dynamodb)
    flaky.down = True
    reader = prices.PriceReader(flaky, clock=clock)
    reads = count_calls(dynamodb)
    for _ in range(3):
        with pytest.raises(EndpointConnectionError):
            reader.price_at("haiku")
    flaky.down = False
    with pytest.raises(EndpointConnectionError):  # still within the pause: no read
        reader.price_at("haiku")
    assert reads == []
    clock.now += prices.RETRY_AFTER_FAILURE_SECONDS
    assert reader.price_at("haiku").input_per_1k == 250
    assert reads == ["Scan"]


def test_the_settings_read_the_cache_bound(monkeypatch):
    from proxy import config

    assert config.load().price_cache_seconds == 60
    monkeypatch.setenv("PROXY_PRICE_CACHE_SECONDS", "15")
    monkeypatch.setenv("PRICES_TABLE", "other_prices")
    settings = config.load()
    assert settings.price_cache_seconds == 15
    assert settings.tables.prices == "other_prices"
