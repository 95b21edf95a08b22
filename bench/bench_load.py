"""Benchmark: the portal under gunicorn on loopback, loaded by locust for 60 s.

Mixed read traffic of logged-in customers (customer home 3 : usage page 2 : invoice list 2,
no think time) from BENCH_LOAD_USERS concurrent users spread over 20 customer accounts (one
session each, large customers included) of the shared data set. gunicorn serves
bench.settings (test settings + a loopback moto server for the real-time counters) on a free
127.0.0.1 port with BENCH_LOAD_WORKERS workers. Two phases: SECONDS (60) at saturation for the
requests per second held and the errors, then BENCH_LOAD_STEADY_SECONDS (30) at about 60 % of
that rate for the latency a sustained load sees (p95 at saturation is mostly queueing). In the
steady phase each user waits an exponential think time (mean users / rate) after each answer,
so arrivals are independent as real users' are; the rate achieved is reported beside it.
Every process is started here and stopped here; the run is bounded by
locust's --run-time and a subprocess timeout.

    .venv/bin/python -m bench.bench_load           # prints a markdown table
    BENCH_LOAD_SECONDS=10 BENCH_SCALE=0.01 .venv/bin/python -m bench.bench_load
"""

import csv
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from bench import dataset

ROOT = Path(__file__).resolve().parent.parent
SECONDS = int(os.environ.get("BENCH_LOAD_SECONDS", "60"))
USERS = int(os.environ.get("BENCH_LOAD_USERS", "12"))
WORKERS = int(os.environ.get("BENCH_LOAD_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_LOAD_THREADS", "1"))  # > 1: gthread workers
ACCOUNTS = 20
STEADY_SECONDS = int(os.environ.get("BENCH_LOAD_STEADY_SECONDS", "30"))
HELD_SHARE = 0.6  # the steady phase runs at this share of the saturated rate
GOAL_P95_MS = 150


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sessions(customers: int) -> list[str]:
    """One logged-in session per customer account, written straight to the session store."""
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    from core.models import User

    numbers = [n for n in range(customers) if n % 100 in (7, 1, 2, 3, 4, 5)][:ACCOUNTS]
    emails = [dataset.customer_email(n) for n in numbers]
    keys = []
    for user in User.objects.filter(email__in=emails):
        session = SessionStore()
        session[SESSION_KEY] = str(user.pk)
        session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        session[HASH_SESSION_KEY] = user.get_session_auth_hash()
        session.create()
        keys.append(session.session_key)
    return keys


def _wait_until_up(url: str, process, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}")
        try:
            urllib.request.urlopen(url, timeout=2)  # loopback only
            return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"gunicorn did not answer on {url}")


def _stop(process) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _percentile(values, percent):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(percent / 100 * (len(ordered) - 1)))]


def _aggregated(stats_csv: Path) -> dict:
    with stats_csv.open() as f:
        rows = {r["Name"]: r for r in csv.DictReader(f)}
    return rows


