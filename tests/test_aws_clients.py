"""core.aws keeps one boto3 client per service, endpoint and options (building one costs
about 10 ms of CPU per page otherwise; see docs/benchmarks.md)."""

from botocore.config import Config

from core.aws import aws_client


def test_the_same_client_is_reused(settings):
    settings.AWS_ENDPOINT_URL = None
    assert aws_client("dynamodb") is aws_client("dynamodb")
    assert aws_client("dynamodb") is not aws_client("s3")


def test_endpoint_region_and_options_each_get_their_own_client(settings):
    settings.AWS_ENDPOINT_URL = None
    default = aws_client("dynamodb")
    fast = aws_client("dynamodb", config=Config(connect_timeout=1, retries={"max_attempts": 1}))
    assert fast is not default
    assert fast is aws_client(
        "dynamodb", config=Config(connect_timeout=1, retries={"max_attempts": 1})
    )
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:5999"
    emulator = aws_client("dynamodb")
    assert emulator is not default and emulator.meta.endpoint_url == "http://127.0.0.1:5999"
    settings.AWS_REGION = "eu-west-1"
    assert aws_client("dynamodb").meta.region_name == "eu-west-1"
