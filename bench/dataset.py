"""The shared large data set of the benchmarks: generated once, then reused.

At scale 1 (BENCH_SCALE, default 1): 10,000 customers, 10,000 customer users and one staff user,
100,000 tokens, a year of daily usage (about 5 million UsageDaily rows, ending yesterday),
the year's ingested days, 11 monthly invoices per customer (two lines each), plan assignments
and a few alerts per customer. Written with PostgreSQL COPY in one transaction (the usage
table's secondary indexes are dropped during the load and rebuilt after it), then ANALYZEd.
A row in `bench_dataset` records the generator version and scale: a second run skips the work.

Database: BENCH_PORTAL_DATABASE_URL, else the server of DATABASE_URL (when it is PostgreSQL)
or postgres://postgres@127.0.0.1:5432, with the database `bench_portal` (scale 1) or
`bench_portal_s<scale>`; created if missing and migrated. Only databases named bench_* are
ever written. On another engine (the SQLite test database) rows go in with executemany.

    .venv/bin/python -m bench.dataset            # generate if needed, print the summary
    .venv/bin/python -m bench.dataset --check    # is PostgreSQL reachable?
    .venv/bin/python -m bench.dataset --force    # generate again
"""

import datetime as dt
import hashlib
import io
import json
import os
import random
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

VERSION = "6"  # 4: portal_user.session_epoch, usage_ingestedday.quarantined_rows
# 5: customers_token.allowed_models (a token's own models; its numeric limits stay NULL)
# 6: customers_customer.counter_shards (1: one admission transaction, as every customer had)
DEFAULT_SERVER = "postgres://postgres@127.0.0.1:5432"
CUSTOMERS_AT_SCALE_1 = 10_000
TOKENS_PER_CUSTOMER = 10
DAYS = 365
INVOICE_MONTHS = 11
PASSWORD = "bench-password-not-secret"
STAFF_EMAIL = "bench-staff@bench.example"
MODELS = [
    "anthropic.claude-3-haiku-20240307-v1:0",
    "anthropic.claude-3-5-sonnet-20240620-v1:0",
    "amazon.nova-lite-v1:0",
    "amazon.nova-pro-v1:0",
    "meta.llama3-1-8b-instruct-v1:0",
    "sandbox.echo-v1",
]
NAMESPACE = uuid.UUID("6f1c2a52-5b1e-4c39-9d51-0d6a0b0e7a11")


def scale() -> float:
    return float(os.environ.get("BENCH_SCALE", "1"))


def database_url(at_scale: float | None = None) -> str:
    at_scale = scale() if at_scale is None else at_scale
    url = os.environ.get("BENCH_PORTAL_DATABASE_URL")
    if not url:
        base = os.environ.get("DATABASE_URL", "")
        server = base.rsplit("/", 1)[0] if base.startswith("postgres") else DEFAULT_SERVER
        suffix = "" if at_scale == 1 else "_s" + f"{at_scale:g}".replace(".", "_")
        url = f"{server}/bench_portal{suffix}"
    if not url.rsplit("/", 1)[1].startswith("bench_"):
        raise SystemExit(f"Refusing to use {url}: benchmark databases are named bench_*.")
    return url


def customer_id(n: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"customer-{n}")


def customer_email(n: int) -> str:
    return f"user{n:05d}@customer{n:05d}.bench.example"


def setup_django(url: str) -> None:
    """Point Django at `url` (created if missing) and migrate it; once per process."""
    from django.conf import settings

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    if settings.configured:
        name = settings.DATABASES["default"]["NAME"]
        if name != url.rsplit("/", 1)[1]:
            raise RuntimeError(f"Django already uses {name}; run the benchmark in a subprocess.")
    else:
        os.environ["DATABASE_URL"] = url
        os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings_test"
        create_database(url)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)


def create_database(url: str) -> None:
    import psycopg

    base, name = url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True, connect_timeout=5) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')


