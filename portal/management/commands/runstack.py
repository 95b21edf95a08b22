"""`make run`: the portal and every embedded stand-in it needs, on loopback, in one terminal.

Starts moto's threaded server (DynamoDB, S3, SES, SNS) in this process, creates the AWS
resources the code expects, then runs the web server, a Celery worker with beat, and the local
proxy as child processes. Ctrl-C (or any child dying) stops everything it started.

Every few seconds (a third of HEALTH_HEARTBEAT_STALE_SECONDS, at most 30) it reads the worker
and beat heartbeats (core/heartbeats.py). A worker that has not run a task for longer than
that threshold, or not at all within a start-up grace, is hung (its pool died, say): it says so
and restarts the worker, stopping its whole process group (pool processes and beat included).
"""

import contextlib
import importlib.util
import logging
import os
import signal
import socket
import subprocess
import sys
import time

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections, connection
from django.utils import timezone

from core.heartbeats import BEAT, WORKER, heartbeats
from portal import emulator
from portal.management.commands.seed_demo import DEMO_CUSTOMER_EMAIL, DEMO_STAFF_EMAIL

# Seconds a stopping worker gets between SIGTERM and SIGKILL (to its whole process group);
# a hung one gets less: its pool will not finish a warm shutdown.
WORKER_STOP_SECONDS = 10
HUNG_WORKER_STOP_SECONDS = 5


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


# In moto's default account; create_aws_resources makes the topic named by the ARN's end.
EMULATOR_ALERTS_TOPIC = "arn:aws:sns:{region}:123456789012:bedrock-usage-alerts"


def _set_local_addresses(portal_port: int, proxy_port: int) -> None:
    """Links in emails and snippets name the ports this stack really uses (PORTAL_PORT,
    PROXY_PORT), for this process and the ones it starts; a PORTAL_BASE_URL set by hand wins."""
    os.environ["PROXY_BASE_URL"] = f"http://127.0.0.1:{proxy_port}"
    settings.PROXY_BASE_URL = os.environ["PROXY_BASE_URL"]
    os.environ.setdefault("PORTAL_BASE_URL", f"http://127.0.0.1:{portal_port}")
    settings.PORTAL_BASE_URL = os.environ["PORTAL_BASE_URL"]


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _signal_group(child: subprocess.Popen, signum) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(child.pid, signum)


def _stop_group(child: subprocess.Popen, timeout: float) -> None:
    """SIGTERM to the child's process group, SIGKILL to what is left after `timeout`: a worker
    whose pool hangs does not finish a warm shutdown, and its pool processes and beat must not
    outlive it."""
    _signal_group(child, signal.SIGTERM)
    _reap_group(child, timeout)


