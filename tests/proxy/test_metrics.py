"""The proxy's metrics lines (proxy/metrics.py): one per request, each a valid CloudWatch
embedded metric format document, with the request's counts, cost and error; tag values kept
short and few."""

import json
import math
from datetime import UTC, datetime

import pytest
from botocore.exceptions import ClientError

from proxy import metrics

from .conftest import chat, event, make_app, put_customer, put_token
from .test_money_limits import COST, NOVA_MICRO, answer, nova, put_price

# The rules of "Specification: Embedded metric format" (Amazon CloudWatch User Guide,
# https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
# CloudWatch_Embedded_Metric_Format_Specification.html) and CloudWatch's own limits.
UNITS = {
    "Seconds", "Microseconds", "Milliseconds", "Bytes", "Kilobytes", "Megabytes", "Gigabytes",
    "Terabytes", "Bits", "Kilobits", "Megabits", "Gigabits", "Terabits", "Percent", "Count",
    "Bytes/Second", "Kilobytes/Second", "Megabytes/Second", "Gigabytes/Second",
    "Terabytes/Second", "Bits/Second", "Kilobits/Second", "Megabits/Second", "Gigabits/Second",
    "Terabits/Second", "Count/Second", "None",
}  # fmt: skip
MAX_DIMENSIONS_PER_SET = 30
MAX_METRICS_PER_DIRECTIVE = 100
MAX_VALUES_PER_METRIC = 100
MAX_DOCUMENT_BYTES = 1024 * 1024
MAX_DIMENSION_VALUE_LENGTH = 1024  # CloudWatch Dimension.Value: 1 to 1024 characters


def _number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def emf_problems(line: str) -> list[str]:
    """Every way `line` breaks the EMF specification (empty: a valid document)."""
    problems = []
    if len(line.encode()) > MAX_DOCUMENT_BYTES:
        problems.append("larger than a log event")
    try:
        root = json.loads(line)
    except ValueError:
        return ["not JSON"]
    if not isinstance(root, dict):
        return ["the root is not an object"]
    meta = root.get("_aws")
    if not isinstance(meta, dict):
        return ["no _aws object"]
    stamp = meta.get("Timestamp")
    if not isinstance(stamp, int) or isinstance(stamp, bool) or stamp < 0:
        problems.append("_aws.Timestamp is not an integer of milliseconds")
    directives = meta.get("CloudWatchMetrics")
    if not isinstance(directives, list):
        return [*problems, "_aws.CloudWatchMetrics is not an array"]
    for directive in directives:
        if not isinstance(directive, dict):
            problems.append("a MetricDirective is not an object")
            continue
        namespace = directive.get("Namespace")
        if not isinstance(namespace, str) or not 1 <= len(namespace) <= 255:
            problems.append("Namespace is not a string of 1 to 255 characters")
        dimension_sets = directive.get("Dimensions")
        if not isinstance(dimension_sets, list) or not dimension_sets:
            problems.append("Dimensions is not a non-empty array of DimensionSets")
            dimension_sets = []
        for dimension_set in dimension_sets:
            if not isinstance(dimension_set, list):
                problems.append("a DimensionSet is not an array")
                continue
            if len(dimension_set) > MAX_DIMENSIONS_PER_SET:
                problems.append(f"a DimensionSet has more than {MAX_DIMENSIONS_PER_SET} keys")
            for key in dimension_set:
                value = root.get(key) if isinstance(key, str) else None
                if not isinstance(key, str) or not 1 <= len(key) <= 255:
                    problems.append(f"dimension key {key!r} is not a string of 1 to 255")
                elif not isinstance(value, str):
                    problems.append(f"dimension {key} has no string member on the root")
                elif not 1 <= len(value) <= MAX_DIMENSION_VALUE_LENGTH or not value.strip():
                    problems.append(f"dimension {key}'s value {value!r} is not usable")
        definitions = directive.get("Metrics")
        if not isinstance(definitions, list):
            problems.append("Metrics is not an array")
            definitions = []
        if len(definitions) > MAX_METRICS_PER_DIRECTIVE:
            problems.append(f"more than {MAX_METRICS_PER_DIRECTIVE} MetricDefinitions")
        for definition in definitions:
            name = definition.get("Name") if isinstance(definition, dict) else None
            if not isinstance(name, str) or not 1 <= len(name) <= 255:
                problems.append(f"MetricDefinition {definition!r} has no Name")
                continue
            if "Unit" in definition and definition["Unit"] not in UNITS:
                problems.append(f"metric {name}: unit {definition['Unit']!r}")
            if definition.get("StorageResolution", 60) not in (1, 60):
                problems.append(f"metric {name}: StorageResolution is neither 1 nor 60")
            value = root.get(name)
            if isinstance(value, list):
                if len(value) > MAX_VALUES_PER_METRIC or not all(map(_number, value)):
                    problems.append(f"metric {name}: not an array of <= 100 numbers")
            elif not _number(value):
                problems.append(f"metric {name}: no number member on the root")
    return problems


