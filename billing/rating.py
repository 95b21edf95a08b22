"""Rating: one customer's aggregated usage for a period + a plan -> invoice lines.

No database access here: the invoice run and the cost-so-far pages load usage in one grouped
query each and hand the rows to `rate_usage`. Every line amount is rounded once, here.

Which lines each plan kind produces:
- per_token: one usage line per model (and per price period when a price changed mid-month):
  price-book cost x (1 + markup %).
- per_request: one line per model: requests x the plan's per-request price (the model's own
  per-request price from the price book when the plan's is 0).
- tiered / package / subscription: the plan prices the month's total of its metric (requests or
  thousands of tokens, all models together), so lines are per charge: one per tier reached
  (graduated) or one (volume); the packages; the fee and the overage.
- any plan: a minimum-commitment top-up line when the usage lines come to less.

Rated lines are never negative: a usage row with a negative count, or terms that would produce a
negative charge, stop rating with a PricingError (the invoice run adds the customer and plan).
"""

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from . import pricing
from .pricing import TokenPrice, TokenUsage, round_money


@dataclass(frozen=True)
class UsageRow:
    model_id: str
    price_from: date | None
    usage: TokenUsage


@dataclass
class LineDraft:
    kind: str
    description: str
    amount: Decimal
    model_id: str = ""
    quantity: Decimal = Decimal(0)
    unit: str = ""
    unit_price: Decimal | None = None


@dataclass(frozen=True)
class PlanTerms:
    """The fields of a PricingPlan that rating needs, so rating never touches the ORM."""

    kind: str = "per_token"
    name: str = "Pay as you go"
    metric: str = "requests"
    markup_percent: Decimal = Decimal(0)
    per_request_price: Decimal = Decimal(0)
    tier_mode: str = "graduated"
    tiers: list = field(default_factory=list)
    monthly_fee: Decimal = Decimal(0)
    included_units: int = 0
    overage_unit_price: Decimal = Decimal(0)
    package_size: int = 0
    package_price: Decimal = Decimal(0)
    minimum_commitment: Decimal | None = None

    @classmethod
    def from_plan(cls, plan) -> "PlanTerms":
        """The terms of a stored plan, checked with the plan rule (pricing.plan_problems): a
        plan stored before the rule, or written around it, is refused here, by name, instead of
        billing a negative amount or failing later on a NaN."""
        problems = pricing.plan_problems(plan)
        if problems:
            raise pricing.PricingError(
                f"Plan {plan.name!r} cannot be applied: {pricing.plan_problems_text(problems)}"
            )
        return cls(
            kind=plan.kind,
            name=plan.name,
            metric=plan.metric,
            markup_percent=plan.markup_percent,
            per_request_price=plan.per_request_price,
            tier_mode=plan.tier_mode or "graduated",
            tiers=plan.tiers or [],
            monthly_fee=plan.monthly_fee,
            included_units=plan.included_units,
            overage_unit_price=plan.overage_unit_price,
            package_size=plan.package_size,
            package_price=plan.package_price,
            minimum_commitment=plan.minimum_commitment,
        )


FREE = TokenPrice(Decimal(0), Decimal(0))


def _name(model_id: str, names: dict[str, str]) -> str:
    base = pricing.price_model_id(model_id)
    name = names.get(base)
    if not name:
        return model_id
    return name if base == model_id else f"{name} ({model_id.split('.', 1)[0]} profile)"


def _price(prices, model_id: str, price_from):
    return prices.get((pricing.price_model_id(model_id), price_from))


