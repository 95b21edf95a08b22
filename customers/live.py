"""Live usage beside customers and tokens on the customers pages, without customers reading usage.

The customer list shows this month's tokens, spend and share of the quota, a customer's page its
spend against its monthly budget, and the token lists each token's last use, from the proxy's
counters. Reading those counters is the usage app's
work (usage/counters.py), and customers does not import usage (docs/architecture.md), so usage
registers its readers here when it starts (usage/apps.py). Without them the pages show the
customers and tokens without live figures.
"""

from collections.abc import Callable

_month_usage: Callable | None = None  # (customers) -> {"error", "currency", "rows": {pk: {...}}}
_last_use: Callable | None = None  # (tokens) -> the tokens, each with `last_use`
_budget: Callable | None = None  # (customer) -> {"monthly_budget", "month_spend", "error", ...}


def readers_register(
    *, month_usage: Callable | None, last_use: Callable | None, budget: Callable | None
) -> None:
    """Set (or, with None, remove) the functions that read the live figures."""
    global _month_usage, _last_use, _budget
    _month_usage, _last_use, _budget = month_usage, last_use, budget


def month_usage(customers) -> dict:
    """This month's live figures of a page of customers (the staff customer list)."""
    if _month_usage is None:
        return {"error": "", "currency": "", "rows": {}}
    return _month_usage(customers)


def with_last_use(tokens) -> list:
    """The tokens, each with `last_use` (the proxy's live record, else the nightly import's)."""
    if _last_use is not None:
        return _last_use(tokens)
    tokens = list(tokens)
    for token in tokens:
        token.last_use = token.last_used_at
    return tokens


def budget(customer) -> dict:
    """The customer's monthly budget and this month's spend so far (its staff page)."""
    if _budget is None:
        return {"monthly_budget": customer.monthly_budget, "month_spend": None, "error": ""}
    return _budget(customer)
