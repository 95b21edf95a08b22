"""Many customers' counters are read in batches of 100 keys, several batches at once, with
throttled keys (UnprocessedKeys) read again."""

import threading

from usage import counters

from .conftest import put_counter


def test_every_key_of_many_batches_is_read(dynamodb):
    keys = []
    for n in range(250):
        put_counter(dynamodb, f"c{n}", "DAY#2026-11-24", requests=n, input_tokens=2 * n)
        keys.append((f"CUST#c{n}", "DAY#2026-11-24"))
    keys.append(("CUST#nobody", "DAY#2026-11-24"))  # no item: zeros
    calls, threads = [], set()

    def count(**kwargs):
        calls.append(len(kwargs["params"]["RequestItems"][counters.counters_table_name()]["Keys"]))
        threads.add(threading.get_ident())

    dynamodb.meta.events.register("before-parameter-build.dynamodb.BatchGetItem", count)

    totals = counters.read_counters(keys + keys[:10], client=dynamodb)  # duplicates read once

    assert sorted(calls) == [51, 100, 100]
    assert len(threads) > 1  # the batches went out at once
    assert len(totals) == 251
    assert totals[("CUST#c249", "DAY#2026-11-24")].requests == 249
    assert totals[("CUST#c7", "DAY#2026-11-24")].input_tokens == 14
    assert totals[("CUST#nobody", "DAY#2026-11-24")] == counters.CounterTotals()


class _Throttling:
    """Answers like DynamoDB under throttling: the first call returns half the keys unread."""

    def __init__(self, client):
        self.client, self.calls = client, 0

    def batch_get_item(self, RequestItems):
        self.calls += 1
        if self.calls == 1:
            ((table, request),) = RequestItems.items()
            keys = request["Keys"]
            done = self.client.batch_get_item(
                RequestItems={table: {**request, "Keys": keys[: len(keys) // 2]}}
            )
            return {**done, "UnprocessedKeys": {table: {**request, "Keys": keys[len(keys) // 2 :]}}}
        return self.client.batch_get_item(RequestItems=RequestItems)


def test_unprocessed_keys_are_read_again(dynamodb):
    for n in range(10):
        put_counter(dynamodb, f"c{n}", "MONTH#2026-11", requests=1, input_tokens=n)
    keys = [(f"CUST#c{n}", "MONTH#2026-11") for n in range(10)]
    client = _Throttling(dynamodb)

    totals = counters.read_counters(keys, client=client)

    assert client.calls == 2
    assert [totals[k].input_tokens for k in keys] == list(range(10))
