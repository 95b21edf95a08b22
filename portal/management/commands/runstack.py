"""`make run`: the portal and every embedded stand-in it needs, on loopback, in one terminal.

Starts moto's threaded server (DynamoDB, S3, SES, SNS) in this process, creates the AWS
resources the code expects, then runs the web server, a Celery worker with beat, and the local
proxy as child processes. Ctrl-C (or any child dying) stops everything it started.
"""

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

from portal.management.commands.seed_demo import DEMO_CUSTOMER_EMAIL, DEMO_STAFF_EMAIL


def _port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _interrupt(signum, frame):
    raise KeyboardInterrupt


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

    def handle(self, *args, portal_port, aws_port, proxy_port, **options):
        from moto.server import ThreadedMotoServer

        for name, port in [
            ("PORTAL_PORT", portal_port),
            ("AWS_EMULATOR_PORT", aws_port),
            ("PROXY_PORT", proxy_port),
        ]:
            if not _port_is_free(port):
                raise CommandError(
                    f"Port {port} on 127.0.0.1 is in use (another `make run`?). "
                    f"Stop it, or choose another port: {name}=<port> make run"
                )

        endpoint = f"http://127.0.0.1:{aws_port}"
        os.environ["AWS_ENDPOINT_URL"] = endpoint
        settings.AWS_ENDPOINT_URL = endpoint
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "local-emulator")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "local-emulator")
        os.environ["PROXY_BASE_URL"] = f"http://127.0.0.1:{proxy_port}"

        moto = ThreadedMotoServer(ip_address="127.0.0.1", port=aws_port, verbose=False)
        moto.start()
        # The emulator's per-call access log (werkzeug) would bury the banner and the portal's
        # own output; errors still show.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self.stdout.write(f"AWS emulator (moto) on {endpoint}")
        # The emulator keeps nothing between runs: recreate what the code expects, then
        # let the portal re-sync DynamoDB from PostgreSQL/SQLite (the source of truth).
        call_command("create_aws_resources", stdout=self.stdout)
        call_command("customers", "reconcile", stdout=self.stdout)

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
        if importlib.util.find_spec("proxy.local"):
            commands["proxy"] = [python, "-m", "proxy.local", "--port", str(proxy_port)]

        children = {
            # Fixed argument lists built above from our own interpreter: no shell, no user input.
            name: subprocess.Popen(cmd, cwd=settings.BASE_DIR)  # noqa: S603
            for name, cmd in commands.items()
        }
        self._banner(portal_port, endpoint, proxy_port if "proxy" in commands else None)
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
                time.sleep(0.5)
        except KeyboardInterrupt:
            self.stdout.write("\nStopping…")
        finally:
            for child in children.values():
                if child.poll() is None:
                    child.send_signal(signal.SIGTERM)
            deadline = time.monotonic() + 10
            for child in children.values():
                try:
                    child.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    child.kill()
            moto.stop()
            self.stdout.write("Stopped everything `make run` started.")

    def _banner(self, portal_port, endpoint, proxy_port):
        line = "-" * 64
        out = [
            line,
            f"Portal:        http://127.0.0.1:{portal_port}/",
            f"Health:        http://127.0.0.1:{portal_port}/healthz",
        ]
        if proxy_port:
            out.append(f"Proxy:         http://127.0.0.1:{proxy_port}/  (OpenAI-compatible at /v1)")
        out += [
            f"AWS emulator:  {endpoint}",
            f"Staff login:    {DEMO_STAFF_EMAIL} / {settings.DEMO_STAFF_PASSWORD}",
            f"Customer login: {DEMO_CUSTOMER_EMAIL} / {settings.DEMO_CUSTOMER_PASSWORD}",
            "Press Ctrl-C to stop everything.",
            line,
        ]
        self.stdout.write(self.style.SUCCESS("\n".join(out)))
