"""Create the demo data for `make run`, idempotently: run it any number of times."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from core.models import User
from customers import services
from customers.models import Customer

DEMO_STAFF_EMAIL = "staff@example.com"
DEMO_CUSTOMER_EMAIL = "customer@example.com"
DEMO_CUSTOMERS = [
    ("Acme Analytics", "billing@acme.example"),
    ("Globex Research", "ops@globex.example"),
    ("Initech Support", "it@initech.example"),
    ("Umbrella Health", "ai@umbrella.example"),
    ("Hooli Search", "platform@hooli.example"),
]
DEMO_DAILY_LIMITS = [10_000, 5_000, 2_000, 1_000, 500]


class Command(BaseCommand):
    help = "Create demo staff and customer logins and a handful of demo customers (idempotent)."

    def handle(self, *args, **options):
        staff_password = settings.DEMO_STAFF_PASSWORD
        customer_password = settings.DEMO_CUSTOMER_PASSWORD
        if not staff_password or not customer_password:
            raise CommandError(
                "Set DEMO_STAFF_PASSWORD and DEMO_CUSTOMER_PASSWORD (make run writes them to .env)."
            )
        with transaction.atomic():
            customers = [
                Customer.objects.get_or_create(name=name, defaults={"contact_email": email})[0]
                for name, email in DEMO_CUSTOMERS
            ]
            staff = self._user(DEMO_STAFF_EMAIL, staff_password, is_staff=True, is_superuser=True)
            staff.full_name = staff.full_name or "Demo Staff"
            staff.save()
            customer_user = self._user(
                DEMO_CUSTOMER_EMAIL, customer_password, customer=customers[0]
            )
            customer_user.full_name = customer_user.full_name or "Demo Customer"
            customer_user.save()
            self._limits_and_tokens(customers)
        if not options["no_usage"]:
            self._usage(customers)
        self.stdout.write(
            self.style.SUCCESS(f"Demo data ready: {len(customers)} customers, 2 demo logins.")
        )

    def add_arguments(self, parser):
        parser.add_argument(
            "--no-usage",
            action="store_true",
            help="Skip the demo usage (60 days of calls, invoices and alerts).",
        )

    def _usage(self, customers):
        from portal.demo_usage import DEMO_DAYS, demo_usage_prepare

        report = demo_usage_prepare(customers=customers)
        if report.days_written or report.days_imported or report.invoices_issued:
            self.stdout.write(
                f"Demo usage: {report.events_written:,} calls over {report.days_written} days "
                f"written, {report.days_imported} days imported, {report.invoices_issued} "
                f"invoices issued ({report.invoices_paid} paid), {report.alerts} alerts."
            )
        else:
            self.stdout.write(f"Demo usage: the last {DEMO_DAYS} days are already there.")

    def _limits_and_tokens(self, customers):
        """Limits and a first token for each demo customer, through the customers services (so
        they are audited and synced to DynamoDB). A token is created, and printed, only once."""

        for index, customer in enumerate(customers):
            services.customer_update_limits(
                customer=customer,
                daily_request_limit=DEMO_DAILY_LIMITS[index % len(DEMO_DAILY_LIMITS)],
                monthly_token_quota=5_000_000,
                rpm_limit=60,
                source="seed_demo",
            )
            if not customer.tokens.exists():
                issued = services.token_create(
                    customer=customer, label="demo", expires_at=None, source="seed_demo"
                )
                self.stdout.write(f"Demo token for {customer.name}: {issued.plaintext}")

    @staticmethod
    def _user(email, password, **fields):
        user = User.objects.filter(email=email).first() or User(email=email)
        for name, value in fields.items():
            setattr(user, name, value)
        user.is_active = True
        user.set_password(password)
        user.save()
        return user
