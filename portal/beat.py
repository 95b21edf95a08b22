"""Celery beat's scheduler with a heartbeat (CELERY_BEAT_SCHEDULER).

Beat records the "beat" heartbeat itself, at most every `beat_heartbeat_interval()` seconds,
and wakes up at least that often to do so. It also sends one worker heartbeat task as soon
as it starts, so a freshly started stack reports a live worker within seconds instead of
after the first scheduled heartbeat.
"""

import logging
import time

from celery.beat import PersistentScheduler
from django.db import close_old_connections

from core.heartbeats import (
    BEAT,
    beat_heartbeat_interval,
    heartbeat_record,
    worker_heartbeat_interval,
)

logger = logging.getLogger(__name__)


class HeartbeatScheduler(PersistentScheduler):
    _last_heartbeat = 0.0  # time.monotonic() of the last recorded heartbeat
    _sent_first_task = False

    def tick(self, *args, **kwargs):
        interval = beat_heartbeat_interval()
        if time.monotonic() - self._last_heartbeat >= interval:
            self._beat()
        if not self._sent_first_task:
            self._send_first_worker_heartbeat()
        next_tick = super().tick(*args, **kwargs)
        return min(next_tick, interval) if next_tick is not None else interval

    def _beat(self) -> None:
        try:
            close_old_connections()  # respect CONN_MAX_AGE, drop a broken connection
            heartbeat_record(name=BEAT)
        except Exception:  # a database hiccup must not stop the schedule
            logger.warning("could not record the beat heartbeat", exc_info=True)
        else:
            self._last_heartbeat = time.monotonic()

    def _send_first_worker_heartbeat(self) -> None:
        try:
            self.app.send_task("portal.tasks.heartbeat", expires=worker_heartbeat_interval())
        except Exception:  # the broker is down: the scheduled heartbeats will follow
            logger.warning("could not send the first worker heartbeat task", exc_info=True)
        self._sent_first_task = True