def _locust(host: str, env: dict, seconds: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "load"
        subprocess.run(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"),
             "--headless", "--users", str(USERS), "--spawn-rate", str(USERS),
             "--run-time", f"{seconds}s", "--host", host, "--csv", str(prefix),
             "--only-summary", "--loglevel", "WARNING", "--stop-timeout", "5"],
            env=env, cwd=ROOT, check=False, timeout=seconds + 120,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        return _aggregated(Path(f"{prefix}_stats.csv"))


def _bench() -> list[dict]:
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's access log

    url = dataset.database_url()
    dataset.setup_django(url)
    details = dataset.ensure()
    from django.conf import settings
    from django.core.management import call_command

    from portal import emulator

    moto_port = free_port()
    moto = emulator.start(moto_port)  # as `make run` starts it
    moto_url = f"http://127.0.0.1:{moto_port}"
    gunicorn = None
    access_log = Path(tempfile.mkstemp(prefix="bench-load-access-", suffix=".log")[1])
    try:
        settings.AWS_ENDPOINT_URL = moto_url
        call_command("create_aws_resources", verbosity=0, stdout=open(os.devnull, "w"))  # noqa: SIM115
        sessions = _sessions(details["counts"]["customers"])
        port = free_port()
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": url,
            "BENCH_AWS_ENDPOINT_URL": moto_url,
            "PYTHONPATH": str(ROOT),
        }
        gunicorn = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "portal.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", str(WORKERS), "--threads", str(THREADS),
             "--access-logfile", str(access_log),
             "--access-logformat", "%(M)s %(s)s %(U)s", "--log-level", "warning"],
            env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        host = f"http://127.0.0.1:{port}"
        _wait_until_up(f"{host}/healthz", gunicorn)
        locust_env = {**env, "BENCH_LOAD_SESSIONS": ",".join(sessions)}
        stats = _locust(host, locust_env, SECONDS)
        held = float(stats["Aggregated"]["Requests/s"])
        rate = round(held * HELD_SHARE, 1)
        steady_from = len(access_log.read_text().splitlines())
        steady = _locust(host, {**locust_env, "BENCH_LOAD_RATE": str(rate / USERS)}, STEADY_SECONDS)
    finally:
        if gunicorn is not None:
            _stop(gunicorn)
        moto.stop()
    server_ms = [
        int(line.split()[0])
        for line in access_log.read_text().splitlines()[steady_from:]
        if line.split()[2].startswith("/app/")
    ]
    access_log.unlink()
    total = stats["Aggregated"]
    requests = int(total["Request Count"])
    failures = int(total["Failure Count"])
    result = [
        {
            "name": f"customer pages under gunicorn ({WORKERS} workers x {THREADS} threads), "
            f"{USERS} users without think time, {SECONDS} s: requests/s held "
            f"({requests:,} requests, {failures} errors)",
            "value": f"{float(total['Requests/s']):.1f}",
            "unit": "req/s",
            "goal": "0 errors",
            "met": failures == 0 and requests > 0,
        },
        {
            "name": "  p50 / p95 latency at saturation (queueing included)",
            "value": f"{total['50%']} / {total['95%']}",
            "unit": "ms",
            "goal": "",
        },
    ]
    steady_total = steady["Aggregated"]
    steady_failures = int(steady_total["Failure Count"])
    achieved = int(steady_total["Request Count"]) / STEADY_SECONDS
    result.append(
        {
            "name": f"  steady load, {HELD_SHARE:.0%} of that rate asked ({rate:g} req/s), "
            f"{achieved:.1f} req/s achieved for {STEADY_SECONDS} s: p50 / p95 "
            f"({steady_total['Request Count']} requests, {steady_failures} errors)",
            "value": f"{steady_total['50%']} / {steady_total['95%']}",
            "unit": "ms",
            "goal": f"p95 < {GOAL_P95_MS}, 0 errors",
            "met": float(steady_total["95%"]) < GOAL_P95_MS and steady_failures == 0,
        }
    )
    if server_ms:
        result.append(
            {
                "name": "    server time in gunicorn at the steady rate (access log), p50 / p95",
                "value": f"{statistics.median(server_ms):.0f} / {_percentile(server_ms, 95):.0f}",
                "unit": "ms",
                "goal": "",
            }
        )
    for name in ("customer home", "customer usage page", "customer invoice list"):
        row = steady.get(name)
        if row:
            result.append(
                {
                    "name": f"    {name} at the steady rate: p50 / p95",
                    "value": f"{row['50%']} / {row['95%']}",
                    "unit": "ms",
                    "goal": "",
                }
            )
    return result


def run() -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.bench_load", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SECONDS + STEADY_SECONDS + 600,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    if "--json" in sys.argv:
        print(json.dumps(_bench()))
    else:
        print("| measure | value | unit | goal | met |\n|---|---|---|---|---|")
        for r in run():
            met = "" if r.get("met") is None else ("yes" if r["met"] else "**no**")
            print(f"| {r['name']} | {r['value']} | {r['unit']} | {r['goal']} | {met} |")
