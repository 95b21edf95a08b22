"""`make run`'s stack (manage.py runstack): it starts the portal, the Celery worker with beat,
the local proxy and the AWS emulator on loopback, and a stop signal stops every one of them; a
worker whose pool died is reported and restarted. Runs the real command in a subprocess, with
its own SQLite file and queue folder."""

import contextlib
import json
import os
import signal
import socket
import sqlite3
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc (Linux)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _processes_of(var_dir: Path) -> list[int]:
    """Processes started for this stack: their environment names its PORTAL_VAR_DIR."""
    marker = f"PORTAL_VAR_DIR={var_dir}".encode() + b"\0"
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "environ").read_bytes() + b"\0":
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture
def stack_env(tmp_path):
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="portal.settings",
        PORTAL_READ_DOT_ENV="false",
        PORTAL_VAR_DIR=str(tmp_path),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        DEBUG="true",
        SECRET_KEY="runstack-test-only",
        EMAIL_URL="consolemail://",
        CELERY_BROKER_URL="filesystem://",
        PROXY_TLS_PORT=str(_free_port()),  # the proxy's HTTPS port, not the default 8443
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--no-input", "-v", "0"],
        cwd=ROOT, env=env, check=True, timeout=300,
    )  # fmt: skip
    return env


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_the_stack_serves_and_a_stop_signal_stops_everything(stack_env, tmp_path, stop_signal):
    portal, aws, proxy = _free_port(), _free_port(), _free_port()
    stack = subprocess.Popen(
        [sys.executable, "manage.py", "runstack", "--portal-port", str(portal),
         "--aws-port", str(aws), "--proxy-port", str(proxy)],
        cwd=ROOT, env=stack_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        health = None
        while time.monotonic() < deadline and stack.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{portal}/healthz", timeout=2) as r:
                    health = r.status
                if _listening(proxy):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert health == 200, "the portal never answered /healthz"
        assert _listening(proxy) and _listening(aws)
        tls, cert = int(stack_env["PROXY_TLS_PORT"]), tmp_path / "proxy-tls" / "cert.pem"
        assert _https_status(tls, cert) == 401  # verified with the certificate under var/
        started = _processes_of(tmp_path)
        assert len(started) >= 4, "runstack, web, worker and proxy processes"

        stack.send_signal(stop_signal)
        output, _ = stack.communicate(timeout=60)
        time.sleep(1)
        left = _processes_of(tmp_path)
    finally:
        for pid in _processes_of(tmp_path):  # whatever a failed stop left behind
            os.kill(pid, signal.SIGKILL)
    assert "Stopped everything `make run` started." in output
    assert f"https://127.0.0.1:{tls}/" in output and f"certificate: {cert}" in output
    assert left == []
    assert not (ROOT / "control").exists(), "the file broker's control folder belongs in var/"
    assert not _listening(portal) and not _listening(proxy) and not _listening(aws)
    assert not _listening(tls)


def _https_status(port: int, cert: Path) -> int:
    """GET /v1/models without a token over TLS, trusting only the proxy's own certificate."""
    deadline = time.monotonic() + 30
    while not (cert.exists() and _listening(port)) and time.monotonic() < deadline:
        time.sleep(0.2)
    context = ssl.create_default_context(cafile=str(cert))
    try:
        url = f"https://127.0.0.1:{port}/v1/models"
        with urllib.request.urlopen(url, context=context, timeout=10):
            return 200
    except urllib.error.HTTPError as error:
        return error.code


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:  # field 4: the parent's pid
            found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes()
    except OSError:
        return b""


def _health(port: int) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_a_worker_whose_pool_died_is_reported_and_restarted(stack_env, tmp_path):
    """Both pool processes SIGKILLed: the worker stays connected but runs nothing. /healthz
    names it, and runstack says so and replaces the worker's whole process group."""
    stack_env = {**stack_env, "HEALTH_HEARTBEAT_STALE_SECONDS": "12"}
    portal, aws, proxy = _free_port(), _free_port(), _free_port()
    stack = subprocess.Popen(
        [sys.executable, "manage.py", "runstack", "--portal-port", str(portal),
         "--aws-port", str(aws), "--proxy-port", str(proxy)],
        cwd=ROOT, env=stack_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(stack.stdout), daemon=True)
    reader.start()

    def wait_for(what, condition, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and stack.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                if result := condition():
                    return result
            time.sleep(0.3)
        raise AssertionError(f"{what}; runstack said:\n" + "".join(lines[-60:]))

    try:
        wait_for("the stack never got healthy", lambda: _health(portal)[0] == 200, 120)
        [worker] = [pid for pid in _children(stack.pid) if b"celery" in _cmdline(pid)]
        with sqlite3.connect(tmp_path / "db.sqlite3") as db:
            [(beat,)] = db.execute("SELECT pid FROM portal_heartbeat WHERE name = 'beat'")
        pool = [pid for pid in _children(worker) if pid != beat]
        assert len(pool) == 2, "two prefork pool processes"
        for pid in pool:
            os.kill(pid, signal.SIGKILL)

        def worker_stale():
            status, body = _health(portal)
            return status == 503 and body["checks"]["worker"]["detail"] == "stale" and body

        body = wait_for("/healthz never reported the worker", worker_stale, 60)
        assert body["checks"]["beat"]["detail"] == "fresh"
        assert body["checks"]["database"]["ok"] and body["checks"]["outbox"]["ok"]
        said = "The Celery worker has not run a task for"
        wait_for("runstack said nothing", lambda: any(said in line for line in lines), 30)
        assert "restarting it." in next(line for line in lines if said in line)
        wait_for("the stack never got healthy again", lambda: _health(portal)[0] == 200, 90)
        assert not Path(f"/proc/{worker}").exists(), "the old worker was not stopped"
        assert not [pid for pid in [beat, *pool] if Path(f"/proc/{pid}").exists()]
        [restarted] = [pid for pid in _children(stack.pid) if b"celery" in _cmdline(pid)]
        assert restarted != worker

        stack.send_signal(signal.SIGTERM)
        stack.wait(timeout=60)
        reader.join(timeout=10)
        time.sleep(1)
        left = _processes_of(tmp_path)
    finally:
        for pid in _processes_of(tmp_path):  # whatever a failed stop left behind
            os.kill(pid, signal.SIGKILL)
    assert "Stopped everything `make run` started." in "".join(lines)
    assert left == []


def test_links_name_the_ports_the_stack_uses(monkeypatch, settings):
    from portal.management.commands import runstack

    for name in ("PORTAL_BASE_URL", "PROXY_BASE_URL"):  # recorded, so restored afterwards
        monkeypatch.setenv(name, "placeholder")
        monkeypatch.delenv(name)
    runstack._set_local_addresses(8123, 8124)
    assert settings.PORTAL_BASE_URL == "http://127.0.0.1:8123"
    assert settings.PROXY_BASE_URL == "http://127.0.0.1:8124"

    monkeypatch.setenv("PORTAL_BASE_URL", "https://portal.example.test")
    runstack._set_local_addresses(8123, 8124)
    assert settings.PORTAL_BASE_URL == "https://portal.example.test"