def metric_quantity(rows: list[UsageRow], metric: str) -> int:
    """The month's total of the plan's metric. Thousands of tokens are counted in whole
    thousands, rounded up (a started thousand counts), like Bedrock's per-1K prices suggest."""
    if metric == "kilotokens":
        tokens = sum(r.usage.total_tokens for r in rows)
        return -(-tokens // 1000)
    return sum(r.usage.requests for r in rows)


def _per_token_lines(rows, prices, names, terms) -> list[LineDraft]:
    lines = []
    many_periods = len({(r.model_id, r.price_from) for r in rows}) > len({r.model_id for r in rows})
    for row in rows:
        price = _price(prices, row.model_id, row.price_from)
        label = _name(row.model_id, names)
        if price is None:
            price = FREE
            label += " (no price in the price book: review before issuing)"
        elif many_periods and row.price_from:
            label += f" (price from {row.price_from:%Y-%m-%d})"
        u = row.usage
        detail = f"{u.input_tokens:,} input, {u.output_tokens:,} output tokens"
        if u.cache_read_tokens or u.cache_write_tokens:
            detail += f", {u.cache_read_tokens:,} cache read, {u.cache_write_tokens:,} cache write"
        amount = round_money(pricing.token_cost(u, price, terms.markup_percent))
        lines.append(
            LineDraft(
                kind="usage",
                model_id=row.model_id,
                description=f"{label}: {detail}",
                quantity=Decimal(u.total_tokens),
                unit="tokens",
                amount=amount,
            )
        )
    return lines


def _per_request_lines(rows, prices, names, terms) -> list[LineDraft]:
    by_model: dict[str, list[UsageRow]] = {}
    for row in rows:
        by_model.setdefault(row.model_id, []).append(row)
    lines = []
    for model_id, model_rows in by_model.items():
        requests = sum(r.usage.requests for r in model_rows)
        if terms.per_request_price:
            amount = pricing.per_request_charge(requests, terms.per_request_price)
            unit_price = terms.per_request_price
        else:
            amount = sum(
                (
                    r.usage.requests * (_price(prices, model_id, r.price_from) or FREE).per_request
                    for r in model_rows
                ),
                Decimal(0),
            )
            unit_price = None
        lines.append(
            LineDraft(
                kind="usage",
                model_id=model_id,
                description=f"{_name(model_id, names)}: {requests:,} requests",
                quantity=Decimal(requests),
                unit="requests",
                unit_price=unit_price,
                amount=round_money(amount),
            )
        )
    return lines


def _unit_label(metric: str) -> str:
    return "1K tokens" if metric == "kilotokens" else "requests"


def _tiered_lines(quantity: int, terms: PlanTerms) -> list[LineDraft]:
    tiers = pricing.parse_tiers(terms.tiers)
    unit = _unit_label(terms.metric)
    if terms.tier_mode == "volume":
        charge = pricing.volume_charge(quantity, tiers)
        charges = [charge] if charge else []
    else:
        charges = pricing.graduated_charge(quantity, tiers)
    lines = []
    lower = 0
    for c in charges:
        tier = tiers[c.tier_index]
        if terms.tier_mode == "volume":
            span = f"all {c.quantity:,} {unit} at tier {c.tier_index + 1}"
        else:
            top = "" if tier.up_to is None else f"{tier.up_to:,}"
            span = f"tier {c.tier_index + 1} ({lower + 1:,}-{top}): {c.quantity:,} {unit}"
            lower = tier.up_to or lower
        lines.append(
            LineDraft(
                kind="tier",
                description=f"{terms.name}, {span}",
                quantity=Decimal(c.quantity),
                unit=unit,
                unit_price=c.unit_price,
                amount=round_money(c.amount),
            )
        )
    return lines


def _package_lines(quantity: int, terms: PlanTerms) -> list[LineDraft]:
    packages, amount = pricing.package_charge(quantity, terms.package_size, terms.package_price)
    if not packages:
        return []
    unit = _unit_label(terms.metric)
    return [
        LineDraft(
            kind="package",
            description=f"{terms.name}: {packages:,} x package of {terms.package_size:,} {unit}"
            f" ({quantity:,} used)",
            quantity=Decimal(packages),
            unit="packages",
            unit_price=terms.package_price,
            amount=round_money(amount),
        )
    ]


def _subscription_lines(quantity: int, terms: PlanTerms) -> list[LineDraft]:
    charge = pricing.subscription_charge(
        quantity,
        monthly_fee=terms.monthly_fee,
        included=terms.included_units,
        overage_unit_price=terms.overage_unit_price,
    )
    unit = _unit_label(terms.metric)
    lines = [
        LineDraft(
            kind="subscription",
            description=f"{terms.name}: monthly fee, {terms.included_units:,} {unit} included"
            f" ({quantity:,} used)",
            quantity=Decimal(1),
            unit="month",
            unit_price=charge.fee,
            amount=round_money(charge.fee),
        )
    ]
    if charge.overage_quantity:
        lines.append(
            LineDraft(
                kind="overage",
                description=f"Overage: {charge.overage_quantity:,} {unit} beyond the allowance",
                quantity=Decimal(charge.overage_quantity),
                unit=unit,
                unit_price=terms.overage_unit_price,
                amount=round_money(charge.overage_amount),
            )
        )
    return lines


def rate_usage(
    rows: list[UsageRow],
    *,
    terms: PlanTerms,
    prices: dict[tuple[str, date], TokenPrice],
    names: dict[str, str] | None = None,
) -> list[LineDraft]:
    names = names or {}
    _refuse_negative_usage(rows)
    rows = sorted(rows, key=lambda r: (_name(r.model_id, names), r.price_from or date.min))
    if terms.kind == "per_token":
        lines = _per_token_lines(rows, prices, names, terms)
    elif terms.kind == "per_request":
        lines = _per_request_lines(rows, prices, names, terms)
    else:
        quantity = metric_quantity(rows, terms.metric)
        if terms.kind == "tiered":
            lines = _tiered_lines(quantity, terms)
        elif terms.kind == "package":
            lines = _package_lines(quantity, terms)
        elif terms.kind == "subscription":
            lines = _subscription_lines(quantity, terms)
        else:
            raise pricing.PricingError(f"Unknown plan kind {terms.kind!r}.")
    subtotal = sum((line.amount for line in lines), Decimal(0))
    topup = pricing.minimum_commitment_topup(subtotal, terms.minimum_commitment)
    if topup:
        lines.append(
            LineDraft(
                kind="minimum",
                description=f"Minimum commitment of {terms.minimum_commitment} (usage {subtotal})",
                quantity=Decimal(1),
                amount=round_money(topup),
            )
        )
    for line in lines:
        if line.amount < 0 or line.quantity < 0:
            raise pricing.PricingError(
                f"Rating gave a negative line ({line.description}: {line.quantity} {line.unit},"
                f" {line.amount}); plan {terms.name!r} or its usage must be corrected."
            )
    return lines


USAGE_COUNTS = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
)


def _refuse_negative_usage(rows: list[UsageRow]) -> None:
    """The import quarantines negative counts (usage/quarantine.py); a row written around it
    (SQL, a script) must not bill a negative line."""
    for row in rows:
        u = row.usage
        lowest = min(
            u.requests, u.input_tokens, u.output_tokens, u.cache_read_tokens, u.cache_write_tokens
        )
        if lowest < 0:
            counts = ", ".join(
                f"{name} {getattr(u, name):,}" for name in USAGE_COUNTS if getattr(u, name) < 0
            )
            raise pricing.PricingError(
                f"Usage of {row.model_id} has a negative count ({counts}): usage is never "
                "negative, correct the usage rows of this month"
            )