def test_the_validator_finds_what_breaks_the_specification():
    good = {
        "_aws": {
            "Timestamp": 1574109732004,
            "CloudWatchMetrics": [
                {
                    "Namespace": "lambda-function-metrics",
                    "Dimensions": [["functionVersion"], []],
                    "Metrics": [{"Name": "time", "Unit": "Milliseconds"}],
                }
            ],
        },
        "functionVersion": "$LATEST",
        "time": 100,
    }
    assert emf_problems(json.dumps(good)) == []
    broken = json.loads(json.dumps(good))
    broken["_aws"]["Timestamp"] = "1574109732004"
    broken["time"] = "100"
    broken["functionVersion"] = 3
    broken["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Unit"] = "Tokens"
    broken["_aws"]["CloudWatchMetrics"][0]["Dimensions"].append([f"d{i}" for i in range(31)])
    found = " | ".join(emf_problems(json.dumps(broken)))
    for expected in ("Timestamp", "time: no number", "functionVersion has no string",
                     "unit 'Tokens'", "more than 30 keys"):  # fmt: skip
        assert expected in found, found
    assert emf_problems("not json") == ["not JSON"]


@pytest.fixture(autouse=True)
def fresh_cardinality(monkeypatch):
    monkeypatch.setattr(metrics, "_seen", {})


def lines_of(app) -> list[str]:
    return [line for line in app.sink.stream.getvalue().splitlines() if '"_aws"' in line]


