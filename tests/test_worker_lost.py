"""A real Celery worker (prefork, a subprocess on the Redis broker, against the test database)
is killed with SIGKILL: /healthz says so within the configured threshold, and a token revoked
through the API meanwhile still reaches DynamoDB, so the proxy refuses it on the next request.

Needs what CI has: Redis (REDIS_URL) and PostgreSQL (the worker process shares the database).
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import boto3
import pytest
from django.conf import settings
from django.db import connection
from rest_framework.test import APIClient

from core.heartbeats import BEAT, WORKER, heartbeat_record
from core.models import Heartbeat
from customers import services
from customers.models import SyncOutbox
from portal.celery import app
from proxy import contract
from tests.proxy.conftest import body_of, chat, event, free_port, make_app

ROOT = Path(__file__).resolve().parent.parent
STALE_SECONDS = 4

pytestmark = [
    pytest.mark.worker,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not os.environ.get("REDIS_URL"), reason="needs Redis (REDIS_URL)"),
    pytest.mark.skipif(
        connection.vendor != "postgresql", reason="the worker process needs a server database"
    ),
]


def _test_database_url() -> str:
    db = settings.DATABASES["default"]  # the test database pytest-django created
    user = quote(db.get("USER") or "")
    password = f":{quote(db['PASSWORD'])}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = f":{db['PORT']}" if db.get("PORT") else ""
    return f"postgres://{user}{password}@{host}{port}/{quote(db['NAME'])}"


def _wait_for(what, condition, timeout, log: Path):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log.exists() else ""
            pytest.fail(f"{what} within {timeout} s; worker log:\n{tail}")
        time.sleep(0.2)


@pytest.fixture
def aws_server(settings):
    """moto as a server, so the worker process and this one see the same tables."""
    from django.core.management import call_command
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    settings.AWS_ENDPOINT_URL = f"http://127.0.0.1:{port}"
    try:
        call_command("create_aws_resources", stdout=open(os.devnull, "w"))  # noqa: SIM115
        yield settings.AWS_ENDPOINT_URL
    finally:
        server.stop()


@pytest.fixture
def broker(settings):
    """Tasks go to a worker, as in production; this test sends its own over Redis (the test
    settings keep this process's broker in memory)."""
    previous = app.conf.task_always_eager
    app.conf.task_always_eager = False
    settings.HEALTH_HEARTBEAT_STALE_SECONDS = STALE_SECONDS
    try:
        yield app
    finally:
        with contextlib.suppress(Exception), app.connection_for_write(settings.REDIS_URL) as conn:
            conn.default_channel.queue_purge(app.conf.task_default_queue)
        app.conf.task_always_eager = previous
        from celery.result import _set_task_join_will_block

        _set_task_join_will_block(False)


@pytest.fixture
def worker(broker, aws_server, tmp_path):
    """`celery -A portal worker`, prefork with two pool processes, in its own process group."""
    log = tmp_path / "worker.log"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "CELERY_"))},
        "DJANGO_SETTINGS_MODULE": "portal.settings",
        "PORTAL_READ_DOT_ENV": "false",
        "PORTAL_VAR_DIR": str(tmp_path),
        "DEBUG": "true",
        "SECRET_KEY": "worker-lost-test-only",
        "EMAIL_URL": "consolemail://",
        "DATABASE_URL": _test_database_url(),
        "REDIS_URL": settings.REDIS_URL,
        "CELERY_BROKER_URL": settings.REDIS_URL,
        "AWS_ENDPOINT_URL": aws_server,
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "portal", "worker", "--pool=prefork",
             "--concurrency=2", "--loglevel=INFO", "--without-gossip", "--without-mingle",
             "--without-heartbeat", "-n", f"lost-{uuid.uuid4().hex[:8]}@%h"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    process.log = log
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


def _send(task, *args):
    with app.connection_for_write(settings.REDIS_URL) as conn:
        task.apply_async(args, connection=conn)


def _worker_heartbeat():
    row = Heartbeat.objects.filter(name=WORKER).first()
    return row.at if row else None


def test_killed_worker_shows_on_healthz_and_revocation_still_reaches_the_proxy(
    worker, aws_server, staff_user
):
    from customers.tasks import deliver_customer_outbox
    from portal.tasks import heartbeat

    # The worker runs tasks: its heartbeat, and the delivery of a new customer and token.
    _send(heartbeat)
    _wait_for("the worker ran no heartbeat task", _worker_heartbeat, 90, worker.log)
    customer = services.customer_create(name="Acme", contact_email="ops@acme.example")
    issued = services.token_create(customer=customer)
    _send(deliver_customer_outbox, str(customer.pk))
    pending = SyncOutbox.objects.filter(delivered_at__isnull=True)
    _wait_for("the worker delivered nothing", lambda: not pending.exists(), 30, worker.log)
    dynamodb = boto3.client("dynamodb", region_name=settings.AWS_REGION, endpoint_url=aws_server)
    proxy = make_app(dynamodb)
    assert proxy.handle(event(chat(), token=issued.plaintext))["statusCode"] == 200

    staff = APIClient()
    staff.force_login(staff_user)
    before = _worker_heartbeat()
    _send(heartbeat)
    _wait_for("no fresh heartbeat", lambda: _worker_heartbeat() > before, 30, worker.log)
    heartbeat_record(name=BEAT)  # beat is alive throughout (it runs elsewhere)
    response = staff.get("/healthz")
    assert response.status_code == 200, response.json()

    # SIGKILL: the worker and its pool processes, at once.
    os.killpg(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    killed = time.monotonic()
    while True:
        heartbeat_record(name=BEAT)
        _send(heartbeat)  # queued; nobody runs it
        response = staff.get("/healthz")
        if response.status_code == 503 or time.monotonic() - killed > STALE_SECONDS + 20:
            break
        time.sleep(0.25)
    took = time.monotonic() - killed
    assert response.status_code == 503, response.json()
    assert took <= STALE_SECONDS + 3, f"503 only after {took:.1f} s"
    checks = response.json()["checks"]
    assert [name for name, check in checks.items() if not check["ok"]] == ["worker"]
    assert "beat is alive" in checks["worker"]["detail"]

    # No worker: the revocation goes to DynamoDB from the web process itself.
    revoked = staff.post(f"/api/v1/customers/{customer.pk}/tokens/{issued.token.pk}/revoke/")
    assert revoked.status_code == 200
    assert not pending.exists()
    assert contract.get_token(dynamodb, contract.hash_token(issued.plaintext)).status == "revoked"
    refused = proxy.handle(event(chat(), token=issued.plaintext))
    assert refused["statusCode"] == 401
    assert body_of(refused)["error"]["code"] == "token_revoked"
