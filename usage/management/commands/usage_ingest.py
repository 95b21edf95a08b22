"""Ingest (or re-ingest) billed usage for a date range, or run the nightly catch-up."""

import datetime as dt

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from usage.models import IngestRun
from usage.services import (
    days_between,
    ingest_nightly,
    ingest_run_create,
    ingest_run_execute,
    validate_ingest_range,
)


def iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"{text!r} is not a date in YYYY-MM-DD form.") from None


class Command(BaseCommand):
    help = (
        "Load billed usage from the usage events (Athena or DuckDB) into PostgreSQL. "
        "With --start-date/--end-date the days are replaced exactly; with --nightly, "
        "yesterday and any missed day of the catch-up window are ingested."
    )

    def add_arguments(self, parser):
        parser.add_argument("--start-date", type=iso_date)
        parser.add_argument("--end-date", type=iso_date)
        parser.add_argument("--nightly", action="store_true")
        parser.add_argument("--engine", choices=["athena", "duckdb"])
        parser.add_argument("--print-sql", action="store_true", help="Show the query, run nothing")
        parser.add_argument(
            "--print-ddl", action="store_true", help="Show the Athena table definition and exit"
        )

    def handle(self, *args, **options):
        if options["print_ddl"]:
            from usage.athena import events_table_ddl

            self.stdout.write(events_table_ddl())
            return
        if options["nightly"]:
            run = ingest_nightly()
        else:
            start, end = options["start_date"], options["end_date"]
            if not start:
                raise CommandError("Give --start-date (and optionally --end-date), or --nightly.")
            end = end or start
            try:
                validate_ingest_range(start, end)
            except ValidationError as exc:
                raise CommandError(" ".join(exc.messages)) from None
            if options["print_sql"]:
                from usage.services import get_engine

                self.stdout.write(get_engine(options["engine"]).daily_sql(start))
                return
            run = ingest_run_create(
                days=days_between(start, end),
                trigger=IngestRun.Trigger.COMMAND,
                engine=options["engine"],
            )
            run = ingest_run_execute(run_id=run.pk)
        self.stdout.write(
            f"Run {run.pk}: {run.status}, {run.days_done}/{run.days_total} days, "
            f"{run.rows_written} rows ({run.engine})"
        )
        for error in run.errors:
            self.stderr.write(f"  {error['day']} {error['stage']}: {error['error']}")
        if run.status == IngestRun.Status.FAILED:
            raise CommandError("Some days failed; see above (and the staff ingest page).")
