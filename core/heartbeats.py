"""Heartbeats of the background processes, in the database (`core.models.Heartbeat`).

- "worker": written by `portal.tasks.heartbeat`, a task beat sends every
  `worker_heartbeat_interval()` seconds, so it is fresh only while a worker's pool really
  executes tasks (a worker whose pool died or hangs keeps its broker connection but stops
  writing it).
- "beat": written by beat itself (`portal.beat.HeartbeatScheduler`) every
  `beat_heartbeat_interval()` seconds.

Beat fresh and worker stale means the worker is down, hung or has every pool process busy:
/healthz answers 503 naming it, and `make run` restarts its worker.
"""

import logging
import os
import socket
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

WORKER = "worker"
BEAT = "beat"


def stale_after() -> float:
    """Seconds after which a heartbeat counts as stale (HEALTH_HEARTBEAT_STALE_SECONDS)."""
    return float(settings.HEALTH_HEARTBEAT_STALE_SECONDS)


def worker_heartbeat_interval() -> float:
    """How often beat sends the heartbeat task: a third of the threshold, 5 to 60 s."""
    return max(5.0, min(60.0, stale_after() / 3))


def beat_heartbeat_interval() -> float:
    """How often beat records its own heartbeat: a third of the threshold, 1 to 30 s."""
    return max(1.0, min(30.0, stale_after() / 3))


def heartbeat_record(*, name: str, at: datetime | None = None) -> datetime:
    """Record that `name` is alive now (one row per name, updated in place)."""
    from .models import Heartbeat

    at = at or timezone.now()
    fields = {"at": at, "host": socket.gethostname()[:255], "pid": os.getpid()}
    if not Heartbeat.objects.filter(name=name).update(**fields):
        try:
            with transaction.atomic():
                Heartbeat.objects.create(name=name, **fields)
        except IntegrityError:  # another process created it first
            Heartbeat.objects.filter(name=name).update(**fields)
    return at


@dataclass(frozen=True)
class Pulse:
    name: str
    at: datetime
    age: float  # seconds
    host: str
    pid: int | None

    @property
    def stale(self) -> bool:
        return self.age > stale_after()

    def describe(self) -> str:
        where = f" on {self.host} (pid {self.pid})" if self.host else ""
        return f"{self.age:.0f} s ago{where}"


def heartbeats(now: datetime | None = None) -> dict[str, Pulse]:
    """The recorded heartbeats by name, with their age in seconds."""
    from .models import Heartbeat

    now = now or timezone.now()
    return {
        row.name: Pulse(
            name=row.name,
            at=row.at,
            age=max(0.0, (now - row.at).total_seconds()),
            host=row.host,
            pid=row.pid,
        )
        for row in Heartbeat.objects.all()
    }
