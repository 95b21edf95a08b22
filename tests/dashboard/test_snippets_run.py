"""The snippets on the customer tokens page really run: against the real proxy handler served
over HTTP (proxy.local), with a token the customer just created on the page."""

import contextlib
import io
import shutil
import subprocess
import threading
from http.server import ThreadingHTTPServer

import pytest

from proxy import local
from tests.proxy.conftest import make_app

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def proxy_url(aws):
    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), local.make_handler(make_app(aws.client("dynamodb")))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_snippets_shown_with_a_new_token_get_an_answer(
    aws, proxy_url, customer_client, customer, settings
):
    settings.PROXY_BASE_URL = proxy_url
    from customers.services import customer_update_limits

    customer_update_limits(customer=customer, daily_request_limit=100)  # syncs the customer item
    response = customer_client.post("/app/tokens/", {"label": "try-it", "never_expires": "on"})
    snippets = {s["id"]: s["code"] for s in response.context["snippets"]}
    for snippet_id in ("snippet-python", "snippet-openai"):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(snippets[snippet_id], snippet_id, "exec"), {})
        assert out.getvalue().strip(), snippet_id
    if shutil.which("curl"):
        result = subprocess.run(
            ["bash", "-c", snippets["snippet-curl"]], capture_output=True, text=True, timeout=30
        )
        assert '"choices"' in result.stdout, result.stderr
    if shutil.which("node"):  # fetch and top-level await: Node 18+ as an ES module
        result = subprocess.run(
            ["node", "--input-type=module", "-e", snippets["snippet-js"]],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert result.returncode == 0 and result.stdout.strip(), result.stderr
