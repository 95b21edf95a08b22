"""The command-line tool for customers and their tokens, on the apps' services (it lives in
the portal package, the top floor, because it reports usage too).

    manage.py customers create --name N --email E [--token T] [--label L] [--expires YYYY-MM-DD]
        [--monthly-budget AMOUNT] [--prepaid]
    manage.py customers list [--status S] [--search Q] [--limit N] [--after ID]
    manage.py customers create-token --customer-id ID [--label L] [--token T]
        [--expires YYYY-MM-DD | --no-expiry] [token limits]
    manage.py customers update-token --customer-id ID [--token T] [--grace-hours H]
        [--token-prefix P | --token-id ID] [token limits]
    manage.py customers rotate-token --customer-id ID [--grace-hours H] [--token-prefix P]
    manage.py customers revoke-token --customer-id ID [--token-prefix P]
    manage.py customers update-limits --customer-id ID [--daily-limit N]
        [--monthly-tokens N] [--rpm N] [--tpm N] [--allowed-models A,B] [--ip-allowlist ...]
        [--monthly-budget AMOUNT] [--prepaid | --no-prepaid] [--rotate-every-days N|none]
        [--admission-shards N]

Token limits (the token's own, inside the customer's; "none" clears one, '' for the models
gives the token the customer's): --daily-request-limit N, --rpm-limit N,
--monthly-token-quota N, --tpm-limit N, --allowed-models A,B, --monthly-budget AMOUNT.
Budgets are amounts of the portal's currency (BILLING_CURRENCY) in whole cents, e.g. 250.00.
    manage.py customers suspend|reactivate --customer-id ID
    manage.py customers reconcile [--dry-run]
    manage.py customers usage --customer-id ID --start-date YYYY-MM-DD --end-date YYYY-MM-DD

Every change is audited as made by this command (and the OS user who ran it).
"""

import argparse
import getpass
import uuid
from datetime import UTC, datetime, time

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from customers import selectors, services
from customers.models import Customer, Token
from customers.money import money_text
from customers.onboarding import customer_create_with_token
from customers.reconcile import dynamodb_reconcile
from usage.reports import parse_range, print_usage_by_model


def _rotation_text(days) -> str:
    return "none" if days is None else f"{days} day{'s' if days != 1 else ''}"


def _source() -> str:
    try:
        who = getpass.getuser()
    except Exception:  # no login name in some containers
        who = "unknown"
    return f"manage.py customers (os user {who})"


TOKEN_LIMIT_OPTIONS = {
    "daily_request_limit": ("--daily-request-limit", "The token's requests per UTC day."),
    "rpm_limit": ("--rpm-limit", "The token's requests per minute."),
    "monthly_token_quota": ("--monthly-token-quota", "The token's tokens per month."),
    "tpm_limit": ("--tpm-limit", "The token's tokens per minute."),
    "allowed_models": (
        "--allowed-models",
        "Comma-separated: some of the customer's models ('' for the customer's).",
    ),
    "monthly_budget": (
        "--monthly-budget",
        "The token's monthly budget, an amount of the portal's currency such as 250.00.",
    ),
}


def _add_token_limits(parser) -> None:
    for name, (flag, text) in TOKEN_LIMIT_OPTIONS.items():
        suffix = "" if name == "allowed_models" else " 'none' clears it."
        parser.add_argument(flag, dest=f"token_{name}", help=text + suffix)


def _token_limits(options) -> dict:
    """The token limit options given (None: not given)."""
    values = {name: options.get(f"token_{name}") for name in TOKEN_LIMIT_OPTIONS}
    return {name: value for name, value in values.items() if value is not None}


def _add_customer_money(parser, *, clear: bool) -> None:
    parser.add_argument(
        "--monthly-budget",
        help="The most a calendar month's calls may cost, an amount of the portal's currency "
        "such as 1500.00" + (" ('none' clears it)." if clear else "."),
    )
    parser.add_argument(
        "--prepaid",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="Calls need prepaid credit (refused when it runs out); --no-prepaid: they do not.",
    )


def _customer_money(options) -> dict:
    """The customer money options given (None: not given)."""
    values = {"monthly_budget": options.get("monthly_budget"), "prepaid": options.get("prepaid")}
    return {name: value for name, value in values.items() if value is not None}


def _date(value: str):
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        raise CommandError(f"Bad date {value!r}: use YYYY-MM-DD, e.g. 2027-01-31.") from None
    return datetime.combine(day, time.min, tzinfo=UTC)


