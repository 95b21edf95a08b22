from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from billing.models import InvoiceRun
from billing.selectors import previous_month
from billing.services import InvoiceRunRefused, invoice_run_execute, invoice_run_request


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
        try:  # recorded as an InvoiceRun, run here rather than queued
            run = invoice_run_request(
                period_start=start, trigger=InvoiceRun.Trigger.COMMAND, queue=False
            )
        except InvoiceRunRefused as exc:
            raise CommandError(str(exc)) from None
        run = invoice_run_execute(run_id=run.pk)
        if run.status != InvoiceRun.Status.SUCCEEDED:
            raise CommandError(f"Invoice run #{run.pk} failed, no draft written: {run.error}")
        self.stdout.write(
            f"{run.period_start:%Y-%m}: {run.drafts_created} drafts created, "
            f"{run.drafts_skipped} already existed"
        )