def test_one_valid_metrics_line_per_request_with_its_counts_cost_and_tags(app, dynamodb, bedrock):
    put_price(dynamodb)
    customer = put_customer(dynamodb)
    token, _ = put_token(dynamodb, customer)
    answer(bedrock.stubber)
    tags = {"applicationId": "support-bot", "costCenter": "cc 42/ops", "environment": "prod"}
    ok = app.handle(event(nova(metadata=tags), token=token))
    refused = app.handle(event(chat(model="nope-model"), token=token))
    unauthenticated = app.handle(event(chat(), token="wrong"))
    assert [r["statusCode"] for r in (ok, refused, unauthenticated)] == [200, 400, 401]

    lines = lines_of(app)
    assert len(lines) == 3 == len(app.sink.stream.events())
    for line in lines:
        assert emf_problems(line) == [], line
    success, rejected, anonymous = (json.loads(line) for line in lines)
    (directive,) = success["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == metrics.NAMESPACE == "BedrockUsagePortal/Proxy"
    assert directive["Dimensions"] == [
        ["Mode"],
        ["ModelId"],
        ["ApplicationId"],
        ["CostCenter"],
        ["Environment"],
    ]
    assert {d["Name"]: d.get("Unit") for d in directive["Metrics"]} == metrics.METRICS
    assert {"Name": "LatencyMs", "Unit": "Milliseconds"} in directive["Metrics"]
    logged = app.sink.stream.events()[0]
    assert success["ModelId"] == NOVA_MICRO == logged["model_id"]
    assert (success["ApplicationId"], success["CostCenter"], success["Environment"]) == (
        "support-bot",
        "cc_42/ops",  # the space is not in the published alphabet; the event keeps it
        "prod",
    )
    assert logged["tags"]["costCenter"] == "cc 42/ops"
    assert success["Mode"] == "buffered"
    assert (success["Requests"], success["Errors"]) == (1, 0)
    assert (success["InputTokens"], success["OutputTokens"]) == (60, 40)
    assert success["CostMicros"] == COST  # the price it was admitted at
    assert success["LatencyMs"] == logged["latency_ms"]
    stamp = datetime.fromtimestamp(success["_aws"]["Timestamp"] / 1000, UTC)
    assert abs((datetime.now(UTC) - stamp).total_seconds()) < 60

    # A refusal is a request, not an error (a 4xx). A model the proxy does not know is not
    # published (callers' typos would each be a metric); untagged: no tag dimension sets.
    assert (rejected["Requests"], rejected["Errors"], rejected["CostMicros"]) == (1, 0, 0)
    assert rejected["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["Mode"]]
    assert "ModelId" not in rejected and "ApplicationId" not in rejected
    assert anonymous["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0] == ["Mode"]


def test_a_server_error_counts_as_an_error(app, dynamodb, bedrock):
    customer = put_customer(dynamodb)
    token, _ = put_token(dynamodb, customer)
    bedrock.stubber.add_client_error(
        "converse", service_error_code="ServiceUnavailableException", http_status_code=503
    )
    response = app.handle(event(chat(model="nova-micro"), token=token))
    assert response["statusCode"] >= 500
    (line,) = lines_of(app)
    assert emf_problems(line) == []
    document = json.loads(line)
    assert (document["Requests"], document["Errors"], document["CostMicros"]) == (1, 1, 0)


def test_a_stream_is_published_under_its_own_mode(dynamodb):
    app = make_app(dynamodb)
    customer = put_customer(dynamodb)
    token, _ = put_token(dynamodb, customer)
    response = app.handle_streaming(event(chat(stream=True), token=token))
    assert b"".join(response)
    response.close()
    (line,) = lines_of(app)
    assert emf_problems(line) == []
    document = json.loads(line)
    assert document["Mode"] == "stream" and document["Errors"] == 0
    assert document["OutputTokens"] == app.sink.stream.events()[0]["output_tokens"] > 0


def test_tag_values_are_short_safe_and_few(monkeypatch):
    monkeypatch.setattr(metrics, "MAX_VALUES_PER_DIMENSION", 3)
    now = datetime.now(UTC)
    published = []
    for i in range(6):
        tags = {"applicationId": f"app-{i}" + "x" * 200, "costCenter": '\u00e9t\u00e9 "q"\n'}
        document = metrics.document({"model_id": "m", "tags": tags, "http_status": 200}, now)
        assert emf_problems(json.dumps(document)) == []
        published.append(document["ApplicationId"])
        assert document["CostCenter"] == "t_q"  # non-ASCII, quotes, control characters: out
    assert all(len(v) <= metrics.MAX_VALUE_LENGTH for v in published)
    assert len(set(published[:3])) == 3 and published[3:] == [metrics.OTHER] * 3
    # A value already published stays itself.
    again = metrics.document({"tags": {"applicationId": published[0]}, "http_status": 200}, now)
    assert again["ApplicationId"] == published[0]
    # Nothing left after cleaning: the dimension set is left out, not published empty.
    blank = metrics.document({"tags": {"environment": " \t"}, "http_status": 200}, now)
    assert "Environment" not in blank and emf_problems(json.dumps(blank)) == []


def test_a_failing_metrics_line_never_fails_the_request(app, dynamodb, monkeypatch, caplog):
    customer = put_customer(dynamodb)
    token, _ = put_token(dynamodb, customer)

    def broken(*args, **kwargs):
        raise ClientError({"Error": {"Code": "Boom"}}, "x")

    monkeypatch.setattr(metrics, "document", broken)
    response = app.handle(event(chat(), token=token))
    assert response["statusCode"] == 200
    assert len(app.sink.stream.events()) == 1 and not lines_of(app)
    assert "request metrics not written: ClientError" in caplog.text
