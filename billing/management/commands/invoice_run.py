from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.selectors import previous_month
from billing.services import InvoiceRunRefused, invoice_run


class Command(BaseCommand):
    help = (
        "Create draft invoices for a finished month (default: the previous calendar month). "
        "Idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--month", help="YYYY-MM (default: last month)")

    def handle(self, *args, month=None, **options):
        if month:
            try:
                year, number = (int(part) for part in month.split("-"))
                start = date(year, number, 1)
            except ValueError as exc:
                raise CommandError("--month must look like 2026-10") from exc
        else:
            start = previous_month(timezone.now().date())[0]
        try:
            result = invoice_run(period_start=start)
        except InvoiceRunRefused as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"{result.period_start:%Y-%m}: {result.created} drafts created, "
            f"{result.skipped} already existed"
        )
