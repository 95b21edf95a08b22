import uuid
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from customers.models import AuditEvent, Customer, Token
from proxy import contract

from .conftest import remote_token

pytestmark = pytest.mark.django_db


def run(*args):
    out = StringIO()
    call_command("customers", *args, stdout=out)
    return out.getvalue()


def _created(output):
    lines = dict(line.split(": ", 1) for line in output.splitlines() if ": " in line)
    return lines["Customer ID"], lines["Bearer token"]


def test_create_prints_id_and_token(ddb):
    customer_id, token = _created(run("create", "--name", "Initech", "--email", "it@initech.ex"))
    customer = Customer.objects.get(pk=customer_id)
    assert customer.name == "Initech"
    assert contract.token_has_valid_checksum(token)
    assert remote_token(ddb, token).customer_id == customer_id
    assert contract.get_customer(ddb, customer_id).status == "active"
    event = AuditEvent.objects.filter(action="customer.create").get()
    assert event.actor is None and event.actor_label.startswith("manage.py customers")


def test_create_with_given_token_and_expiry(ddb):
    given = "OldSystemToken0123456789abcdefXYZ="
    out = run(
        "create",
        "--name",
        "Initech",
        "--email",
        "it@initech.ex",
        "--token",
        given,
        "--expires",
        "2099-01-31",
    )
    assert _created(out)[1] == given
    item = remote_token(ddb, given)
    assert item.expires_at == 4073500800  # 2099-01-31T00:00:00Z


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["create", "--name", "X", "--email", "not-an-email"], "valid email"),
        (["create", "--name", "X", "--email", "a@b.ex", "--expires", "31/01/2099"], "Bad date"),
        (["create", "--name", "X", "--email", "a@b.ex", "--token", "short"], "imported token"),
        (["rotate-token", "--customer-id", "nope"], "not a customer id"),
        (["rotate-token", "--customer-id", str(uuid.uuid4())], "No customer"),
        (["revoke-token", "--customer-id", str(uuid.uuid4())], "No customer"),
        (["update-token", "--customer-id", str(uuid.uuid4()), "--token", "x" * 30], "No customer"),
        (["update-limits", "--customer-id", str(uuid.uuid4()), "--daily-limit", "5"], "No cust"),
        (["suspend", "--customer-id", str(uuid.uuid4())], "No customer"),
        (["reactivate", "--customer-id", "12345"], "not a customer id"),
        (["create", "--name", "X", "--email", "a@b.ex", "--expires", "2001-01-31"], "future"),
        (["create", "--name", "X", "--email", "a@b.ex", "--expires", "2099-02-30"], "Bad date"),
        (["create", "--name", " ", "--email", "a@b.ex"], "needs a name"),
    ],
)
def test_errors_are_clear(ddb, args, message):
    with pytest.raises(CommandError, match=message):
        run(*args)
    assert not Customer.objects.exists()  # a failed command leaves nothing half-done


@pytest.mark.parametrize("hours", ["nan", "inf", "-1", "2161"])
def test_bad_grace_hours_are_refused_and_change_nothing(ddb, hours):
    customer_id, old = _created(run("create", "--name", "Initech", "--email", "it@initech.ex"))
    for command in (["rotate-token"], ["update-token", "--token", "Replacement0123456789abc"]):
        with pytest.raises(CommandError, match="grace period"):
            run(*command, "--customer-id", customer_id, "--grace-hours", hours)
    assert Token.objects.filter(customer_id=customer_id).count() == 1
    assert remote_token(ddb, old).status == "active"
    assert remote_token(ddb, old).grace_ends_at is None


def test_rotate_with_an_unknown_prefix_is_refused(ddb, customer):
    from customers import services

    services.token_create(customer=customer)
    with pytest.raises(CommandError, match="No active token starting with 'nope'"):
        run("rotate-token", "--customer-id", str(customer.pk), "--token-prefix", "nope")


@pytest.mark.parametrize(
    ("argv", "code"),
    [
        (["rotate-token", "--customer-id", "x"], 1),  # CommandError
        (["rotate-token", "--customer-id", str(uuid.uuid4()), "--grace-hours", "soon"], 2),
        (["update-limits", "--customer-id", str(uuid.uuid4())], 2),  # --daily-limit missing
        (["frobnicate"], 2),
    ],
)
def test_errors_exit_non_zero(ddb, argv, code, capsys):
    from django.core.management import ManagementUtility

    utility = ManagementUtility(["manage.py", "customers", *argv])
    with pytest.raises(SystemExit) as exit_info:
        utility.execute()
    assert exit_info.value.code == code
    assert capsys.readouterr().err.strip()  # and says why, on stderr


def test_list(ddb, customer, other_customer):
    out = run("list")
    assert str(customer.pk) in out and "Globex Research" in out and "2 customers" in out
    assert "1 customers" in run("list", "--search", "globex")
    assert "0 customers" in run("list", "--status", "suspended")


def _listed_ids(out: str) -> list[str]:
    return [line.split()[0] for line in out.splitlines()[1:-1]]