def check_reachable(url: str) -> str:
    """'' when the PostgreSQL server of `url` answers, else why not."""
    import psycopg

    try:
        with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", connect_timeout=3):
            return ""
    except psycopg.OperationalError as error:
        return str(error).strip().splitlines()[0]


# --- generation ---------------------------------------------------------------------------


class _Writer:
    """COPY on PostgreSQL, executemany elsewhere; values already in their text form."""

    def __init__(self, connection):
        self.connection = connection
        self.postgres = connection.vendor == "postgresql"

    def write(self, table: str, columns: list[str], rows) -> int:
        count = 0
        with self.connection.cursor() as cursor:
            if self.postgres:
                with cursor.cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                    buffer = io.StringIO()
                    for row in rows:
                        buffer.write("\t".join(_copy_text(v) for v in row))
                        buffer.write("\n")
                        count += 1
                        if count % 20_000 == 0:
                            copy.write(buffer.getvalue())
                            buffer = io.StringIO()
                    copy.write(buffer.getvalue())
            else:
                rows = [tuple(_sql_value(v) for v in row) for row in rows]
                marks = ", ".join(["%s"] * len(columns))
                sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
                cursor.executemany(sql, rows)
                count = len(rows)
        return count


def _columns(text: str) -> list[str]:
    return text.split()


def _copy_text(value) -> str:
    if value is None:
        return "\\N"
    if value is True or value is False:
        return "t" if value else "f"
    return str(value)


def _sql_value(value):
    if isinstance(value, uuid.UUID):
        return value.hex  # how Django stores a UUIDField on SQLite
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):  # Django's SQLite form: naive UTC, space separated
        return value.astimezone(dt.UTC).replace(tzinfo=None).isoformat(sep=" ")
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _month_starts(end_day: dt.date, count: int) -> list[dt.date]:
    """The `count` calendar months before end_day's month, oldest first."""
    months, month = [], end_day.replace(day=1)
    for _ in range(count):
        month = (month - dt.timedelta(days=1)).replace(day=1)
        months.append(month)
    return months[::-1]


def _usage_rows(customers: int, end_day: dt.date, rng: random.Random):
    """About 1.4 rows per customer and day; 1 % of customers are large (12 tag combinations)."""
    days = [end_day - dt.timedelta(days=d) for d in range(DAYS - 1, -1, -1)]
    now = dt.datetime.combine(end_day, dt.time(4), tzinfo=dt.UTC)
    for n in range(customers):
        cid = customer_id(n)
        large = n % 100 == 7
        combos = []
        for k in range(12 if large else rng.choice((1, 2, 2, 3))):
            combos.append(
                (
                    MODELS[(n + k) % len(MODELS)],
                    f"app-{k % 4}" if k else "",
                    f"cc-{n % 20}",
                    ("prod", "dev", "staging")[k % 3],
                )
            )
        active = 0.9 if large else 0.65
        base = rng.randint(5, 400) * (30 if large else 1)
        for day in days:
            for model_id, app, cost_center, environment in combos:
                if rng.random() > active:
                    continue
                requests = max(1, int(base * rng.uniform(0.3, 1.7)))
                tokens_in = requests * rng.randint(200, 2000)
                yield (
                    cid,
                    day,
                    model_id,
                    app,
                    cost_center,
                    environment,
                    requests,
                    tokens_in,
                    requests * rng.randint(50, 500),
                    tokens_in // 10,
                    0,
                    now,
                )


