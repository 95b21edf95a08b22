"""Settings of the portal under gunicorn in the load benchmark: the test settings (DEBUG off,
static files from the app finders, locmem cache, in-memory broker) plus the loopback moto
server of the benchmark for the real-time DynamoDB counters (the test settings clear
AWS_ENDPOINT_URL, so it comes in as BENCH_AWS_ENDPOINT_URL)."""

import os

from portal.settings_test import *  # noqa: F403

AWS_ENDPOINT_URL = os.environ.get("BENCH_AWS_ENDPOINT_URL") or None
LOGGING["root"]["level"] = "WARNING"  # noqa: F405
