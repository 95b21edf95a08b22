"""deploy/template.yaml parses, passes cfn-lint, and has every name the code expects; the
streaming routes invoke the image whose entry point is our runtime loop (deploy/proxy.Dockerfile),
the others stay buffered."""

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from proxy import contract, metrics, usage

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "template.yaml"
FUNCTIONS = ("ProxyFunction", "ProxyStreamingFunction")


class CfnLoader(yaml.SafeLoader):
    """Accepts the short intrinsic functions (!Ref, !Sub, !GetAtt, ...) as {"Fn": value}."""


def _intrinsic(loader, suffix, node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {suffix: value}


CfnLoader.add_multi_constructor("!", _intrinsic)


@pytest.fixture(scope="module")
def template() -> dict:
    return yaml.load(TEMPLATE.read_text(), Loader=CfnLoader)


def resources(template, kind):
    return {name: r["Properties"] for name, r in template["Resources"].items() if r["Type"] == kind}


def param_default(template, value):
    if isinstance(value, dict) and "Ref" in value:
        return template["Parameters"][value["Ref"]]["Default"]
    return value


def test_tables_match_the_contract(template):
    tables = {
        param_default(template, p["TableName"]): p
        for p in resources(template, "AWS::DynamoDB::Table").values()
    }
    names = contract.table_names()
    for table, keys in contract._key_schemas(names).items():
        props = tables[table]
        assert [(k["AttributeName"], k["KeyType"]) for k in props["KeySchema"]] == keys
        assert props["BillingMode"] == "PAY_PER_REQUEST"
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
        if table not in (names.customers, names.prices):
            assert props["TimeToLiveSpecification"]["AttributeName"] == contract.TTL_ATTRIBUTE


def test_glue_columns_are_the_event_fields(template):
    (table,) = resources(template, "AWS::Glue::Table").values()
    columns = {c["Name"]: c["Type"] for c in table["TableInput"]["StorageDescriptor"]["Columns"]}
    # The one definition of the event (proxy/contract.py), names, order and types.
    assert columns == contract.USAGE_EVENT_COLUMNS
    assert list(columns) == list(usage.EVENT_FIELDS)
    assert [p["Name"] for p in table["TableInput"]["PartitionKeys"]] == ["year", "month", "day"]
    location = table["TableInput"]["StorageDescriptor"]["Location"]["Sub"]
    assert location.endswith(f"/{usage.EVENTS_PREFIX}/")
    assert table["TableInput"]["Parameters"]["projection.enabled"] == "true"
    template_path = table["TableInput"]["Parameters"]["storage.location.template"]["Sub"]
    assert (
        f"/{usage.EVENTS_PREFIX}/year=${{!year}}/month=${{!month}}/day=${{!day}}/" in template_path
    )


def test_glue_and_athena_names_match_the_portal(template, settings):
    assert template["Parameters"]["GlueDatabaseName"]["Default"] == settings.ATHENA_DATABASE
    assert template["Parameters"]["GlueTableName"]["Default"] == settings.ATHENA_TABLE
    from usage.athena import events_table_ddl
    from usage.duckdb_engine import EVENT_COLUMNS

    # Both engines read every column of the event, in its order, from the same definition.
    assert list(EVENT_COLUMNS) == list(contract.USAGE_EVENT_COLUMNS)
    ddl = events_table_ddl(bucket="b")
    for name, kind in contract.USAGE_EVENT_COLUMNS.items():
        assert f"`{name}` {kind}," in ddl or f"`{name}` {kind}\n)" in ddl


def _env_names_read_by(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = ast.unparse(node.func)
            if func in ("os.environ.get", "_int", "_list", "os.getenv"):
                names.add(node.args[0].value)
    return names


@pytest.mark.parametrize("name", FUNCTIONS)
def test_function_environment_has_every_variable_the_code_reads(template, name):
    function = template["Resources"][name]["Properties"]
    variables = set(function["Environment"]["Variables"])
    read = _env_names_read_by(ROOT / "proxy" / "config.py") | _env_names_read_by(
        ROOT / "proxy" / "contract.py"
    )
    local_only = {"AWS_REGION", "AWS_DEFAULT_REGION", "USAGE_EVENTS_DIR", "BEDROCK_ENDPOINT_URL"}
    local_only.add("PROXY_DYNAMODB_TIMEOUT_SECONDS")  # the emulator's; the Lambda keeps 5 s
    assert read - local_only <= variables
    assert {
        "CUSTOMERS_TABLE",
        "TOKENS_TABLE",
        "USAGE_COUNTERS_TABLE",
        "PRICES_TABLE",
        "PROXY_PRICE_CACHE_SECONDS",
        "USAGE_BUCKET",
    } <= variables


def test_both_functions_run_the_same_proxy_the_same_way(template):
    """Two deployments of one package: the managed runtime for buffered routes, our runtime
    loop in an image for streamed ones. Same settings and permissions, except the time they
    may take."""
    buffered, streaming = (template["Resources"][name]["Properties"] for name in FUNCTIONS)
    assert buffered["Handler"] == "proxy.handler.lambda_handler"
    assert buffered["Runtime"] == "python3.12"
    assert streaming["PackageType"] == "Image"
    assert "Handler" not in streaming and "Runtime" not in streaming
    assert buffered["Architectures"] == streaming["Architectures"]
    timing = {"PROXY_BEDROCK_TIMEOUT_SECONDS"}
    variables = [
        {k: v for k, v in f["Environment"]["Variables"].items() if k not in timing}
        for f in (buffered, streaming)
    ]
    assert variables[0] == variables[1]
    assert buffered["Policies"] == streaming["Policies"]


@pytest.mark.parametrize("name", FUNCTIONS)
def test_least_privilege_policy(template, name):
    statements = template["Resources"][name]["Properties"]["Policies"][0]["Statement"]
    actions = {
        a
        for s in statements
        for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert actions == {
        "dynamodb:GetItem",
        "dynamodb:ConditionCheckItem",
        "dynamodb:UpdateItem",
        # The prices table only: every price item at once (proxy/prices.py).
        "dynamodb:Scan",
        "s3:PutObject",
        "bedrock:InvokeModel",
        # ConverseStream and InvokeModelWithResponseStream (streamed answers).
        "bedrock:InvokeModelWithResponseStream",
    }
    (scan,) = [s for s in statements if "dynamodb:Scan" in s["Action"]]
    assert scan["Resource"] == {"GetAtt": "PricesTable.Arn"}
    s3 = next(s for s in statements if s["Action"] == "s3:PutObject")
    assert s3["Resource"]["Sub"].endswith(f"/{usage.EVENTS_PREFIX}/*")


def test_bucket_encrypted_with_lifecycle_and_alarms(template):
    (bucket,) = resources(template, "AWS::S3::Bucket").values()
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    prefixes = {r["Prefix"] for r in bucket["LifecycleConfiguration"]["Rules"]}
    assert f"{usage.EVENTS_PREFIX}/" in prefixes
    alarms = resources(template, "AWS::CloudWatch::Alarm")
    metrics = {a.get("MetricName") for a in alarms.values()} | {
        m["MetricStat"]["Metric"]["MetricName"]
        for a in alarms.values()
        for m in a.get("Metrics", [])
        if "MetricStat" in m
    }
    assert {"Errors", "Throttles", "Duration"} <= metrics
    # The handler turns its own failures into 5xx answers, so the error *rate* customers see is
    # the API's 5xx over its request count (REST API metric names).
    rates = [
        a
        for a in alarms.values()
        if {
            m["MetricStat"]["Metric"]["MetricName"]
            for m in a.get("Metrics", [])
            if "MetricStat" in m
        }
        == {"5XXError", "Count"}
    ]
    assert len(rates) == 1
    (expression,) = [m["Expression"] for m in rates[0]["Metrics"] if "Expression" in m]
    assert "errors / requests" in expression
    assert resources(template, "AWS::Athena::WorkGroup")


def test_cfn_lint():
    cfn_lint = shutil.which("cfn-lint") or str(Path(sys.executable).parent / "cfn-lint")
    if not Path(cfn_lint).exists():
        pytest.skip("cfn-lint is not installed")
    result = subprocess.run([cfn_lint, str(TEMPLATE)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_lambda_package_is_the_proxy_package_only(template, tmp_path):
    """What `sam build` runs for ProxyFunction (BuildMethod: makefile), from a scratch directory
    as SAM does: the artifact holds proxy/*.py and nothing else, and its handler imports."""
    function = template["Resources"]["ProxyFunction"]
    assert function["Metadata"]["BuildMethod"] == "makefile"
    code_dir = (TEMPLATE.parent / function["Properties"]["CodeUri"]).resolve()
    assert code_dir == TEMPLATE.parent
    if not shutil.which("make"):
        pytest.skip("make is not installed")
    scratch, artifacts = tmp_path / "scratch", tmp_path / "artifacts"
    scratch.mkdir()
    artifacts.mkdir()
    subprocess.run(
        [
            "make",
            "-f",
            str(code_dir / "Makefile"),
            "build-ProxyFunction",
            f"ARTIFACTS_DIR={artifacts}",
        ],
        cwd=scratch,
        check=True,
        capture_output=True,
        timeout=60,
    )
    packaged = sorted(
        p.relative_to(artifacts).as_posix() for p in artifacts.rglob("*") if p.is_file()
    )
    assert packaged == sorted(f"proxy/{p.name}" for p in (ROOT / "proxy").glob("*.py"))
    module, _, function_name = function["Properties"]["Handler"].rpartition(".")
    code = (
        f"import {module}; assert callable({module}.{function_name}); "
        f"assert {module}.__file__.startswith({str(artifacts)!r}), {module}.__file__"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=artifacts,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(artifacts)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name", FUNCTIONS)
def test_a_bedrock_call_ends_before_the_lambda_does(template, monkeypatch, name):
    """One attempt, connect + read under the function's Timeout (API Gateway's limit): a slow
    model gets the proxy's 504, not a killed function without an answer or an event."""
    from proxy import config, handler

    variables = template["Resources"][name]["Properties"]["Environment"]["Variables"]
    monkeypatch.setenv("PROXY_BEDROCK", "on")
    monkeypatch.setenv("PROXY_BEDROCK_TIMEOUT_SECONDS", variables["PROXY_BEDROCK_TIMEOUT_SECONDS"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    app = handler.build_app(config.load())
    bedrock_config = app.bedrock.meta.config
    timeout = template["Resources"][name]["Properties"]["Timeout"]
    assert bedrock_config.connect_timeout + bedrock_config.read_timeout <= timeout - 3
    assert bedrock_config.retries["total_max_attempts"] == 1
    if name == "ProxyStreamingFunction":
        # Also under the 5 minutes API Gateway lets a stream stay silent (regional endpoint).
        assert bedrock_config.connect_timeout + bedrock_config.read_timeout < 300


# --- API Gateway: buffered and streamed routes ---------------------------------------------

STREAMED = {"/v1/chat/completions", "/bedrock", "/invoke", "/model/{proxy+}"}
BUFFERED = {"/", "/{proxy+}", "/v1/{proxy+}"}


def _paths(template) -> dict[str, str]:
    """Method logical id -> the resource path it serves."""
    api_resources = resources(template, "AWS::ApiGateway::Resource")

    def path_of(reference) -> str:
        if reference == {"GetAtt": "ProxyApi.RootResourceId"}:
            return ""
        resource = api_resources[reference["Ref"]]
        return f"{path_of(resource['ParentId'])}/{resource['PathPart']}"

    return {
        name: path_of(method["ResourceId"]) or "/"
        for name, method in resources(template, "AWS::ApiGateway::Method").items()
    }


def test_the_rest_api_streams_model_calls_and_buffers_the_rest(template):
    (api,) = resources(template, "AWS::ApiGateway::RestApi").values()
    assert api["EndpointConfiguration"]["Types"] == ["REGIONAL"]
    methods = resources(template, "AWS::ApiGateway::Method")
    paths = _paths(template)
    assert set(paths.values()) == STREAMED | BUFFERED
    functions = template["Resources"]
    for name, method in methods.items():
        integration = method["Integration"]
        assert method["HttpMethod"] == "ANY" and integration["Type"] == "AWS_PROXY"
        assert integration["IntegrationHttpMethod"] == "POST"
        uri = integration["Uri"]["Sub"]
        if paths[name] in STREAMED:
            # InvokeWithResponseStream: Lambda API version 2021-11-15.
            assert integration["ResponseTransferMode"] == "STREAM", name
            assert uri.endswith(
                ":lambda:path/2021-11-15/functions/${ProxyStreamingFunction.Arn}"
                "/response-streaming-invocations"
            ), name
            timeout = functions["ProxyStreamingFunction"]["Properties"]["Timeout"]
            assert timeout == 900  # API Gateway streams for at most 15 minutes
        else:
            assert integration["ResponseTransferMode"] == "BUFFERED", name
            assert uri.endswith(
                ":lambda:path/2015-03-31/functions/${ProxyFunction.Arn}/invocations"
            ), name
            timeout = functions["ProxyFunction"]["Properties"]["Timeout"]
            assert timeout == 29  # API Gateway's default buffered integration timeout
        assert integration["TimeoutInMillis"] == timeout * 1000, name


def test_every_method_is_deployed_and_may_invoke_its_function(template):
    methods = set(resources(template, "AWS::ApiGateway::Method"))
    (deployment_name,) = [
        name
        for name, r in template["Resources"].items()
        if r["Type"] == "AWS::ApiGateway::Deployment"
    ]
    assert set(template["Resources"][deployment_name]["DependsOn"]) == methods
    (stage,) = resources(template, "AWS::ApiGateway::Stage").values()
    assert stage["DeploymentId"] == {"Ref": deployment_name}
    assert {s["HttpMethod"] for s in stage["MethodSettings"]} == {"*"}
    assert stage["MethodSettings"][0]["ThrottlingRateLimit"] > 0
    permissions = resources(template, "AWS::Lambda::Permission").values()
    allowed = {p["FunctionName"]["GetAtt"] for p in permissions}
    assert allowed == {f"{name}.Arn" for name in FUNCTIONS}
    for permission in permissions:
        assert permission["Action"] == "lambda:InvokeFunction"
        assert permission["Principal"] == "apigateway.amazonaws.com"
        assert "${ProxyApi}/*" in permission["SourceArn"]["Sub"]
    url = template["Outputs"]["ProxyUrl"]["Value"]["Sub"]
    assert url.endswith("/${ProxyApiStage}/")


def test_the_streaming_image_runs_our_runtime_loop(template):
    """What `sam build` builds for ProxyStreamingFunction: AWS's Python base image (the same
    Python as the buffered function), the proxy package and deploy/bootstrap as ENTRYPOINT."""
    function = template["Resources"]["ProxyStreamingFunction"]
    context = (TEMPLATE.parent / function["Metadata"]["DockerContext"]).resolve()
    assert context == ROOT
    dockerfile = context / function["Metadata"]["Dockerfile"]
    assert dockerfile == ROOT / "deploy" / "proxy.Dockerfile"
    lines = [
        line.strip()
        for line in dockerfile.read_text().splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]
    python = template["Resources"]["ProxyFunction"]["Properties"]["Runtime"]  # python3.12
    assert lines[0] == f"FROM public.ecr.aws/lambda/python:{python.removeprefix('python')}"
    assert "COPY proxy/*.py /var/task/proxy/" in lines
    assert "COPY deploy/bootstrap /var/task/bootstrap" in lines
    assert lines[-1] == 'ENTRYPOINT ["/var/task/bootstrap"]'
    # Nothing runs at build time, so an arm64 image builds on an x86 host without emulation.
    assert not [line for line in lines if line.startswith("RUN")]
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert {".venv", "var", ".env"} <= set(ignored)

    bootstrap = ROOT / "deploy" / "bootstrap"
    assert os.access(bootstrap, os.X_OK)
    text = bootstrap.read_text()
    assert text.startswith("#!/bin/sh\n")
    assert "exec python3 -m proxy.runtime" in text


# --- alarms on the proxy's own metrics (proxy/metrics.py) -----------------------------------


def _metric_stats(alarm: dict) -> list[dict]:
    """The metrics an alarm reads: its single metric, or each MetricStat of its metric math."""
    if "MetricName" in alarm:
        return [
            {
                "Namespace": alarm["Namespace"],
                "MetricName": alarm["MetricName"],
                "Dimensions": alarm.get("Dimensions", []),
            }
        ]
    return [m["MetricStat"]["Metric"] for m in alarm.get("Metrics", []) if "MetricStat" in m]


def _proxy_alarms(template) -> dict:
    return {
        name: alarm
        for name, alarm in resources(template, "AWS::CloudWatch::Alarm").items()
        if any(m["Namespace"] == metrics.NAMESPACE for m in _metric_stats(alarm))
    }


def test_proxy_metric_alarms_read_what_the_proxy_writes(template):
    """Every alarm on the proxy's namespace names a metric, a dimension and a dimension value
    proxy/metrics.py really publishes (a typo would leave an alarm without data, silently)."""
    alarms = _proxy_alarms(template)
    assert alarms
    published_sets = {tuple(s) for s in metrics.DIMENSION_SETS}
    for name, alarm in alarms.items():
        for metric in _metric_stats(alarm):
            assert metric["Namespace"] == metrics.NAMESPACE, name
            assert metric["MetricName"] in metrics.METRICS, name
            dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            assert tuple(dimensions) in published_sets, name
            assert dimensions.get(metrics.MODE, metrics.MODES[0]) in metrics.MODES, name
        if "Unit" in alarm:
            assert alarm["Unit"] == metrics.METRICS[alarm["MetricName"]], name
        assert alarm["AlarmActions"] == [{"Ref": "AlarmTopic"}], name
        assert alarm["TreatMissingData"] == "notBreaching", name
        threshold = alarm["Threshold"]
        assert isinstance(threshold, dict) and threshold["Ref"] in template["Parameters"], name


def test_latency_alarms_on_p95_and_p99_of_buffered_answers(template):
    latency = {
        alarm["ExtendedStatistic"]: alarm
        for alarm in _proxy_alarms(template).values()
        if alarm.get("MetricName") == "LatencyMs"
    }
    assert set(latency) == {"p95", "p99"}
    assert metrics.METRICS["LatencyMs"] == "Milliseconds"
    for percentile, alarm in latency.items():
        assert alarm["Dimensions"] == [{"Name": metrics.MODE, "Value": "buffered"}]
        # Metrics come from logs, a little late: M out of N.
        assert alarm["DatapointsToAlarm"] < alarm["EvaluationPeriods"]
        parameter = template["Parameters"][alarm["Threshold"]["Ref"]]
        assert parameter["Type"] == "Number" and percentile in alarm["Threshold"]["Ref"].lower()
    p95, p99 = (template["Parameters"][latency[p]["Threshold"]["Ref"]] for p in ("p95", "p99"))
    assert p95["Default"] <= p99["Default"]


def test_error_rate_alarm_is_errors_over_requests_of_both_modes(template):
    (alarm,) = [
        a
        for a in _proxy_alarms(template).values()
        if {m["MetricName"] for m in _metric_stats(a)} == {"Errors", "Requests"}
    ]
    stats = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    for stat in stats.values():
        assert stat["Stat"] == "Sum" and stat["Period"] == 300
    seen = {
        (s["Metric"]["MetricName"], s["Metric"]["Dimensions"][0]["Value"]) for s in stats.values()
    }
    assert seen == {(m, mode) for m in ("Errors", "Requests") for mode in metrics.MODES}
    expressions = {m["Id"]: m for m in alarm["Metrics"] if "Expression" in m}
    (returned,) = [m for m in alarm["Metrics"] if m.get("ReturnData", True)]
    assert returned["Id"] in expressions
    rate = returned["Expression"]["Sub"]
    assert "100 * errors / requests" in rate and "${ErrorRateMinimumRequests}" in rate
    for total in ("errors", "requests"):
        expression = expressions[total]["Expression"]
        assert all(f"FILL({i}, 0)" in expression for i in stats if i.startswith(total)), total
    assert alarm["Threshold"] == {"Ref": "ErrorRateThresholdPercent"}


def test_the_alert_topic_can_take_alarms_and_is_the_portals(template):
    """CloudWatch alarms cannot publish to a topic under the AWS managed key alias/aws/sns: the
    topic's key is the stack's own, and its policy lets CloudWatch use it."""
    (topic,) = resources(template, "AWS::SNS::Topic").values()
    assert topic["KmsMasterKeyId"] == {"Ref": "AlarmTopicKey"}
    key = template["Resources"]["AlarmTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    (cloudwatch,) = [
        s
        for s in key["KeyPolicy"]["Statement"]
        if s["Principal"].get("Service") == "cloudwatch.amazonaws.com"
    ]
    assert set(cloudwatch["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey*"}
    assert template["Outputs"]["AlertsTopicArn"]["Value"] == {"Ref": "AlarmTopic"}
