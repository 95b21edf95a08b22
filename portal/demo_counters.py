"""The proxy's live counters of the demo customers, for `make run`.

The demo's usage (portal/demo_usage.py) is imported through the real pipeline, but the pages'
"this month" and "today" figures (the staff customer list's spend, tokens and % of quota, the
live totals) read the proxy's counters in DynamoDB, which only real calls fill. So when the
stack starts, and the emulator holds the demo customers (synced from the database), this writes
their counter items as the proxy would have left them:

- this month's MONTH item (requests, tokens, `quota_tokens` of priced models, `spend_micros`
  at the price the proxy reads from its price items) and its per-model items, from the demo's
  usage imported for this month's finished days plus today's demo calls so far;
- today's DAY item and its per-model items, from today's demo calls so far (the same
  deterministic calls the demo writes to the day's file once the day is over).

Keys, attribute names and pricing are the proxy's own (proxy/contract.py, proxy/prices.py, as
proxy/usage.py settles a call). Each item is written only if absent: a second start adds
nothing, and a counter the proxy already keeps (real calls) is never overwritten.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from django.db.models import Sum

from core.aws import aws_client
from customers.models import Customer
from proxy import contract, models
from proxy import prices as proxy_prices
from proxy.limits import DAY_TTL
from usage.models import UsageDaily

TOKEN_FIELDS = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")


def _moment(timestamp: str) -> dt.datetime:
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))


def _today_calls(customers, now: dt.datetime, *, of) -> list[dict]:
    """Today's demo calls made by `now` of the customers in `of` (usage events in the
    proxy's format; `customers` is every demo customer, in the demo's order)."""
    from portal.demo_usage import day_events

    calls = []
    for index, customer in enumerate(customers):
        if customer.pk not in of:
            continue
        token_id = customer.tokens.order_by("created_at").values_list("id", flat=True).first()
        for event in day_events(customer, str(token_id or ""), index, now.date()):
            moment = _moment(event["timestamp"])
            if moment <= now:
                calls.append({**event, "requests": 1, "customer_pk": customer.pk, "moment": moment})
    return calls


def _finished_days(customers, today: dt.date) -> list[dict]:
    """This month's imported usage of the customers, per customer, day and model."""
    rows = (
        UsageDaily.objects.filter(
            customer__in=customers, day__gte=today.replace(day=1), day__lt=today
        )
        .values("customer_id", "day", "model_id")
        .annotate(requests=Sum("requests"), **{f: Sum(f) for f in TOKEN_FIELDS})
        .order_by("customer_id", "day", "model_id")
    )
    return [{**row, "customer_pk": row["customer_id"], "moment": _noon(row["day"])} for row in rows]


def _noon(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(12), tzinfo=dt.UTC)


def counter_items(customers, *, of, now: dt.datetime, price_at) -> dict[tuple[str, str], dict]:
    """{(pk, sk): {attribute: count}}: the MONTH and DAY items, and their per-model items, of
    the customers whose pk is in `of`."""
    today = now.date()
    items: dict[tuple[str, str], dict] = defaultdict(lambda: defaultdict(int))
    today_calls = _today_calls(customers, now, of=of)
    chosen = [c for c in customers if c.pk in of]
    for usage, is_today in [(r, False) for r in _finished_days(chosen, today)] + [
        (c, True) for c in today_calls
    ]:
        pk, model_id = contract.counter_pk(str(usage["customer_pk"])), usage["model_id"]
        counts = {"requests": int(usage["requests"])}
        counts.update({f: int(usage.get(f) or 0) for f in TOKEN_FIELDS})
        price = price_at(model_id, usage["moment"])
        month = items[(pk, contract.month_sk(today))]
        for name, value in counts.items():
            month[name] += value
            items[(pk, contract.month_sk(today, model_id))][name] += value
            if is_today:
                items[(pk, contract.day_sk(today))][name] += value
                items[(pk, contract.day_sk(today, model_id))][name] += value
        if not models.is_free(model_id):
            month[contract.QUOTA_TOKENS] += counts["input_tokens"] + counts["output_tokens"]
        if price is not None:
            month[contract.SPEND_MICROS] += proxy_prices.cost_micros(price, counts)
    return {key: dict(values) for key, values in items.items()}


def _put_if_absent(client, table: str, key: tuple[str, str], values: dict, ttl: int) -> bool:
    item = {contract.COUNTER_PK: {"S": key[0]}, contract.COUNTER_SK: {"S": key[1]}}
    item.update({name: {"N": str(int(value))} for name, value in values.items()})
    if key[1].startswith("DAY#"):
        item[contract.TTL_ATTRIBUTE] = {"N": str(ttl)}
    try:
        client.put_item(
            TableName=table,
            Item=item,
            ConditionExpression="attribute_not_exists(#pk)",
            ExpressionAttributeNames={"#pk": contract.COUNTER_PK},
        )
    except client.exceptions.ConditionalCheckFailedException:
        return False
    return True


def demo_counters_write(*, customers, now: dt.datetime | None = None, client=None) -> int:
    """Write the demo customers' counter items that are absent; returns how many were written.
    Only the customers the emulator holds (a customer not synced yet has no counters)."""
    now = now or dt.datetime.now(dt.UTC)
    client = client or aws_client("dynamodb")
    tables = contract.table_names()
    customers = list(customers)
    synced = {c.pk for c in customers if contract.get_customer(client, str(c.pk), tables)}
    if not synced:
        return 0
    reader = proxy_prices.PriceReader(client, tables, ttl_seconds=3600)
    items = counter_items(customers, of=synced, now=now, price_at=reader.price_at)
    ttl = int(now.timestamp()) + DAY_TTL
    return sum(
        _put_if_absent(client, tables.usage_counters, key, values, ttl)
        for key, values in items.items()
    )


def demo_customers() -> list:
    from portal.management.commands.seed_demo import DEMO_CUSTOMERS

    by_name = {c.name: c for c in Customer.objects.filter(name__in=[n for n, _ in DEMO_CUSTOMERS])}
    return [by_name[name] for name, _ in DEMO_CUSTOMERS if name in by_name]
