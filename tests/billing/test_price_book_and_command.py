from datetime import date
from io import StringIO

from django.core.management import CommandError, call_command

from billing.models import Invoice, ModelPrice


def test_seeded_price_book_records_source_and_date(db):
    seeded = ModelPrice.objects.filter(source_seen_on=date(2026, 11, 23))
    ids = set(seeded.values_list("model_id", flat=True))
    assert {
        "anthropic.claude-3-haiku-20240307-v1:0",
        "anthropic.claude-3-5-sonnet-20240620-v1:0",
        "amazon.nova-micro-v1:0",
        "amazon.nova-lite-v1:0",
        "amazon.nova-pro-v1:0",
        "amazon.titan-text-express-v1",
        "meta.llama3-1-8b-instruct-v1:0",
        "sandbox.echo-v1",
    } <= ids
    assert all(row.source_url.startswith("https://") for row in seeded)
    haiku = seeded.get(model_id="anthropic.claude-3-haiku-20240307-v1:0")
    assert (str(haiku.input_per_1k.normalize()), str(haiku.output_per_1k.normalize())) == (
        "0.00025",
        "0.00125",
    )
    sandbox = seeded.get(model_id="sandbox.echo-v1")
    assert sandbox.input_per_1k == 0 and sandbox.output_per_1k == 0


def test_invoice_run_command(customer):
    out = StringIO()
    call_command("invoice_run", "--month", "2026-10", stdout=out)
    assert "1 drafts created" in out.getvalue()
    call_command("invoice_run", "--month", "2026-10", stdout=out)
    assert "0 drafts created, 1 already existed" in out.getvalue()
    assert Invoice.objects.count() == 1


def test_invoice_run_command_rejects_bad_month(db):
    import pytest

    with pytest.raises(CommandError):
        call_command("invoice_run", "--month", "October")
    with pytest.raises(CommandError, match="has not ended yet"):
        call_command("invoice_run", "--month", "2099-01")
    assert not Invoice.objects.exists()


def test_seed_plans_command_is_idempotent_and_plans_rate(db):
    from billing.models import PricingPlan
    from billing.pricing import TokenUsage
    from billing.rating import PlanTerms, UsageRow, rate_usage

    out = StringIO()
    call_command("billing_seed_plans", stdout=out)
    call_command("billing_seed_plans", stdout=out)
    assert (
        "7 example plans created" in out.getvalue() and "0 example plans created" in out.getvalue()
    )
    rows = [UsageRow("m", None, TokenUsage(requests=25000, input_tokens=900_000))]
    for plan in PricingPlan.objects.all():
        rate_usage(rows, terms=PlanTerms.from_plan(plan), prices={})
