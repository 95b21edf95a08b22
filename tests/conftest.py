"""Shared fixtures: users of each role, a customer account, and AWS through moto."""

import os

import boto3
import pytest
from moto import mock_aws

from core.models import User
from customers.models import Customer

TEST_PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Rate-limit counters and other cached state never leak from one test to the next.

    Celery's process-wide "joining would block" flag is reset too: eager tasks run from
    other threads (e.g. the concurrency tests) can leave it set, which makes every later
    eager `result.get()` raise.
    """
    from celery.result import _set_task_join_will_block
    from django.core.cache import cache

    cache.clear()
    _set_task_join_will_block(False)
    yield
    cache.clear()


@pytest.fixture
def customer(db):
    return Customer.objects.create(name="Acme Analytics", contact_email="billing@acme.example")


@pytest.fixture
def other_customer(db):
    return Customer.objects.create(name="Globex Research", contact_email="ops@globex.example")


@pytest.fixture
def staff_user(db):
    return User.objects.create_user(
        "staff@example.com", TEST_PASSWORD, is_staff=True, full_name="Sam Staff"
    )


@pytest.fixture
def customer_user(db, customer):
    return User.objects.create_user(
        "user@acme.example", TEST_PASSWORD, customer=customer, full_name="Casey Customer"
    )


@pytest.fixture
def staff_client(client, staff_user):
    client.force_login(staff_user)
    return client


@pytest.fixture
def customer_client(client, customer_user):
    client.force_login(customer_user)
    return client


@pytest.fixture
def aws(settings):
    """moto in-process for every AWS service, with the tables and bucket the code expects."""
    from django.core.management import call_command

    os.environ.setdefault("AWS_DEFAULT_REGION", settings.AWS_REGION)
    with mock_aws():
        settings.AWS_ENDPOINT_URL = None
        call_command("create_aws_resources", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
        yield boto3.session.Session(region_name=settings.AWS_REGION)


@pytest.fixture
def celery_worker_on_broker(settings):
    """A real Celery worker thread consuming from the configured broker (Redis in CI).

    Tasks are sent over the broker, not run eagerly, so this is the path production takes.
    Celery reads CELERY_BROKER_URL from the environment before its configuration: the test
    settings point it at REDIS_URL when there is one, and the check below fails loudly if the
    worker would not be on that broker.
    """
    from celery.contrib.testing.worker import start_worker

    from portal.celery import app

    broker = settings.REDIS_URL or "memory://"
    previous = (app.conf.task_always_eager, app.conf.broker_url)
    app.conf.task_always_eager = False
    app.conf.broker_url = broker
    with app.connection_for_write() as connection:
        assert connection.as_uri().split(":", 1)[0] == broker.split(":", 1)[0], connection.as_uri()
    # Start from an empty queue: a task an earlier test left there (published when its worker
    # had stopped) would run in this test's worker and change what it measures.
    app.control.purge()
    try:
        with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
            yield app
    finally:
        from celery.result import _set_task_join_will_block

        app.conf.task_always_eager, app.conf.broker_url = previous
        # The worker thread marks joins as blocking process-wide; eager tasks in later tests
        # would refuse result.get() if it stayed set.
        _set_task_join_will_block(False)