LIST_PAGE = 100
LIST_PAGE_MAX = 1000


def _page_size(raw: str) -> int:
    try:
        size = int(raw)
    except ValueError:
        size = 0
    if not 1 <= size <= LIST_PAGE_MAX:
        raise CommandError(f"--limit must be a whole number from 1 to {LIST_PAGE_MAX}.")
    return size


class Command(BaseCommand):
    help = "Manage customers and their Bearer tokens."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="subcommand", required=True, metavar="subcommand")

        create = sub.add_parser("create", help="Create a customer and its first token.")
        create.add_argument("--name", required=True)
        create.add_argument("--email", required=True)
        create.add_argument("--token", help="Import this token instead of generating one.")
        create.add_argument("--label", default="default", help="The token's label.")
        create.add_argument("--expires", help="Token expiry date, YYYY-MM-DD (UTC).")
        create.add_argument("--no-expiry", action="store_true", help="The token never expires.")
        _add_customer_money(create, clear=False)

        listing = sub.add_parser(
            "list", help="List customers, a page at a time (name order; --after to go on)."
        )
        listing.add_argument("--status", choices=Customer.Status.values)
        listing.add_argument("--search", default="")
        listing.add_argument(
            "--limit",
            default=str(LIST_PAGE),
            help=f"Customers per page, 1 to {LIST_PAGE_MAX} (default {LIST_PAGE}).",
        )
        listing.add_argument(
            "--after", default="", help="Start after this customer id (the last one listed)."
        )

        new_token = sub.add_parser(
            "create-token", help="Issue another token for a customer, with its own limits."
        )
        new_token.add_argument("--customer-id", required=True)
        new_token.add_argument("--label", default="default", help="The token's label.")
        new_token.add_argument("--token", help="Import this token instead of generating one.")
        new_token.add_argument("--expires", help="Token expiry date, YYYY-MM-DD (UTC).")
        new_token.add_argument("--no-expiry", action="store_true", help="It never expires.")
        _add_token_limits(new_token)

        update = sub.add_parser(
            "update-token",
            help="Replace the customer's token by --token, and/or set the token's own limits.",
        )
        update.add_argument("--customer-id", required=True)
        update.add_argument("--token", help="Replace the token by this one.")
        update.add_argument("--grace-hours", type=float, default=0.0)
        update.add_argument("--token-prefix")
        update.add_argument("--token-id", help="The token to change, by its id.")
        _add_token_limits(update)

        rotate = sub.add_parser("rotate-token", help="Issue a new token; the old one stops later.")
        rotate.add_argument("--customer-id", required=True)
        rotate.add_argument("--grace-hours", type=float)
        rotate.add_argument("--token-prefix")

        revoke = sub.add_parser("revoke-token", help="Revoke tokens at once.")
        revoke.add_argument("--customer-id", required=True)
        revoke.add_argument("--token-prefix", help="Only tokens starting with this prefix.")

        limits = sub.add_parser("update-limits", help="Set the customer's limits.")
        limits.add_argument("--customer-id", required=True)
        limits.add_argument("--daily-limit", help="Requests per day, or 'none'.")
        limits.add_argument("--monthly-tokens", help="Tokens per month, or 'none'.")
        limits.add_argument("--rpm", help="Requests per minute, or 'none'.")
        limits.add_argument("--tpm", help="Tokens per minute, or 'none'.")
        limits.add_argument(
            "--allowed-models",
            help="Comma-separated model ids or aliases of the model catalog (the price book), "
            "or inference profile ids of them ('' for all).",
        )
        limits.add_argument("--ip-allowlist", help="Comma-separated CIDRs ('' for any).")
        _add_customer_money(limits, clear=True)
        limits.add_argument(
            "--rotate-every-days",
            metavar="N",
            help="Rotation policy: replace each token once it is N days old (1 to 3650); "
            "'none' turns it off.",
        )
        limits.add_argument(
            "--admission-shards",
            metavar="N",
            help="Spread the customer's admissions over N items (1 to 64; 1 for most customers, "
            "16 for one sending over 1,000 requests a second).",
        )

        for name in ("suspend", "reactivate"):
            status = sub.add_parser(name, help=f"{name.capitalize()} a customer.")
            status.add_argument("--customer-id", required=True)

        reconcile = sub.add_parser("reconcile", help="Compare with DynamoDB and repair drift.")
        reconcile.add_argument("--dry-run", action="store_true")

        usage = sub.add_parser("usage", help="Requests and tokens for a date range, by model.")
        usage.add_argument("--customer-id", required=True)
        usage.add_argument("--start-date", required=True, help="YYYY-MM-DD (UTC)")
        usage.add_argument("--end-date", required=True, help="YYYY-MM-DD (UTC), inclusive")

    def handle(self, *args, subcommand, **options):
        handler = getattr(self, "do_" + subcommand.replace("-", "_"))
        try:
            handler(**options)
        except ValidationError as error:
            raise CommandError("; ".join(error.messages)) from None

    def do_usage(self, *, customer_id, start_date, end_date, **_):
        customer = self._customer(customer_id)
        try:
            start, end = parse_range(start_date, end_date)
        except ValueError as error:
            raise CommandError(str(error)) from None
        print_usage_by_model(customer=customer, start=start, end=end, out=self.stdout)

    # -- helpers

    def _customer(self, customer_id: str) -> Customer:
        try:
            uuid.UUID(customer_id)
        except ValueError:
            raise CommandError(f"{customer_id!r} is not a customer id (a UUID).") from None
        customer = Customer.objects.filter(pk=customer_id).first()
        if customer is None:
            raise CommandError(f"No customer with id {customer_id}.")
        return customer

    def _tokens(self, customer: Customer, prefix: str | None) -> list[Token]:
        tokens = list(selectors.token_list_usable(customer=customer))
        if prefix:
            tokens = [t for t in tokens if t.display_prefix.startswith(prefix)]
            if not tokens:
                raise CommandError(f"No active token starting with {prefix!r} for this customer.")
        if not tokens:
            raise CommandError("This customer has no active token.")
        return tokens

    def _one_token(self, customer, prefix) -> Token:
        tokens = [t for t in self._tokens(customer, prefix) if t.replaced_by_id is None]
        if len(tokens) != 1:
            shown = ", ".join(f"{t.masked} ({t.label})" for t in tokens)
            raise CommandError(
                f"This customer has {len(tokens)} active tokens ({shown}); "
                "choose one with --token-prefix."
            )
        return tokens[0]

    # -- subcommands

    def do_create(self, *, name, email, token, label, expires, no_expiry, **options):
        expires_at = None if no_expiry else (_date(expires) if expires else services.DEFAULT)
        customer, issued = customer_create_with_token(
            name=name,
            contact_email=email,
            plaintext=token,
            label=label,
            expires_at=expires_at,
            source=_source(),
            **_customer_money(options),
        )
        self.stdout.write(f"Customer ID: {customer.pk}")
        self.stdout.write(f"Bearer token: {issued.plaintext}")
        self.stdout.write("Store the token now: it is not stored and cannot be shown again.")

    def do_list(self, *, status, search, limit, after, **_):
        limit = _page_size(limit)
        start = self._customer(after) if after else None
        rows, more = selectors.customer_page(
            search=search, status=status or "", after=start, limit=limit
        )
        self.stdout.write(f"{'ID':36}  {'STATUS':9}  {'TOKENS':6}  {'SYNC':8}  NAME <EMAIL>")
        for customer in rows:
            self.stdout.write(
                f"{customer.pk}  {customer.status:9}  {customer.active_tokens:6}  "
                f"{customer.sync_state:8}  {customer.name} <{customer.contact_email}>"
            )
        summary = f"{len(rows)} customers"
        if more:
            summary += f"; more follow: add --after {rows[-1].pk}"
        self.stdout.write(summary)

    def _token_by_id(self, customer, token_id) -> Token:
        try:
            uuid.UUID(token_id)
        except ValueError:
            raise CommandError(f"{token_id!r} is not a token id (a UUID).") from None
        token = customer.tokens.filter(pk=token_id).first()
        if token is None:
            raise CommandError(f"This customer has no token with id {token_id}.")
        return token

    def _show_limits(self, token: Token) -> None:
        own = "; ".join(token.limits_in_words(model_label=str)) or "none (the customer's apply)"
        self.stdout.write(f"Limits of token {token.masked}: {own}.")

    def do_create_token(self, *, customer_id, label, token, expires, no_expiry, **options):
        customer = self._customer(customer_id)
        expires_at = None if no_expiry else (_date(expires) if expires else services.DEFAULT)
        issued = services.token_create(
            customer=customer,
            label=label,
            plaintext=token,
            expires_at=expires_at,
            limits=_token_limits(options),
            source=_source(),
        )
        self.stdout.write(f"Token ID: {issued.token.pk}")
        self.stdout.write(f"Bearer token: {issued.plaintext}")
        self.stdout.write("Store the token now: it is not stored and cannot be shown again.")
        self._show_limits(issued.token)

    def do_update_token(self, *, customer_id, token, grace_hours, token_prefix, **options):
        customer = self._customer(customer_id)
        limits = _token_limits(options)
        if token is None and not limits:
            raise CommandError(
                "Give --token to replace the token, and/or token limits to change "
                "(--daily-request-limit, --rpm-limit, --monthly-token-quota, --tpm-limit, "
                "--allowed-models, --monthly-budget)."
            )
        if options.get("token_id"):
            target = self._token_by_id(customer, options["token_id"])
        else:
            target = self._one_token(customer, token_prefix)
        if token is not None:
            issued = services.token_rotate(
                token=target, plaintext=token, grace_hours=grace_hours, source=_source()
            )
            self.stdout.write(f"Token {target.masked} replaced by {issued.token.masked}.")
            target = issued.token  # the limits go to the token in use from now on
        if limits:
            target = services.token_update_limits(token=target, source=_source(), **limits)
            self._show_limits(target)

    def do_rotate_token(self, *, customer_id, grace_hours, token_prefix, **_):
        customer = self._customer(customer_id)
        old = self._one_token(customer, token_prefix)
        issued = services.token_rotate(token=old, grace_hours=grace_hours, source=_source())
        old.refresh_from_db()
        until = old.grace_until.strftime("%Y-%m-%d %H:%M UTC") if old.grace_until else "now"
        self.stdout.write(f"New bearer token: {issued.plaintext}")
        self.stdout.write(f"The old token {old.masked} works until {until}.")

    def do_revoke_token(self, *, customer_id, token_prefix, **_):
        customer = self._customer(customer_id)
        for token in self._tokens(customer, token_prefix):
            services.token_revoke(token=token, source=_source())
            self.stdout.write(f"Revoked {token.masked} ({token.label}).")

    def do_update_limits(self, *, customer_id, daily_limit, monthly_tokens, rpm, **options):
        optional = {
            "daily_request_limit": daily_limit,
            "monthly_token_quota": monthly_tokens,
            "rpm_limit": rpm,
            "tpm_limit": options.get("tpm"),
            "allowed_models": options.get("allowed_models"),
            "ip_allowlist": options.get("ip_allowlist"),
            "rotate_every_days": options.get("rotate_every_days"),
            "counter_shards": options.get("admission_shards"),
        }
        limits = {k: v for k, v in optional.items() if v is not None}
        limits.update(_customer_money(options))
        if not limits:  # a usage error, as argparse reports one (exit code 2)
            raise CommandError(
                "Give at least one limit to set: --daily-limit, --monthly-tokens, --rpm, --tpm, "
                "--allowed-models, --ip-allowlist, --monthly-budget, --prepaid/--no-prepaid, "
                "--rotate-every-days, --admission-shards.",
                returncode=2,
            )
        customer = self._customer(customer_id)
        customer = services.customer_update_limits(customer=customer, source=_source(), **limits)
        budget = money_text(customer.monthly_budget) if customer.monthly_budget else "none"
        self.stdout.write(
            f"Limits of {customer.name}: daily {customer.daily_request_limit or 'none'}, "
            f"monthly tokens {customer.monthly_token_quota or 'none'}, "
            f"rpm {customer.rpm_limit or 'none'}, tpm {customer.tpm_limit or 'none'}, "
            f"monthly budget {budget}, prepaid {'yes' if customer.prepaid else 'no'}, "
            f"rotate tokens every {_rotation_text(customer.rotate_every_days)}, "
            f"admission shards {customer.counter_shards}."
        )

    def do_suspend(self, *, customer_id, **_):
        customer = services.customer_suspend(customer=self._customer(customer_id), source=_source())
        self.stdout.write(f"{customer.name} is {customer.status}.")

    def do_reactivate(self, *, customer_id, **_):
        customer = services.customer_reactivate(
            customer=self._customer(customer_id), source=_source()
        )
        self.stdout.write(f"{customer.name} is {customer.status}.")

    def do_reconcile(self, *, dry_run, **_):
        report = dynamodb_reconcile(dry_run=dry_run)
        for line in [*report.repairs, *report.price_repairs]:
            self.stdout.write(("would repair " if dry_run else "repaired ") + line)
        self.stdout.write(report.summary())
