"""Production engine: the usage SQL on Athena over the proxy's partitioned events in S3.

A query is started, polled with exponential backoff until it succeeds, fails or runs past
ATHENA_TIMEOUT_SECONDS (then it is cancelled), and its results are read page by page with
get_query_results' NextToken, so a day of any size streams into the bulk upsert.
The Glue table is defined in docs/usage.md (partition projection: no crawler needed).
"""

import datetime as dt
import time
from collections.abc import Callable, Iterator

from django.conf import settings

from core.aws import aws_client
from proxy import contract

from .query import (
    ATHENA_PERCENTILE,
    INTEGER_COLUMNS,
    OPERATIONS_INTEGER_COLUMNS,
    OPERATIONS_RESULT_COLUMNS,
    RESULT_COLUMNS,
    TOKEN_RESULT_COLUMNS,
    USER_INTEGER_COLUMNS,
    USER_RESULT_COLUMNS,
    daily_usage_sql,
    hourly_tokens_sql,
    operations_sql,
    token_last_used_sql,
    user_daily_sql,
)

HOURLY_COLUMNS = ("customer_id", "hour", "user_id", "application_id", "model_id", "tokens")


class AthenaQueryError(RuntimeError):
    pass


class AthenaTimeout(AthenaQueryError):
    pass


class AthenaEngine:
    name = "athena"
    page_size = 1000  # get_query_results' maximum

    def __init__(
        self,
        client=None,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        timeout: float | None = None,
        first_delay: float = 0.5,
        max_delay: float = 10.0,
    ):
        self.client = client or aws_client("athena")
        self.sleep, self.clock = sleep, clock
        self.timeout = settings.ATHENA_TIMEOUT_SECONDS if timeout is None else timeout
        self.first_delay, self.max_delay = first_delay, max_delay

    @property
    def source(self) -> str:
        return f'"{settings.ATHENA_DATABASE}"."{settings.ATHENA_TABLE}"'

    def daily_sql(self, day: dt.date) -> str:
        return daily_usage_sql(source=self.source, day=day)

    def daily_rows(self, day: dt.date) -> Iterator[tuple]:
        """Runs the query now (outside the caller's load transaction); pages are read lazily.
        A count that is not an integer is passed on as read, for the import to quarantine."""
        execution_id = self.run_query(self.daily_sql(day))
        records = self.result_records(execution_id, RESULT_COLUMNS, strict=False)
        return (tuple(record[c] for c in RESULT_COLUMNS) for record in records)

    def user_daily_rows(self, day: dt.date) -> Iterator[tuple]:
        execution_id = self.run_query(user_daily_sql(source=self.source, day=day))
        records = self.result_records(
            execution_id, USER_RESULT_COLUMNS, USER_INTEGER_COLUMNS, strict=False
        )
        return (tuple(record[c] for c in USER_RESULT_COLUMNS) for record in records)

    def token_last_used_rows(self, day: dt.date) -> Iterator[tuple]:
        execution_id = self.run_query(token_last_used_sql(source=self.source, day=day))
        records = self.result_records(execution_id, TOKEN_RESULT_COLUMNS, frozenset())
        return (tuple(record[c] for c in TOKEN_RESULT_COLUMNS) for record in records)

    def operations_rows(self, day: dt.date) -> Iterator[tuple]:
        """Hourly usage and latency rows (OPERATIONS_RESULT_COLUMNS order); a percentile Athena
        returns empty (no latency recorded) is passed on as "", counts as read (strict=False)."""
        sql = operations_sql(source=self.source, day=day, percentile=ATHENA_PERCENTILE)
        execution_id = self.run_query(sql)
        records = self.result_records(
            execution_id, OPERATIONS_RESULT_COLUMNS, OPERATIONS_INTEGER_COLUMNS, strict=False
        )
        return (tuple(record[c] for c in OPERATIONS_RESULT_COLUMNS) for record in records)

    def hourly_token_rows(self, now: dt.datetime, minimum: int) -> list[tuple]:
        sql = hourly_tokens_sql(source=self.source, now=now, minimum=minimum)
        execution_id = self.run_query(sql)
        integer = {"tokens"}
        return [
            tuple(r[c] for c in HOURLY_COLUMNS)
            for r in self.result_records(execution_id, HOURLY_COLUMNS, integer)
        ]

    def run_query(self, sql: str) -> str:
        """Start the query and wait for it; returns the execution id once it SUCCEEDED."""
        started = self.client.start_query_execution(
            QueryString=sql,
            QueryExecutionContext={"Database": settings.ATHENA_DATABASE},
            WorkGroup=settings.ATHENA_WORKGROUP,
            ResultConfiguration={"OutputLocation": settings.ATHENA_OUTPUT_LOCATION},
        )
        execution_id = started["QueryExecutionId"]
        deadline = self.clock() + self.timeout
        delay = self.first_delay
        while True:
            execution = self.client.get_query_execution(QueryExecutionId=execution_id)
            status = execution["QueryExecution"]["Status"]
            state = status["State"]
            if state == "SUCCEEDED":
                return execution_id
            if state in ("FAILED", "CANCELLED"):
                reason = status.get("StateChangeReason", "no reason given")
                raise AthenaQueryError(f"Athena query {execution_id} {state.lower()}: {reason}")
            if self.clock() + delay > deadline:
                self.client.stop_query_execution(QueryExecutionId=execution_id)
                raise AthenaTimeout(
                    f"Athena query {execution_id} still {state} after {self.timeout} s; cancelled"
                )
            self.sleep(delay)
            delay = min(delay * 2, self.max_delay)

    def result_records(
        self, execution_id: str, columns, integer_columns=INTEGER_COLUMNS, *, strict=True
    ) -> Iterator[dict]:
        """Each result row as a dict, page by page; the first row of page one is the header.
        Integer columns are read with int(); with strict=False a value int() refuses is kept
        as read (the import quarantines that row instead of failing the day)."""
        token = None
        header_seen = False
        while True:
            kwargs = {"QueryExecutionId": execution_id, "MaxResults": self.page_size}
            if token:
                kwargs["NextToken"] = token
            page = self.client.get_query_results(**kwargs)
            result_set = page["ResultSet"]
            names = [c["Name"] for c in result_set["ResultSetMetadata"]["ColumnInfo"]]
            missing = set(columns) - set(names)
            if missing:
                raise AthenaQueryError(f"Athena result lacks columns {sorted(missing)}")
            for row in result_set["Rows"]:
                values = [d.get("VarCharValue") for d in row["Data"]]
                if not header_seen:
                    header_seen = True
                    if values == names:
                        continue
                record = dict(zip(names, values, strict=False))
                for name in integer_columns:
                    record[name] = _integer(record[name], strict)
                for name in set(columns) - set(integer_columns):
                    record[name] = record[name] or ""
                yield record
            token = page.get("NextToken")
            if not token:
                return