def _reap_group(child: subprocess.Popen, timeout: float) -> None:
    """Wait up to `timeout` for a group sent SIGTERM, then SIGKILL whatever is left of it."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=max(0.1, timeout))
    _signal_group(child, signal.SIGKILL)
    child.wait()


class WorkerWatch:
    """Decides from the heartbeats whether the worker child is hung."""

    def __init__(self):
        self.threshold = float(settings.HEALTH_HEARTBEAT_STALE_SECONDS)
        self.every = max(2.0, min(30.0, self.threshold / 3))
        # A new worker must run its first task within this (beat sends one at start).
        self.grace = min(60.0, self.threshold)
        self.started(time.monotonic())

    def started(self, now: float) -> None:
        self.started_at = timezone.now()
        self.next_check = now + self.every

    def due(self, now: float) -> bool:
        if now < self.next_check:
            return False
        self.next_check = now + self.every
        return True

    def problem(self) -> str | None:
        """A sentence saying why the worker must be restarted, or None."""
        now = timezone.now()
        up = (now - self.started_at).total_seconds()
        if up < self.grace:
            return None
        try:
            close_old_connections()
            beats = heartbeats(now)
        except Exception:  # the database is busy or gone: nothing to decide on
            connection.close()
            return None
        worker, beat = beats.get(WORKER), beats.get(BEAT)
        # Only heartbeats of this worker (and its beat) count, not an earlier run's.
        worker_idle = up if worker is None or worker.at < self.started_at else worker.age
        beat_idle = up if beat is None or beat.at < self.started_at else beat.age
        limit = (
            self.threshold if worker is not None and worker.at >= self.started_at else self.grace
        )
        if worker_idle <= limit:
            return None
        if beat_idle <= self.threshold:
            return f"The Celery worker has not run a task for {worker_idle:.0f} s; restarting it."
        return (
            f"The Celery worker has not run a task for {worker_idle:.0f} s and its beat has not "
            f"ticked for {beat_idle:.0f} s; restarting both."
        )


class Command(BaseCommand):
    help = "Run the portal, Celery worker + beat, the local proxy and the AWS emulator on loopback."

    def add_arguments(self, parser):
        parser.add_argument(
            "--portal-port", type=int, default=int(os.environ.get("PORTAL_PORT", 8000))
        )
        parser.add_argument(
            "--aws-port", type=int, default=int(os.environ.get("AWS_EMULATOR_PORT", 5000))
        )
        parser.add_argument(
            "--proxy-port", type=int, default=int(os.environ.get("PROXY_PORT", 8001))
        )
        parser.add_argument(  # the proxy's HTTPS port (0: none), for the AWS SDKs' API keys
            "--proxy-tls-port", type=int, default=int(os.environ.get("PROXY_TLS_PORT", 8443))
        )

    def handle(self, *args, portal_port, aws_port, proxy_port, proxy_tls_port, **options):
        for name, port in [
            ("PORTAL_PORT", portal_port),
            ("AWS_EMULATOR_PORT", aws_port),
            ("PROXY_PORT", proxy_port),
            ("PROXY_TLS_PORT", proxy_tls_port),
        ]:
            if port and not _port_is_free(port):
                raise CommandError(
                    f"Port {port} on 127.0.0.1 is in use (another `make run`?). "
                    f"Stop it, or choose another port: {name}=<port> make run"
                )

        endpoint = f"http://127.0.0.1:{aws_port}"
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        settings.AWS_ENDPOINT_URL = endpoint
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local-emulator")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local-emulator")
        # Usage alerts go to a topic of the emulator too (created by create_aws_resources).
        topic = EMULATOR_ALERTS_TOPIC.format(region=settings.AWS_REGION)
        os.environ.setdefault("ALERTS_SNS_TOPIC_ARN", topic)
        settings.ALERTS_SNS_TOPIC_ARN = os.environ["ALERTS_SNS_TOPIC_ARN"]
        _set_local_addresses(portal_port, proxy_port)

        # With DynamoDB's per-request atomicity (portal/emulator.py): exact limits under load.
        moto = emulator.start(aws_port)
        # The emulator's per-call access log (werkzeug) would bury the banner and the portal's
        # own output; errors still show.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.stdout.write(f"AWS emulator (moto) on {endpoint}")
        # The emulator keeps nothing between runs: recreate what the code expects, then
        # let the portal re-sync DynamoDB from PostgreSQL/SQLite (the source of truth).
        call_command("create_aws_resources", stdout=self.stdout)
        call_command("customers", "reconcile", stdout=self.stdout)
        self._demo_counters()

        python = sys.executable
        commands = {
            "web": [python, "manage.py", "runserver", f"127.0.0.1:{portal_port}", "--noreload"],
            "worker": [
                python,
                "-m",
                "celery",
                "-A",
                "portal",
                "worker",
                "--beat",
                "--loglevel=INFO",
                "--concurrency=2",
                f"--schedule={settings.CELERY_BEAT_SCHEDULE_FILENAME}",
            ],
        }
        tls_dir = settings.BASE_DIR / settings.VAR_DIR / "proxy-tls"  # made by the proxy
        if importlib.util.find_spec("proxy.local"):
            commands["proxy"] = [python, "-m", "proxy.local", "--port", str(proxy_port)]
            commands["proxy"] += ["--tls-port", str(proxy_tls_port), "--tls-dir", str(tls_dir)]

        def start(name):
            # Fixed argument lists built above from our own interpreter: no shell, no user input.
            # The worker gets its own process group, so that stopping it reaches its pool
            # processes and beat too (and Ctrl-C reaches it only through this command).
            return subprocess.Popen(  # noqa: S603
                commands[name], cwd=settings.BASE_DIR, start_new_session=name == "worker"
            )

        children = {name: start(name) for name in commands}
        watch = WorkerWatch()
        proxy_tls = (proxy_tls_port, tls_dir / "cert.pem") if proxy_tls_port else None
        self._banner(portal_port, endpoint, proxy_port if "proxy" in commands else None, proxy_tls)
        # Ctrl-C, `kill` (SIGTERM) or a closed terminal (SIGHUP) all stop the children too;
        # SIGINT is set explicitly because a shell starts background jobs with it ignored.
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _interrupt)
        try:
            while True:
                for name, child in children.items():
                    if child.poll() is not None:
                        code = child.returncode
                        raise CommandError(f"The {name} process stopped (exit {code}); stopping.")
                if watch.due(time.monotonic()) and (problem := watch.problem()):
                    self.stdout.write(self.style.WARNING(problem))
                    _stop_group(children["worker"], HUNG_WORKER_STOP_SECONDS)
                    children["worker"] = start("worker")
                    watch.started(time.monotonic())
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            for name, child in children.items():
                if name == "worker":
                    _signal_group(child, signal.SIGTERM)
                elif child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + WORKER_STOP_SECONDS
            for name, child in children.items():
                if name == "worker":
                    _reap_group(child, deadline - time.monotonic())
                    continue
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
            moto.stop()
            self.stdout.write("Stopped everything `make run` started.")

    def _demo_counters(self):
        """The demo customers' live counters (this month, today) from their demo usage, so the
        pages' "this month" figures match the demo's imported usage (portal/demo_counters.py)."""
        from portal.demo_counters import demo_counters_write, demo_customers

        customers = demo_customers()
        if customers:
            written = demo_counters_write(customers=customers)
            self.stdout.write(f"Demo counters: {written} items written.")

    def _banner(self, portal_port, endpoint, proxy_port, proxy_tls=None):
        line = "-" * 64
        out = [
            line,
            f"Portal:        http://127.0.0.1:{portal_port}/",
            f"Health:        http://127.0.0.1:{portal_port}/healthz",
        ]
        if proxy_port:
            out.append(f"Proxy:         http://127.0.0.1:{proxy_port}/  (OpenAI-compatible at /v1)")
            if proxy_tls:  # the AWS SDKs send a Bedrock API key only over HTTPS
                port, cert = proxy_tls
                out.append(f"Proxy (HTTPS): https://127.0.0.1:{port}/  (AWS SDKs: API keys)")
                out.append(f"  certificate: {cert}  (boto3 verify=, curl --cacert)")
        out += [
            f"AWS emulator:  {endpoint}",
            f"Staff login:    {DEMO_STAFF_EMAIL} / {settings.DEMO_STAFF_PASSWORD}",
            f"Customer login: {DEMO_CUSTOMER_EMAIL} / {settings.DEMO_CUSTOMER_PASSWORD}",
            "Press Ctrl-C to stop everything.",
            line,
        ]
        self.stdout.write(self.style.SUCCESS("\n".join(out)))
