"""boto3 clients for the portal, pointed at the embedded emulator when AWS_ENDPOINT_URL is set.

Building a client costs about 10 ms of CPU (endpoint rules, service model), which was the
largest single item of the customer home and usage pages in the page benchmark (bench/), so
clients are built once per process and kept: botocore clients are thread-safe.
"""

import copy
import os
import threading

import boto3
from botocore.config import Config
from django.conf import settings

_DEFAULT_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"})
_clients: dict[tuple, object] = {}
_lock = threading.Lock()


def aws_client(service: str, *, config: Config | None = None):
    config = config or _DEFAULT_CONFIG
    # The pid: a forked worker builds its own (connection pools are not shared across a fork).
    options = tuple(sorted((k, repr(v)) for k, v in config._user_provided_options.items()))
    key = (service, settings.AWS_REGION, settings.AWS_ENDPOINT_URL, options, os.getpid())
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = boto3.client(
                    service,
                    region_name=settings.AWS_REGION,
                    endpoint_url=settings.AWS_ENDPOINT_URL,
                    # A copy: botocore rewrites the retries options of the Config it is given.
                    config=copy.deepcopy(config),
                )
                _clients[key] = client
    return client
