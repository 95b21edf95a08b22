"""Cost beside usage on the usage pages, without the usage app knowing prices.

Imports go one way, customers <- usage <- billing: billing prices usage, usage never imports
billing. So billing hands its pricing in: its AppConfig.ready() registers a function here
(billing.selectors.usage_cost_for_customer), and the usage views ask for costs through
`usage_costs`. Without billing installed the pages show tokens only.
"""

import datetime as dt
from collections.abc import Callable

# (customer_id=, start=, end=, by=) -> {"rows": {key: {"cost", "unpriced_tokens"}}, "total",
# "currency", "unpriced_tokens"}: list price, Decimal amounts.
CostFunction = Callable[..., dict]

_cost_function: CostFunction | None = None


def cost_function_register(function: CostFunction | None) -> None:
    """Set (or, with None, remove) the function that prices a customer's usage."""
    global _cost_function
    _cost_function = function


def usage_costs(*, customer_id, start: dt.date, end: dt.date, by: str) -> dict | None:
    """The list-price cost of a customer's usage of [start, end] per value of `by`, or None
    when nothing prices usage."""
    if _cost_function is None:
        return None
    return _cost_function(customer_id=customer_id, start=start, end=end, by=by)
