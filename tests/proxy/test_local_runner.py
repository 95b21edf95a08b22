"""The local runner on 127.0.0.1 against a moto server: the OpenAI Python SDK, the documented
Python `requests` example with the sandbox model, and the events in USAGE_EVENTS_DIR."""

import json
import os
import shutil
import subprocess
import threading
from datetime import UTC, datetime
from pathlib import Path

import boto3
import openai
import pytest
import requests

from proxy import contract, local

from .conftest import REGION, put_customer, put_token


@pytest.fixture
def runner(moto_server, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server)
    monkeypatch.setenv("USAGE_EVENTS_DIR", str(tmp_path))
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("PROXY_BEDROCK", raising=False)
    monkeypatch.delenv("USAGE_BUCKET", raising=False)
    server = local.build(0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    dynamodb = boto3.client("dynamodb", region_name=REGION, endpoint_url=moto_server)
    customer = put_customer(dynamodb, daily_request_limit=5)
    token, _ = put_token(dynamodb, customer)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield base, token, customer, dynamodb, tmp_path
    finally:
        server.shutdown()
        server.server_close()


def test_openai_sdk_against_the_local_runner(runner):
    base, token, customer, dynamodb, events_dir = runner
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=token, max_retries=0)
    completion = client.chat.completions.create(
        model="sandbox.echo-v1", messages=[{"role": "user", "content": "Hello!"}]
    )
    assert completion.choices[0].message.content == "Echo: Hello!"
    assert completion.usage.prompt_tokens >= 1 and completion.usage.completion_tokens >= 1
    stream = client.chat.completions.create(
        model="sandbox.echo-v1",
        messages=[{"role": "user", "content": "Stream me"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "Echo: Stream me" and chunks[-1].usage.completion_tokens >= 1
    assert "sandbox.echo-v1" in [m.id for m in client.models.list()]
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(
            base_url=f"{base}/v1", api_key=contract.generate_token(), max_retries=0
        ).models.list()
    with pytest.raises(openai.APIStatusError) as refused:
        client.chat.completions.create(
            model="nova-lite", messages=[{"role": "user", "content": "x"}]
        )
    assert refused.value.status_code == 502  # no Bedrock in the emulator: a clear upstream error
    assert refused.value.body["code"] == "bedrock_not_configured"
    for _ in range(3):
        client.chat.completions.create(
            model="sandbox.echo-v1", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.RateLimitError) as limited:
        client.chat.completions.create(
            model="sandbox.echo-v1", messages=[{"role": "user", "content": "x"}]
        )
    assert limited.value.response.headers["Retry-After"]
    now = datetime.now(UTC)
    folder = Path(events_dir) / f"usage-events/year={now:%Y}/month={now:%m}/day={now:%d}"
    events = [
        json.loads(line) for f in folder.glob("*.jsonl") for line in f.read_text().splitlines()
    ]
    # The five answered calls, and the admitted one that found no Bedrock (stored for the error
    # rates, never billed); the refused ones (bad token, rate limit) are on stdout only.
    statuses = sorted(e["status"] for e in events)
    assert statuses == ["success"] * 5 + ["upstream_error"]
    snapshot = contract.get_usage_snapshot(dynamodb, customer.customer_id, now.date())
    assert snapshot["day"]["requests"] == 5


def test_the_python_example_of_the_docs_with_the_sandbox(runner):
    base, token, *_ = runner
    payload = {
        "modelId": "sandbox.echo-v1",
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 1000,
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": "What is the capital of France?"}],
            }
        ],
    }
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    response = requests.post(f"{base}/bedrock", headers=headers, json=payload, timeout=10)
    response.raise_for_status()
    assert response.json()["content"][0]["text"] == "Echo: What is the capital of France?"
    bad = requests.post(f"{base}/bedrock", headers=headers, data="{oops", timeout=10)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_json"


# The documented JavaScript client, unchanged but for the endpoint, token and model (the sandbox).
DOCS_JAVASCRIPT_EXAMPLE = """
async function callBedrockAPI(prompt) {
  const apiEndpoint = process.env.PROXY_URL + '/bedrock';
  const authToken = process.env.PROXY_TOKEN;
  const response = await fetch(apiEndpoint, {
    method: 'POST',
    headers: {
      'Content-Type': 'application/json',
      'Authorization': `Bearer ${authToken}`
    },
    body: JSON.stringify({
      modelId: 'sandbox.echo-v1',
      anthropic_version: 'bedrock-2023-05-31',
      max_tokens: 1000,
      messages: [{role: 'user', content: [{type: 'text', text: prompt}]}]
    })
  });
  if (!response.ok) {
    throw new Error(`API request failed: ${response.status}`);
  }
  return await response.json();
}
callBedrockAPI('What is the capital of France?')
  .then(result => console.log(JSON.stringify(result)))
  .catch(error => { console.error(error.message); process.exit(1); });
"""


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed")
def test_the_javascript_example_of_the_docs_with_the_sandbox(runner):
    base, token, *_ = runner
    env = {**os.environ, "PROXY_URL": base, "PROXY_TOKEN": token}
    done = subprocess.run(
        ["node", "-e", DOCS_JAVASCRIPT_EXAMPLE], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["content"][0]["text"] == "Echo: What is the capital of France?"
    env["PROXY_TOKEN"] = contract.generate_token()  # unknown: the example's own error path
    refused = subprocess.run(
        ["node", "-e", DOCS_JAVASCRIPT_EXAMPLE], env=env, capture_output=True, text=True, timeout=60
    )
    assert refused.returncode == 1 and "API request failed: 401" in refused.stderr


@pytest.mark.skipif(not shutil.which("curl"), reason="curl is not installed")
def test_docs_curl_example_with_the_sandbox(runner):
    """The curl command of docs/proxy.md (the native body, the sandbox model), as written."""
    base, token, *_ = runner
    docs = (Path(__file__).resolve().parents[2] / "docs" / "proxy.md").read_text()
    command = next(
        block.removeprefix("bash\n")
        for block in docs.split("```")
        if block.startswith("bash\ncurl ") and "/bedrock" in block
    )
    command = command.replace("http://127.0.0.1:8001", base)
    done = subprocess.run(
        ["bash", "-c", command],
        env={**os.environ, "TOKEN": token},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["content"][0]["text"] == "Echo: What is the capital of France?"