def _integer(value, strict: bool):
    try:
        return int(value or 0)
    except ValueError:
        if strict:
            raise
        return value


# Athena DDL for the events (the columns of proxy/contract.py USAGE_EVENT_COLUMNS, as the Glue
# table of deploy/template.yaml has them). Partition projection lets new days
# appear without a crawler or MSCK REPAIR. The token counts are strings: the JSON SerDe fails
# the whole query on a value that does not fit a bigint column, so the SQL checks them instead.
def events_table_ddl(*, bucket: str | None = None) -> str:
    bucket = bucket or settings.USAGE_BUCKET
    location = f"s3://{bucket}/usage-events/"
    table = f"`{settings.ATHENA_DATABASE}`.`{settings.ATHENA_TABLE}`"
    columns = ",\n".join(
        f"  `{name}` {kind}" for name, kind in contract.USAGE_EVENT_COLUMNS.items()
    )
    return f"""CREATE EXTERNAL TABLE IF NOT EXISTS {table} (
{columns}
)
PARTITIONED BY (year string, month string, day string)
ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'
WITH SERDEPROPERTIES ('ignore.malformed.json' = 'true')
LOCATION '{location}'
TBLPROPERTIES (
  'projection.enabled' = 'true',
  'projection.year.type' = 'integer', 'projection.year.range' = '2024,2099',
  'projection.month.type' = 'integer', 'projection.month.range' = '1,12',
  'projection.month.digits' = '2',
  'projection.day.type' = 'integer', 'projection.day.range' = '1,31', 'projection.day.digits' = '2',
  'storage.location.template' = '{location}year=${{year}}/month=${{month}}/day=${{day}}/'
)"""