def test_list_pages_through_every_customer_once_in_name_order():
    # Names that tie, so the id decides the order inside them, across page boundaries.
    Customer.objects.bulk_create(
        Customer(name=f"Acme {i % 7:02d}", contact_email=f"c{i}@acme.ex") for i in range(23)
    )
    expected = [
        str(pk) for pk in Customer.objects.order_by("name", "id").values_list("pk", flat=True)
    ]
    seen, after, pages = [], None, 0
    while True:
        out = run("list", "--limit", "5", *(["--after", after] if after else []))
        ids = _listed_ids(out)
        pages += 1
        seen += ids
        if "more follow" not in out:
            assert f"{len(ids)} customers" in out
            break
        after = out.rsplit("--after ", 1)[1].strip()
        assert after == ids[-1]
    assert seen == expected and pages == 5
    assert "3 customers" in run("list", "--limit", "10", "--after", expected[19])


def test_list_takes_filters_with_paging():
    Customer.objects.bulk_create(
        Customer(name=f"Globex {i}", contact_email=f"g{i}@globex.ex", status=status)
        for i, status in enumerate(["active", "suspended", "active", "active"])
    )
    out = run("list", "--status", "active", "--limit", "2")
    assert "2 customers; more follow" in out
    rest = run("list", "--status", "active", "--after", _listed_ids(out)[-1])
    assert "1 customers" in rest and "more follow" not in rest


@pytest.mark.parametrize("limit", ["0", "-5", "1001", "10" * 20, "abc", "1.5", "5\x00", ""])
def test_list_refuses_a_bad_limit_saying_what_fits(limit):
    with pytest.raises(CommandError, match="--limit must be a whole number from 1 to 1000"):
        run("list", "--limit", limit)


@pytest.mark.parametrize(
    "after", ["not-a-uuid", "\x00\x01", "00000000-0000-4000-8000-000000000002"]
)
def test_list_refuses_an_unknown_start(after):
    with pytest.raises(CommandError, match=r"customer id|No customer"):
        run("list", "--after", after)


def test_update_token_replaces_at_once(ddb):
    customer_id, old = _created(run("create", "--name", "Initech", "--email", "it@initech.ex"))
    new = "ReplacementToken0123456789abcdef"
    out = run("update-token", "--customer-id", customer_id, "--token", new)
    assert "replaced" in out
    assert remote_token(ddb, old).status == "revoked"
    assert remote_token(ddb, new).status == "active"


def test_rotate_token_with_grace(ddb):
    customer_id, old = _created(run("create", "--name", "Initech", "--email", "it@initech.ex"))
    out = run("rotate-token", "--customer-id", customer_id, "--grace-hours", "6")
    new = out.split("New bearer token: ")[1].split()[0]
    assert remote_token(ddb, new).status == "active"
    old_item = remote_token(ddb, old)
    assert old_item.status == "active" and old_item.expires_at is not None
    # The old token is now rotating: a second rotation picks the new one.
    run("rotate-token", "--customer-id", customer_id)
    assert Token.objects.filter(customer_id=customer_id).count() == 3


def test_rotate_asks_for_a_prefix_when_ambiguous(ddb, customer):
    from customers import services

    a = services.token_create(customer=customer, label="a")
    services.token_create(customer=customer, label="b")
    with pytest.raises(CommandError, match="--token-prefix"):
        run("rotate-token", "--customer-id", str(customer.pk))
    prefix = a.token.display_prefix
    if Token.objects.filter(display_prefix__startswith=prefix).count() == 1:
        run("rotate-token", "--customer-id", str(customer.pk), "--token-prefix", prefix)


def test_revoke_token(ddb):
    customer_id, token = _created(run("create", "--name", "Initech", "--email", "it@initech.ex"))
    with pytest.raises(CommandError, match="No active token starting"):
        run("revoke-token", "--customer-id", customer_id, "--token-prefix", "zzzz")
    assert "Revoked" in run("revoke-token", "--customer-id", customer_id)
    assert remote_token(ddb, token).status == "revoked"
    with pytest.raises(CommandError, match="no active token"):
        run("revoke-token", "--customer-id", customer_id)


def test_update_limits(ddb, customer):
    out = run(
        "update-limits",
        "--customer-id",
        str(customer.pk),
        "--daily-limit",
        "1000",
        "--monthly-tokens",
        "5000000",
        "--rpm",
        "60",
        "--allowed-models",
        "sandbox.echo-v1",
    )
    assert "daily 1000" in out
    item = contract.get_customer(ddb, str(customer.pk))
    assert (item.daily_request_limit, item.monthly_token_quota, item.rpm_limit) == (
        1000,
        5000000,
        60,
    )
    assert item.allowed_models == ["sandbox.echo-v1"]
    run("update-limits", "--customer-id", str(customer.pk), "--daily-limit", "none")
    assert contract.get_customer(ddb, str(customer.pk)).daily_request_limit is None


@pytest.mark.parametrize("value", ["-5", "0", "lots", "1e3"])
def test_update_limits_refuses_bad_values(ddb, customer, value):
    with pytest.raises(CommandError, match="Daily request limit"):
        run("update-limits", "--customer-id", str(customer.pk), "--daily-limit", value)


def test_suspend_and_reactivate(ddb, customer):
    assert "suspended" in run("suspend", "--customer-id", str(customer.pk))
    assert contract.get_customer(ddb, str(customer.pk)).status == "suspended"
    assert "active" in run("reactivate", "--customer-id", str(customer.pk))


def test_reconcile_reports(ddb, customer):
    out = run("reconcile", "--dry-run")
    assert f"would repair customer {customer.pk}" in out
    out = run("reconcile")
    assert "repaired 1 items" in out
    assert "repaired 0 items" in run("reconcile")
