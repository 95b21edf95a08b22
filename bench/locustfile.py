"""Locust load of logged-in customers reading their pages (run by bench/bench_load.py).

BENCH_LOAD_SESSIONS holds comma-separated Django session keys of customer users; each simulated
user takes one in turn and sends it as the session cookie, then loops over the customer home,
usage and invoice list pages: with no think time (what the portal holds at saturation), or at
BENCH_LOAD_RATE requests per second per user when set (latency at a sustained load).
"""

import itertools
import os
import random

from locust import FastHttpUser, constant, task

_sessions = itertools.cycle(os.environ.get("BENCH_LOAD_SESSIONS", "").split(","))
_rate = float(os.environ.get("BENCH_LOAD_RATE") or 0)


def _poisson_think_time(user) -> float:
    """Exponential think time with mean 1/rate: users act independently, as real ones do.
    (locust's constant_throughput keeps every user on a fixed period, and the periods drift
    into step after any slow response, so the users then arrive in bursts.)"""
    return random.expovariate(_rate)


class CustomerReader(FastHttpUser):
    wait_time = _poisson_think_time if _rate else constant(0)

    def on_start(self):
        self.headers = {"Cookie": f"sessionid={next(_sessions)}"}

    def _get(self, path: str, name: str):
        with self.client.get(path, headers=self.headers, name=name, catch_response=True) as r:
            if r.status_code != 200:
                r.failure(f"status {r.status_code}")

    @task(3)
    def home(self):
        self._get("/app/", "customer home")

    @task(2)
    def usage(self):
        self._get("/app/usage/", "customer usage page")

    @task(2)
    def invoices(self):
        self._get("/app/billing/invoices/", "customer invoice list")