def generate(*, connection, customers: int, end_day: dt.date, seed: int = 42) -> dict:
    """Write the whole data set into empty tables through `connection`; returns row counts."""
    from django.contrib.auth.hashers import make_password

    rng = random.Random(seed)
    writer = _Writer(connection)
    if writer.postgres:  # issued invoices get their lines: no immutability or FK triggers
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL session_replication_role = replica")
    counts = {}
    created = dt.datetime.combine(end_day - dt.timedelta(days=DAYS + 30), dt.time(9), dt.UTC)
    statuses = ["active"] * 90 + ["suspended"] * 7 + ["closed"] * 3
    counts["customers"] = writer.write(
        "customers_customer",
        _columns(
            "id name contact_email status created_at updated_at allowed_models billing_address "
            "billing_name default_model_params extra_contact_emails ip_allowlist notes tax_id "
            "sync_version daily_request_limit monthly_token_quota rpm_limit prepaid counter_shards"
        ),
        (
            (
                customer_id(n),
                f"Customer {n:05d} {rng.choice(('Labs', 'Inc', 'GmbH', 'Ltd'))}",
                f"billing@customer{n:05d}.bench.example",
                statuses[n % 100],
                (created + dt.timedelta(minutes=n)),
                created,
                "[]",
                "",
                "",
                "{}",
                "[]",
                "[]",
                "",
                "",
                1,
                None if n % 3 else 50_000,
                None if n % 2 else 500_000_000,
                None,
                False,
                1,
            )
            for n in range(customers)
        ),
    )
    password = make_password(PASSWORD)
    users = [(password, STAFF_EMAIL, "Bench Staff", True, True, None)]
    users += [
        (password, customer_email(n), f"User {n:05d}", False, False, customer_id(n))
        for n in range(customers)
    ]
    counts["users"] = writer.write(
        "portal_user",
        _columns(
            "password email full_name is_staff is_superuser customer_id is_active "
            "is_service_account date_joined session_epoch"
        ),
        ((*u, True, False, created, 0) for u in users),
    )
    counts["tokens"] = writer.write(
        "customers_token",
        _columns(
            "id customer_id label token_hash display_prefix last4 status created_at revoked_at "
            "expires_at sync_version allowed_models"
        ),
        _token_rows(customers, created, end_day),
    )
    counts["usage rows"] = writer.write(
        "usage_usagedaily",
        _columns(
            "customer_id day model_id application_id cost_center environment requests "
            "input_tokens output_tokens cache_read_tokens cache_write_tokens ingested_at"
        ),
        _usage_rows(customers, end_day, rng),
    )
    stamp = dt.datetime.combine(end_day, dt.time(4), dt.UTC)
    counts["ingested days"] = writer.write(
        "usage_ingestedday",
        _columns("day engine rows requests skipped_rows quarantined_rows ingested_at"),
        ((end_day - dt.timedelta(days=d), "bench", 0, 0, 0, 0, stamp) for d in range(DAYS)),
    )
    counts["alerts"] = writer.write(
        "usage_alert",
        _columns(
            'customer_id rule threshold period subject value "limit" created_at email_error '
            "webhook_status"
        ),
        (
            (
                customer_id(n),
                "monthly_tokens",
                pct,
                f"{m:%Y-%m}",
                "",
                pct * 5_000_000,
                500_000_000,
                dt.datetime.combine(m, dt.time(12), dt.UTC),
                "",
                "",
            )
            for n in range(0, customers, 2)
            for m in _month_starts(end_day, 3)
            for pct in (50, 80)
        ),
    )
    counts["invoices"], counts["invoice lines"] = _invoices(writer, customers, end_day)
    _plans(customers)
    return counts


def _token_rows(customers: int, created: dt.datetime, end_day: dt.date):
    expires = dt.datetime.combine(end_day + dt.timedelta(days=200), dt.time(0), dt.UTC)
    for n in range(customers):
        for t in range(TOKENS_PER_CUSTOMER):
            digest = hashlib.sha256(f"bench-token-{n}-{t}".encode()).hexdigest()
            revoked = t % 7 == 6
            made = created + dt.timedelta(days=t * 30, minutes=n)
            yield (
                uuid.uuid5(NAMESPACE, f"token-{n}-{t}"),
                customer_id(n),
                f"key-{t}",
                digest,
                "bup_" + digest[:4],
                digest[-4:],
                "revoked" if revoked else "active",
                made,
                (made + dt.timedelta(days=20)) if revoked else None,
                expires,
                1,
                "[]",
            )


