"""Reads: the queries behind the staff pages and the commands."""

import contextlib
import datetime as dt
import uuid
from dataclasses import dataclass

from django.db.models import Case, Count, Exists, OuterRef, Q, QuerySet, Subquery, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import audit_display
from .models import AuditEvent, Customer, SyncOutbox, Token

SORTS = {
    "name": ("name", "id"),
    "-name": ("-name", "-id"),
    "created": ("created_at", "id"),
    "-created": ("-created_at", "-id"),
    "status": ("status", "name", "id"),
    "email": ("contact_email", "id"),
}


def _pending():
    return SyncOutbox.objects.filter(customer=OuterRef("pk"), delivered_at__isnull=True)


def with_sync_state(customers: QuerySet) -> QuerySet:
    return customers.annotate(
        sync_state=Case(
            When(Exists(_pending().filter(attempts__gt=0)), then=Value("failing")),
            When(Exists(_pending()), then=Value("pending")),
            default=Value("in sync"),
        )
    )


SYNC_STATES = ["in sync", "pending", "failing"]


def customer_list(
    *, search: str = "", status: str = "", order: str = "name", sync: str = ""
) -> QuerySet:
    """Customers with their active token count and sync state; cheap per page."""
    customers = Customer.objects.all()
    search = (search or "").strip()
    if search:
        match = Q(name__icontains=search) | Q(contact_email__icontains=search)
        with contextlib.suppress(ValueError):  # an exact customer id finds that customer too
            match |= Q(pk=uuid.UUID(search))
        customers = customers.filter(match)
    if status in Customer.Status.values:
        customers = customers.filter(status=status)
    active_tokens = (
        Token.objects.filter(customer=OuterRef("pk"), status=Token.Status.ACTIVE)
        .order_by()
        .values("customer")
        .annotate(n=Count("pk"))
        .values("n")
    )
    customers = customers.annotate(active_tokens=Coalesce(Subquery(active_tokens), 0))
    customers = with_sync_state(customers)
    if sync in SYNC_STATES:
        customers = customers.filter(sync_state=sync)
    return customers.order_by(*SORTS.get(order, SORTS["name"]))


def customer_page(
    *, search: str = "", status: str = "", after: Customer | None = None, limit: int = 100
) -> tuple[list[Customer], bool]:
    """One page of the customer list in name order (then id), after the customer `after`:
    (up to `limit` customers, whether more follow). Keyset paging: a page costs the same at
    the millionth customer as at the first, and a customer added meanwhile is not skipped or
    repeated because of an offset."""
    customers = customer_list(search=search, status=status, order="name")
    if after is not None:
        customers = customers.filter(Q(name__gt=after.name) | Q(name=after.name, id__gt=after.id))
    rows = list(customers[: limit + 1])
    return rows[:limit], len(rows) > limit


@dataclass
class SyncState:
    state: str  # "in sync", "pending" or "failing"
    pending: int
    last_error: str
    last_attempt_error_at: object
    next_attempt_at: object


def customer_sync_state(*, customer: Customer) -> SyncState:
    pending = SyncOutbox.objects.filter(customer=customer, delivered_at__isnull=True)
    failing = pending.filter(attempts__gt=0).order_by("-id").first()
    count = pending.count()
    if failing is not None:
        return SyncState("failing", count, failing.last_error, None, failing.next_attempt_at)
    return SyncState("pending" if count else "in sync", count, "", None, None)


def token_list(*, customer: Customer) -> QuerySet:
    return customer.tokens.select_related("replaced_by").order_by("status", "-created_at", "pk")


def tokens_awaiting_reveal(*, customer: Customer) -> QuerySet:
    """Tokens the rotation policy rotated whose replacement no one has revealed yet."""
    return customer.tokens.filter(
        rotated_on_schedule_at__isnull=False,
        replaced_by__isnull=True,
        status=Token.Status.ACTIVE,
    ).order_by("grace_until", "pk")


def token_list_usable(*, customer: Customer) -> list[Token]:
    """Tokens that still let requests through: active, not expired, not past their grace."""
    now = timezone.now()
    tokens = customer.tokens.filter(status=Token.Status.ACTIVE).order_by("created_at")
    return [t for t in tokens if t.state(now) in ("active", "rotating")]


def audit_list(*, customer: Customer) -> QuerySet:
    """A customer's audit trail, newest first; paginate it, then `audit_with_changes` a page."""
    return AuditEvent.objects.filter(customer=customer).select_related("actor")


def audit_with_changes(events) -> list[AuditEvent]:
    """The events, each with what the pages show (customers/audit_display.py):
    `readable_changes` ([Change]: label, before, after), `action_label` and `subject`."""
    events = list(events)
    for event in events:
        event.readable_changes = audit_display.readable_changes(event)
        event.action_label = audit_display.action_label(event.action)
        event.subject = audit_display.event_subject(event)
    return events


def audit_log_list(
    *,
    actor: str = "",
    customer: str = "",
    action: str = "",
    start: dt.date | None = None,
    end: dt.date | None = None,
) -> QuerySet:
    """Every audited change, newest first (the staff audit log). `actor` and `customer` are
    parts of the actor's label (an email, "reconciliation") and of the customer's name (or its
    exact id); `start` and `end` are UTC days, both included. Paginate, then
    `audit_with_changes` a page."""
    events = AuditEvent.objects.select_related("customer")
    if actor:
        events = events.filter(actor_label__icontains=actor)
    if customer:
        match = Q(customer__name__icontains=customer)
        with contextlib.suppress(ValueError):  # not an id: the name alone
            match |= Q(customer_id=uuid.UUID(customer))
        events = events.filter(match)
    if action:
        events = events.filter(action=action)
    if start is not None:
        events = events.filter(created_at__gte=dt.datetime.combine(start, dt.time(), dt.UTC))
    if end is not None and end < dt.date.max:  # the last day has no next day: no upper bound
        next_day = dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), dt.UTC)
        events = events.filter(created_at__lt=next_day)
    return events.order_by("-created_at", "-id")


def customers_by_ids(*, ids) -> list[Customer]:
    return list(Customer.objects.filter(pk__in=list(ids)).order_by("name"))
