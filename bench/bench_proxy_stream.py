"""Benchmark: what the proxy's own code costs on a streamed answer (no I/O).

The real handler serves `stream: true` on /v1/chat/completions with DynamoDB and Bedrock
replaced by objects that answer at once (bench_proxy.py's InstantDynamoDB, and a Bedrock whose
ConverseStream yields CHUNKS text deltas and the metadata event from memory), so what is timed
is the proxy's work only:
1. to the first byte: from the event to the first chunk the client would receive (auth from
   the cache, parsing, the admission transaction's construction, opening the stream, the
   first SSE chunk). Goal < 1 ms.
2. per chunk: the rest of the stream (each upstream event observed for metering, rendered as an
   OpenAI chunk) and the settlement (counters, usage event), divided by the chunks. Goal
   < 50 us.
The same for Bedrock Runtime's converse-stream path (event-stream frames).

    .venv/bin/python bench/bench_proxy_stream.py
"""

from __future__ import annotations

import io
import json
import os
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_proxy import InstantDynamoDB, _items
from proxy import contract, handler
from proxy.config import Settings

STREAMS = int(os.environ.get("BENCH_PROXY_STREAMS", "1000"))
CHUNKS = 50


class InstantStreamingBedrock:
    def converse_stream(self, **kwargs):
        events = [{"messageStart": {"role": "assistant"}}]
        events += [
            {"contentBlockDelta": {"contentBlockIndex": 0, "delta": {"text": f"word{i} "}}}
            for i in range(CHUNKS)
        ]
        events += [
            {"contentBlockStop": {"contentBlockIndex": 0}},
            {"messageStop": {"stopReason": "end_turn"}},
            {
                "metadata": {
                    "usage": {"inputTokens": 12, "outputTokens": CHUNKS, "totalTokens": 62},
                    "metrics": {"latencyMs": 300},
                }
            },
        ]
        return {"stream": iter(events)}


def _event(token: str, path: str, body: dict) -> dict:
    return {
        "version": "2.0",
        "rawPath": path,
        "headers": {"authorization": f"Bearer {token}", "content-type": "application/json"},
        "requestContext": {
            "http": {"method": "POST", "path": path, "sourceIp": "203.0.113.7"},
            "requestId": str(uuid.uuid4()),
        },
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


OPENAI = (
    "/v1/chat/completions",
    {
        "model": "nova-lite",
        "messages": [{"role": "user", "content": "Tell me a story."}],
        "max_tokens": 200,
        "stream": True,
        "stream_options": {"include_usage": True},
    },
)
BEDROCK = (
    "/model/amazon.nova-lite-v1:0/converse-stream",
    {"messages": [{"role": "user", "content": [{"text": "Tell me a story."}]}]},
)


def _samples(path: str, body: dict) -> tuple[list[float], list[float]]:
    """Per stream: (CPU ms to the first chunk, CPU us per chunk for the rest)."""
    token, customer, item = _items(limit=1_000_000)
    app = handler.ProxyApp(
        Settings(tables=contract.table_names()),
        dynamodb=InstantDynamoDB(customer, item),
        bedrock=InstantStreamingBedrock(),
        stream=io.StringIO(),
    )
    first, per_chunk = [], []
    for number in range(STREAMS + 100):
        event = _event(token, path, body)
        started = time.thread_time_ns()
        response = app.handle_streaming(event)
        chunks = iter(response)
        next(chunks)
        at_first = time.thread_time_ns()
        received = list(chunks)
        response.close()
        ended = time.thread_time_ns()
        rest = len(received)
        app.sink.stream.seek(0)
        app.sink.stream.truncate()
        failed = any(b'"error"' in c or b":exception-type" in c for c in received)
        if response.status != 200 or rest < CHUNKS or failed:
            raise RuntimeError(f"stream answered {response.status}: {received[-1][:200]!r}")
        if number >= 100:  # the first 100 warm the cache and the code paths
            first.append((at_first - started) / 1e6)
            per_chunk.append((ended - at_first) / 1e3 / rest)
    return first, per_chunk


def _p(samples: list[float]) -> tuple[float, float]:
    samples = sorted(samples)
    return statistics.median(samples), samples[max(0, int(len(samples) * 0.99) - 1)]


def run() -> list[dict]:
    rows = []
    for label, (path, body) in (("OpenAI SSE", OPENAI), ("Bedrock event-stream", BEDROCK)):
        first, per_chunk = _samples(path, body)
        first_p50, first_p99 = _p(first)
        chunk_p50, chunk_p99 = _p(per_chunk)
        rows += [
            {
                "name": f"{label}: proxy CPU to the first byte, p50 / p99 "
                f"({STREAMS} warm streams, DynamoDB and Bedrock answering at once)",
                "value": f"{first_p50:.3f} / {first_p99:.3f}",
                "unit": "ms",
                "goal": "< 1",
                "met": first_p99 < 1,
            },
            {
                "name": f"{label}: proxy CPU per chunk ({CHUNKS} chunks, settlement included), "
                "p50 / p99",
                "value": f"{chunk_p50:.1f} / {chunk_p99:.1f}",
                "unit": "us",
                "goal": "< 50",
                "met": chunk_p99 < 50,
            },
        ]
    return rows


def main() -> int:
    print("| measure | value | unit | goal | met |")
    print("|---|---|---|---|---|")
    for row in run():
        met = "yes" if row["met"] else "**no**"
        print(f"| {row['name']} | {row['value']} | {row['unit']} | {row['goal']} | {met} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