def _invoices(writer, customers: int, end_day: dt.date) -> tuple[int, int]:
    months = _month_starts(end_day, INVOICE_MONTHS + 1)[:-1]  # last month left to the run
    invoices, lines, number = [], [], 0
    for month in months:
        period_end = (month + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
        issued = dt.datetime.combine(period_end + dt.timedelta(days=2), dt.time(8), dt.UTC)
        for n in range(customers):
            number += 1
            invoice_id = uuid.uuid5(NAMESPACE, f"invoice-{n}-{month}")
            usage = Decimal(37 + (n * 7919 + month.month * 104729) % 4000) / 4
            fee = Decimal("49.00") if n % 3 == 1 else Decimal("0.00")
            total = usage + fee
            paid = month != months[-1] or n % 2 == 0
            invoices.append(
                (
                    invoice_id,
                    customer_id(n),
                    "invoice",
                    month,
                    period_end,
                    "paid" if paid else "issued",
                    f"INV-{number:06d}",
                    "USD",
                    "Pay as you go",
                    total,
                    Decimal("0.00"),
                    Decimal("0"),
                    Decimal("0.00"),
                    total,
                    issued,
                    issued,
                    (issued + dt.timedelta(days=9)) if paid else None,
                    "",
                )
            )
            lines.append((invoice_id, 0, "usage", MODELS[n % 5], "Tokens", usage))
            lines.append((invoice_id, 1, "subscription", "", "Monthly fee", fee))
    count = writer.write(
        "billing_invoice",
        _columns(
            "id customer_id kind period_start period_end status number currency plan_name subtotal "
            "credits_applied tax_rate tax total created_at issued_at paid_at void_reason"
        ),
        invoices,
    )
    line_count = writer.write(
        "billing_invoiceline",
        _columns("invoice_id position kind model_id description amount quantity unit"),
        ((*line, Decimal(1), "") for line in lines),
    )
    from billing.models import InvoiceCounter

    InvoiceCounter.objects.update_or_create(name="invoice", defaults={"last_number": number})
    return count, line_count


def _plans(customers: int) -> None:
    """A third of the customers on a graduated plan, a third on a subscription (as the invoice
    benchmark does), from the first invoiced month on."""
    from billing.models import CustomerPlan, PricingPlan

    tiered, _ = PricingPlan.objects.get_or_create(
        code="bench-tiered",
        defaults={
            "name": "Bench graduated",
            "kind": "tiered",
            "metric": "requests",
            "tiers": [
                {"up_to": 1000, "unit_price": "0.01"},
                {"up_to": 10000, "unit_price": "0.008"},
                {"unit_price": "0.005"},
            ],
        },
    )
    subscription, _ = PricingPlan.objects.get_or_create(
        code="bench-subscription",
        defaults={
            "name": "Bench team",
            "kind": "subscription",
            "monthly_fee": Decimal("49"),
            "included_units": 2000,
            "overage_unit_price": Decimal("0.004"),
        },
    )
    since = dt.date(2000, 1, 1)
    CustomerPlan.objects.bulk_create(
        (
            CustomerPlan(
                customer_id=customer_id(n),
                plan=tiered if n % 3 == 0 else subscription,
                effective_from=since,
            )
            for n in range(customers)
            if n % 3 != 2
        ),
        batch_size=5000,
    )


# --- the cached data set ------------------------------------------------------------------

WIPE = _columns(
    "billing_creditapplication billing_invoiceline billing_invoice billing_customerplan "
    "billing_creditgrant billing_billingprofile usage_alert usage_usagedaily usage_ingestedday "
    "usage_usagedifference usage_customerusagesettings usage_summarydelivery usage_ingestrun "
    "customers_auditevent customers_syncoutbox customers_token django_session axes_accessattempt "
    "portal_apikey portal_idempotencyrecord portal_user customers_customer"
)


def _marker(connection) -> dict | None:
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE TABLE IF NOT EXISTS bench_dataset (version text, details text, created text)"
        )
        cursor.execute("SELECT version, details FROM bench_dataset")
        row = cursor.fetchone()
    return json.loads(row[1]) if row and row[0] == VERSION else None


