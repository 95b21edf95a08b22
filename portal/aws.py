"""boto3 clients for the portal, pointed at the embedded emulator when AWS_ENDPOINT_URL is set."""

import boto3
from botocore.config import Config
from django.conf import settings

_DEFAULT_CONFIG = Config(retries={"max_attempts": 3, "mode": "standard"})


def aws_client(service: str, *, config: Config | None = None):
    return boto3.client(
        service,
        region_name=settings.AWS_REGION,
        endpoint_url=settings.AWS_ENDPOINT_URL,
        config=config or _DEFAULT_CONFIG,
    )
