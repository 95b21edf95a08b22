"""`make run`'s stack (manage.py runstack): it starts the portal, the Celery worker with beat,
the local proxy and the AWS emulator on loopback, and a stop signal stops every one of them.
Runs the real command in a subprocess, with its own SQLite file and queue folder."""

import os
import signal
import socket
import subprocess
import sys
import time
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
    assert left == []
    assert not (ROOT / "control").exists(), "the file broker's control folder belongs in var/"
    assert not _listening(portal) and not _listening(proxy) and not _listening(aws)