def _drop_secondary_indexes(cursor, table: str) -> list[str]:
    """Drop the table's unique constraints and plain indexes; return the DDL that rebuilds them."""
    cursor.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'u'",
        [table],
    )
    constraints = cursor.fetchall()
    cursor.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = %s "
        "AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)",
        [table, table],
    )
    indexes = cursor.fetchall()
    rebuild = []
    for name, definition in constraints:
        cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        rebuild.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for name, definition in indexes:
        cursor.execute(f'DROP INDEX "{name}"')
        rebuild.append(definition)
    return rebuild


def ensure(*, at_scale: float | None = None, force: bool = False) -> dict:
    """Generate the data set into its database unless it is already there; Django must be set
    up on database_url(at_scale). Returns the marker's details (counts, seconds, end day)."""
    from django.db import connection, transaction

    at_scale = scale() if at_scale is None else at_scale
    details = _marker(connection)
    if details and details.get("scale") == at_scale and not force:
        return {**details, "cached": True}
    customers = max(3, round(CUSTOMERS_AT_SCALE_1 * at_scale))
    end_day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SET LOCAL session_replication_role = replica"
        )  # no FK/immutability triggers
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute(f"TRUNCATE {', '.join(WIPE)} CASCADE")
        cursor.execute("DELETE FROM bench_dataset")
        rebuild = _drop_secondary_indexes(cursor, "usage_usagedaily")
        counts = generate(connection=connection, customers=customers, end_day=end_day)
        loaded = time.perf_counter() - started
        for ddl in rebuild:
            cursor.execute(ddl)
        details = {
            "scale": at_scale,
            "end_day": end_day.isoformat(),
            "counts": counts,
            "load_seconds": round(loaded, 1),
        }
        cursor.execute("ANALYZE")
        details["seconds"] = round(time.perf_counter() - started, 1)
        cursor.execute(
            "INSERT INTO bench_dataset VALUES (%s, %s, %s)",
            [VERSION, json.dumps(details), dt.datetime.now(dt.UTC).isoformat()],
        )
    return {**details, "cached": False}


def ready(at_scale: float | None = None) -> bool:
    """Whether the data set of this scale is already generated (without setting Django up)."""
    import psycopg

    at_scale = scale() if at_scale is None else at_scale
    try:
        with psycopg.connect(database_url(at_scale), connect_timeout=3) as conn:
            row = conn.execute("SELECT version, details FROM bench_dataset").fetchone()
    except psycopg.Error:
        return False
    return bool(row) and row[0] == VERSION and json.loads(row[1]).get("scale") == at_scale


def main(argv: list[str]) -> int:
    url = database_url()
    problem = check_reachable(url)
    if problem:
        print(
            f"PostgreSQL is not reachable at {url.rsplit('/', 1)[0]} ({problem}).\n"
            "Start it, or set BENCH_PORTAL_DATABASE_URL (or DATABASE_URL) to a server.",
            file=sys.stderr,
        )
        return 2
    if "--check" in argv:
        print(f"PostgreSQL reachable; benchmark database: {url}")
        return 0
    setup_django(url)
    details = ensure(force="--force" in argv)
    if "--json" in argv:
        print(json.dumps({**details, "url": url}))
        return 0
    state = "cached" if details["cached"] else f"generated in {details['seconds']} s"
    print(f"{url}: {state}; " + ", ".join(f"{v:,} {k}" for k, v in details["counts"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
