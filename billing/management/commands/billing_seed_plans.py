from decimal import Decimal
from typing import Any

from django.core.management.base import BaseCommand

from billing.models import PricingPlan

# One example of each kind, with the worked numbers used in docs/billing.md. Idempotent by code.
EXAMPLE_PLANS: list[dict[str, Any]] = [  # PricingPlan fields
    {
        "code": "payg-markup-20",
        "name": "Pay as you go (+20 %)",
        "kind": "per_token",
        "markup_percent": Decimal("20"),
        "description": "Bedrock list prices per token plus 20 %.",
    },
    {
        "code": "per-request",
        "name": "Per request",
        "kind": "per_request",
        "per_request_price": Decimal("0.002"),
        "description": "$0.002 a request, whatever the model.",
    },
    {
        "code": "graduated-requests",
        "name": "Graduated requests",
        "kind": "tiered",
        "tier_mode": "graduated",
        "metric": "requests",
        "tiers": [
            {"up_to": 10000, "unit_price": "0.003"},
            {"up_to": 100000, "unit_price": "0.002"},
            {"unit_price": "0.001"},
        ],
    },
    {
        "code": "volume-kilotokens",
        "name": "Volume per 1K tokens",
        "kind": "tiered",
        "tier_mode": "volume",
        "metric": "kilotokens",
        "tiers": [
            {"up_to": 100000, "unit_price": "0.004"},
            {"up_to": 1000000, "unit_price": "0.003"},
            {"unit_price": "0.002"},
        ],
    },
    {
        "code": "team-subscription",
        "name": "Team subscription",
        "kind": "subscription",
        "monthly_fee": Decimal("49.00"),
        "included_units": 20000,
        "overage_unit_price": Decimal("0.003"),
        "description": "$49 a month with 20,000 requests included, then $0.003 a request.",
    },
    {
        "code": "request-packs",
        "name": "Request packs",
        "kind": "package",
        "package_size": 10000,
        "package_price": Decimal("25.00"),
    },
    {
        "code": "enterprise-minimum",
        "name": "Enterprise (min. $500)",
        "kind": "per_token",
        "markup_percent": Decimal("10"),
        "minimum_commitment": Decimal("500.00"),
    },
]


class Command(BaseCommand):
    help = "Create example pricing plans, one of each kind (existing codes are left alone)."

    def handle(self, *args, **options):
        created = 0
        for fields in EXAMPLE_PLANS:
            _, was_created = PricingPlan.objects.get_or_create(
                code=fields["code"], defaults={k: v for k, v in fields.items() if k != "code"}
            )
            created += was_created
        self.stdout.write(f"{created} example plans created, {len(EXAMPLE_PLANS) - created} kept")
