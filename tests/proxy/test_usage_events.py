"""One JSON usage event per request: stdout always, S3 and local JSON-lines for billable calls,
with the usage app's field names; and no token, hash or Authorization header in any log."""

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

from proxy import contract, usage

from .conftest import BUCKET, chat, event, make_app

USAGE_APP_COLUMNS = {  # usage/duckdb_engine.py EVENT_COLUMNS, the columns the ingest reads
    "request_id",
    "timestamp",
    "customer_id",
    "token_id",
    "model_id",
    "model_alias",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "latency_ms",
    "status",
    "tags",
}


def test_events_go_to_s3_and_local_files_in_partitions(dynamodb, s3, principal, tmp_path):
    app = make_app(dynamodb, s3=s3, usage_bucket=BUCKET, usage_events_dir=str(tmp_path))
    token, customer, item = principal
    responses = [app.handle(event(chat(), token=token)) for _ in range(2)]
    refused = app.handle(event(chat(model="nope-model"), token=token))
    assert [r["statusCode"] for r in responses] == [200, 200] and refused["statusCode"] == 400
    now = datetime.now(UTC)
    prefix = f"usage-events/year={now:%Y}/month={now:%m}/day={now:%d}/"
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="usage-events/")["Contents"]]
    assert len(keys) == 2 and all(k.startswith(prefix) for k in keys)
    stored = [json.loads(s3.get_object(Bucket=BUCKET, Key=k)["Body"].read()) for k in keys]
    files = list(Path(tmp_path).glob(prefix + "*.jsonl"))
    assert len(files) == 1
    local = [json.loads(line) for line in files[0].read_text().splitlines()]
    assert sorted(e["request_id"] for e in local) == sorted(e["request_id"] for e in stored)
    for event_ in local:
        assert set(event_) >= USAGE_APP_COLUMNS
        assert event_["customer_id"] == customer.customer_id and event_["token_id"] == item.token_id
        assert event_["status"] == "success" and event_["model_id"] == "sandbox.echo-v1"
        assert event_["timestamp"].endswith("Z") and event_["client_ip"] == "203.0.113.7"
        assert isinstance(event_["input_tokens"], int)
    # stdout has one line per request, the refused one included (status rejected)
    printed = app.sink.stream.events()
    assert [e["status"] for e in printed] == ["success", "success", "rejected"]
    assert printed[2]["error_code"] == "unknown_model"


def test_event_fields_match_the_usage_app_and_the_glue_table():
    assert set(usage.EVENT_FIELDS) >= USAGE_APP_COLUMNS
    from usage.duckdb_engine import EVENT_COLUMNS

    assert list(EVENT_COLUMNS) == list(usage.EVENT_FIELDS) == list(contract.USAGE_EVENT_COLUMNS)


def test_no_secret_in_any_log_line(dynamodb, principal, caplog, capsys):
    caplog.set_level(logging.DEBUG)
    app = make_app(dynamodb)
    token, _, item = principal
    for body in (chat(), {"broken": True}):
        app.handle(event(body, token=token))
    app.handle(event(chat(), token=token + "x"))  # malformed
    app.handle(event("{", token=token))
    logged = app.sink.stream.getvalue() + caplog.text + capsys.readouterr().out
    assert logged
    for secret in (token, item.token_hash, "Bearer", "authorization", token[4:20]):
        assert secret.lower() not in logged.lower()


def test_the_usage_apps_duckdb_engine_reads_the_proxys_files(dynamodb, principal, tmp_path):
    from usage.duckdb_engine import DuckDBEngine
    from usage.query import RESULT_COLUMNS

    app = make_app(dynamodb, usage_events_dir=str(tmp_path))
    token, customer, _ = principal
    tags = {"x-application-id": "chatbot", "x-cost-center": "cc-7", "x-environment": "prod"}
    for text in ("one", "two two", "three three three"):
        assert app.handle(event(chat(text=text), token=token, headers=tags))["statusCode"] == 200
    app.handle(event(chat(model="nope-model"), token=token))  # refused: not billable
    expected_in = sum(e["input_tokens"] for e in app.sink.stream.events())
    rows = list(DuckDBEngine(tmp_path).daily_rows(datetime.now(UTC).date()))
    assert [dict(zip(RESULT_COLUMNS, row, strict=True)) for row in rows] == [
        {
            "customer_id": customer.customer_id,
            "model_id": "sandbox.echo-v1",
            "application_id": "chatbot",
            "cost_center": "cc-7",
            "environment": "prod",
            "requests": 3,
            "input_tokens": expected_in,
            "output_tokens": sum(e["output_tokens"] for e in app.sink.stream.events()),
            "cache_read_tokens": 0,
            "cache_write_tokens": 0,
            "invalid_column": "",
        }
    ]


def test_a_call_bedrock_failed_is_stored_for_the_error_rate_and_never_billed(
    dynamodb, principal, tmp_path
):
    """An admitted call that Bedrock fails goes to the event files (the latency page's error
    rate reads it); the billed rows keep to successful calls; a refusal before admission stays
    on stdout only (a flood of refused calls costs no S3 write)."""
    from botocore.exceptions import ReadTimeoutError

    from usage.duckdb_engine import DuckDBEngine
    from usage.query import OPERATIONS_RESULT_COLUMNS, RESULT_COLUMNS

    class FailingBedrock:
        def converse(self, **kwargs):
            raise ReadTimeoutError(endpoint_url="http://127.0.0.1:1/model/converse")

    token = principal[0]
    app = make_app(dynamodb, FailingBedrock(), usage_events_dir=str(tmp_path))
    assert app.handle(event(chat(), token=token))["statusCode"] == 200  # the sandbox answers
    assert app.handle(event(chat(model="nova-lite"), token=token))["statusCode"] == 504
    assert app.handle(event(chat(model="nope-model"), token=token))["statusCode"] == 400
    stored = [
        json.loads(line)
        for path in tmp_path.rglob("*.jsonl")
        for line in path.read_text().splitlines()
    ]
    assert sorted(e["status"] for e in stored) == ["success", "upstream_error"]
    day = datetime.now(UTC).date()
    engine = DuckDBEngine(tmp_path)
    billed = [dict(zip(RESULT_COLUMNS, row, strict=True)) for row in engine.daily_rows(day)]
    assert [(r["model_id"], r["requests"]) for r in billed] == [("sandbox.echo-v1", 1)]
    operations = [
        dict(zip(OPERATIONS_RESULT_COLUMNS, row, strict=True))
        for row in engine.operations_rows(day)
    ]
    by_model = {r["model_id"]: r for r in operations if r["grain"] == "model"}
    assert by_model["sandbox.echo-v1"]["errors"] == 0
    failed = next(r for model, r in by_model.items() if "nova" in model)
    assert (failed["requests"], failed["errors"]) == (1, 1)
