"""POST /v1/embeddings: OpenAI's embeddings request on Titan Text Embeddings v2 (one InvokeModel
per input), Cohere Embed v3 (batches of 96) and the free sandbox; metered by input tokens.

Bedrock is a real bedrock-runtime client answered by botocore's Stubber, with InvokeModel's real
output shape (a streaming body, its content type, the HTTP headers that carry the counts)."""

from __future__ import annotations

import base64
import io
import json
import random
import struct
import threading
import time
from datetime import UTC, datetime

import openai
import pytest
from botocore.response import StreamingBody

from proxy import contract, embeddings, models, upstream
from proxy.errors import ProxyError
from proxy.sandbox import sandbox_tokens

from .conftest import body_of, event, make_app, put_customer, put_token

TITAN = "amazon.titan-embed-text-v2:0"
COHERE_EN = "cohere.embed-english-v3"
COHERE_ML = "cohere.embed-multilingual-v3"
SANDBOX = "sandbox.embed-v1"


def invoke_response(payload: dict, headers: dict | None = None) -> dict:
    data = json.dumps(payload).encode()
    response = {
        "body": StreamingBody(io.BytesIO(data), len(data)),
        "contentType": "application/json",
    }
    if headers is not None:
        response["ResponseMetadata"] = {"HTTPStatusCode": 200, "HTTPHeaders": headers}
    return response


def count_header(tokens: int) -> dict:
    """Bedrock's InvokeModel headers as botocore gives them (lower-case)."""
    return {
        "content-type": "application/json",
        "x-amzn-bedrock-invocation-latency": "31",
        "x-amzn-bedrock-input-token-count": str(tokens),
    }


def titan_answer(vector, tokens) -> dict:
    return {
        "embedding": vector,
        "inputTextTokenCount": tokens,
        "embeddingsByType": {"float": vector},
    }


def cohere_answer(texts, vectors) -> dict:
    return {
        "id": "2d8b1d0c-0000-4000-8000-000000000000",
        "response_type": "embeddings_floats",
        "texts": [text.lower() for text in texts],
        "embeddings": vectors,
    }


def titan_request(text, dimensions=None) -> dict:
    payload = {"inputText": text, "normalize": True}
    if dimensions is not None:
        payload["dimensions"] = dimensions
    return {
        "modelId": TITAN,
        "body": json.dumps(payload).encode(),
        "contentType": "application/json",
        "accept": "application/json",
    }


def cohere_request(model, texts, input_type="search_document") -> dict:
    return {
        "modelId": model,
        "body": json.dumps({"texts": texts, "input_type": input_type}).encode(),
        "contentType": "application/json",
        "accept": "application/json",
    }


def float32(values) -> list[float]:
    return list(struct.unpack(f"<{len(values)}f", struct.pack(f"<{len(values)}f", *values)))


def decode(b64: str) -> list[float]:
    raw = base64.b64decode(b64)
    return list(struct.unpack(f"<{len(raw) // 4}f", raw))


def parse(**body):
    return embeddings.parse(body, {})


# --- parse ----------------------------------------------------------------------------------


def test_parse_a_string_and_a_list():
    call = parse(model="titan-embed-v2", input="hello")
    assert (call.api_format, call.operation, call.model_id) == ("embeddings", "embed", TITAN)
    assert call.model_alias == "titan-embed-v2" and call.requested_model == "titan-embed-v2"
    assert call.params["texts"] == ["hello"] and call.params["encoding_format"] == "float"
    assert parse(model=COHERE_EN, input=["a", "b"]).params["texts"] == ["a", "b"]
    assert parse(model=COHERE_EN, input=["a"]).params["input_type"] == "search_document"
    assert parse(model=SANDBOX, input="x").model_alias == ""


def test_every_embeddings_model_and_alias_resolves():
    for alias, model_id in models.ALIASES.items():
        if models.is_embeddings(model_id):
            assert parse(model=alias, input="x").model_id == model_id
    assert set(models.EMBEDDING_MODELS) <= models.KNOWN_IDS


def test_a_chat_model_is_refused_naming_it_and_listing_the_embeddings_models():
    with pytest.raises(ProxyError) as refused:
        parse(model="nova-lite", input="x")
    assert refused.value.status == 400 and refused.value.code == "invalid_request"
    assert "'nova-lite'" in refused.value.message
    for model_id in models.EMBEDDING_MODELS:
        assert model_id in refused.value.message
    with pytest.raises(ProxyError) as unknown:
        parse(model="text-embedding-3-small", input="x")
    assert unknown.value.code == "unknown_model"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (None, "'input' is required"),
        (42, "not a number"),
        ({"text": "x"}, "not an object"),
        (True, "not a boolean"),
        ("", "'input' is empty"),
        ([], "must not be an empty list"),
        (["ok", ""], "'input[1]' is empty"),
        (["ok", 3.5], "'input[1]' must be a string, not a number"),
        (["ok", None], "'input[1]' must be a string, not null"),
        ([["a", "b"]], "'input[0]' must be a string, not a list"),
        ([[1, 2, 3]], "token ids"),
        ([1, 2, 3], "token ids"),
        (["x"] * 129, "129 items; at most 128"),
        (
            ["x" * 2049],
            "'input[0]' has 2049 characters; cohere.embed-english-v3 takes at most 2048",
        ),
    ],
)
def test_wrong_inputs_are_refused_with_a_400_that_says_why(value, words):
    with pytest.raises(ProxyError) as refused:
        parse(model=COHERE_EN, input=value)
    assert refused.value.status == 400 and refused.value.code == "invalid_request"
    assert words in refused.value.message


def test_128_inputs_are_accepted():
    assert len(parse(model=SANDBOX, input=["x"] * 128).params["texts"]) == 128


def test_dimensions_only_for_titan_and_only_256_512_1024():
    for value in (256, 512, 1024):
        assert parse(model=TITAN, input="x", dimensions=value).params["dimensions"] == value
    for value in (128, 1536, "512", 512.0, True):
        with pytest.raises(ProxyError, match="'dimensions' must be 256, 512 or 1024"):
            parse(model=TITAN, input="x", dimensions=value)
    for model_id in (COHERE_EN, COHERE_ML, SANDBOX):
        with pytest.raises(ProxyError) as refused:
            parse(model=model_id, input="x", dimensions=256)
        assert refused.value.status == 400 and "'dimensions'" in refused.value.message


def test_encoding_format_and_input_type():
    assert parse(model=SANDBOX, input="x", encoding_format="base64").params["encoding_format"] == (
        "base64"
    )
    with pytest.raises(ProxyError, match="'encoding_format' must be 'float' or 'base64'"):
        parse(model=SANDBOX, input="x", encoding_format="int8")
    query = parse(model=COHERE_ML, input="x", input_type="search_query")
    assert query.params["input_type"] == "search_query"
    with pytest.raises(ProxyError, match="'input_type' must be one of"):
        parse(model=COHERE_ML, input="x", input_type="image")
    with pytest.raises(ProxyError, match="'input_type' is not supported by"):
        parse(model=TITAN, input="x", input_type="search_query")


def test_user_metadata_and_headers_become_tags_checked_like_chat():
    call = embeddings.parse(
        {
            "model": SANDBOX,
            "input": "x",
            "user": "alice",
            "metadata": {"applicationId": "rag", "other": "ignored"},
        },
        {"x-environment": "production", "x-cost-center": "search"},
    )
    assert call.tags == {
        "applicationId": "rag",
        "costCenter": "search",
        "environment": "production",
        "userId": "alice",
    }
    metadata_user = parse(model=SANDBOX, input="x", user="bob", metadata={"userId": "carol"})
    assert metadata_user.tags == {"userId": "carol"}  # the metadata wins, as in chat
    assert parse(model=SANDBOX, input="x", user="u" * 300).tags["userId"] == "u" * 128
    with pytest.raises(ProxyError, match=r"'user' \(tag userId\) contains a control character"):
        parse(model=SANDBOX, input="x", user="bob\x00")
    with pytest.raises(ProxyError, match="lone surrogate"):
        parse(model=SANDBOX, input="x", user="\ud800")
    with pytest.raises(ProxyError, match="Header X-User-Id"):
        embeddings.parse({"model": SANDBOX, "input": "x"}, {"x-user-id": "a\x1fb"})
    with pytest.raises(ProxyError, match="'user' must be a string"):
        parse(model=SANDBOX, input="x", user=7)
    with pytest.raises(ProxyError, match="'metadata' must be an object"):
        parse(model=SANDBOX, input="x", metadata=["x"])


def test_the_text_itself_may_hold_anything_it_goes_to_the_model_not_into_tags():
    call = parse(model=SANDBOX, input=["nul \x00 here", "\ud800", "<script>"])
    assert call.tags == {}
    vectors = embeddings.call(None, call).response["embeddings"]
    assert len(vectors) == 3 and all(len(v) == embeddings.SANDBOX_DIMENSIONS for v in vectors)


def test_quota_hold_is_a_quarter_of_the_characters_rounded_up_and_no_output():
    assert embeddings.quota_hold(parse(model=TITAN, input="abcde")) == 2
    assert embeddings.quota_hold(parse(model=COHERE_EN, input=["abcd", "abcd", "a"])) == 3


# --- Titan: one InvokeModel per input ---------------------------------------------------------


def test_titan_one_input(bedrock):
    bedrock.stubber.add_response(
        "invoke_model",
        invoke_response(titan_answer([0.1, -0.2, 0.3], 4), count_header(5)),
        titan_request("The capital of France"),
    )
    call = parse(model="titan-embed-v2", input="The capital of France")
    result = embeddings.call(bedrock, call)
    bedrock.stubber.assert_no_pending_responses()
    assert result.usage == {**upstream.ZERO_USAGE, "input_tokens": 5}  # the header wins
    answer = embeddings.render(call, result, "req-1")
    assert answer == {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, -0.2, 0.3]}],
        "model": "titan-embed-v2",
        "usage": {"prompt_tokens": 5, "total_tokens": 5},
    }


def test_titan_batch_is_one_call_per_input_in_order_and_the_tokens_add_up(bedrock):
    texts = ["first", "second one", "third"]
    answers = [
        invoke_response(titan_answer([1.0, 0.0], 2), count_header(3)),  # header: 3
        invoke_response(titan_answer([0.0, 1.0], 4)),  # no headers: the body's count
        invoke_response(titan_answer([0.6, 0.8], 99), count_header(2)),
    ]
    for text, answer in zip(texts, answers, strict=True):
        bedrock.stubber.add_response("invoke_model", answer, titan_request(text, 512))
    call = parse(model=TITAN, input=texts, dimensions=512)
    result = embeddings.call(bedrock, call, workers=1)  # the Stubber answers in queue order
    bedrock.stubber.assert_no_pending_responses()
    assert result.response["embeddings"] == [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]
    assert result.usage["input_tokens"] == 3 + 4 + 2 and result.usage["output_tokens"] == 0


class SlowTitan:
    """A bedrock-runtime stand-in for the concurrent path: each answer takes a random time and
    carries its own input, so a mix-up of the order would show."""

    def __init__(self):
        self.calls, self.lock, self.active, self.most = [], threading.Lock(), 0, 0

    def invoke_model(self, *, modelId, body, contentType, accept):
        text = json.loads(body)["inputText"]
        with self.lock:
            self.calls.append(text)
            self.active += 1
            self.most = max(self.most, self.active)
        time.sleep(random.uniform(0.001, 0.02))
        with self.lock:
            self.active -= 1
        return invoke_response(titan_answer([float(text)], 1), count_header(len(text)))


def test_titan_calls_run_a_few_at_a_time_and_keep_the_input_order():
    fake = SlowTitan()
    texts = [str(i) for i in range(40)]
    result = embeddings.call(fake, parse(model=TITAN, input=texts))
    assert result.response["embeddings"] == [[float(t)] for t in texts]
    assert result.usage["input_tokens"] == sum(len(t) for t in texts)
    assert sorted(fake.calls) == sorted(texts) and 1 < fake.most <= embeddings.WORKERS


def test_a_failed_call_fails_the_request_with_the_mapped_error(bedrock):
    bedrock.stubber.add_response(
        "invoke_model", invoke_response(titan_answer([1.0], 1), count_header(1))
    )
    bedrock.stubber.add_client_error(
        "invoke_model", "ThrottlingException", "Too many requests", http_status_code=429
    )
    with pytest.raises(ProxyError) as failed:
        embeddings.call(bedrock, parse(model=TITAN, input=["a", "b", "c"]), workers=1)
    assert failed.value.code == "bedrock_throttled" and failed.value.status == 503
    assert failed.value.headers == {"Retry-After": "2"}
    bedrock.stubber.add_client_error(
        "invoke_model", "ValidationException", "Malformed input request", http_status_code=400
    )
    with pytest.raises(ProxyError) as invalid:
        embeddings.call(bedrock, parse(model=COHERE_EN, input="x"))
    assert invalid.value.code == "bedrock_validation" and "Malformed input" in invalid.value.message


def test_an_answer_without_vectors_is_an_upstream_error(bedrock):
    bedrock.stubber.add_response("invoke_model", invoke_response({"message": "?"}))
    with pytest.raises(ProxyError) as failed:
        embeddings.call(bedrock, parse(model=TITAN, input="x"))
    assert failed.value.code == "bedrock_error" and failed.value.status == 502


def test_without_bedrock_only_the_sandbox_answers():
    with pytest.raises(ProxyError) as refused:
        embeddings.call(None, parse(model=TITAN, input="x"))
    assert refused.value.code == "bedrock_not_configured" and SANDBOX in refused.value.message
    with pytest.raises(ProxyError):
        embeddings.call(object(), parse(model=TITAN, input="x"), enabled=False)


# --- Cohere: batches of up to 96 texts ---------------------------------------------------------


def test_cohere_batches_of_96_in_order_and_the_tokens_add_up(bedrock):
    texts = [f"Document {i}" for i in range(100)]
    first, second = texts[:96], texts[96:]
    bedrock.stubber.add_response(
        "invoke_model",
        invoke_response(cohere_answer(first, [[i, 0.5] for i in range(96)]), count_header(480)),
        cohere_request(COHERE_ML, first, "search_query"),
    )
    bedrock.stubber.add_response(
        "invoke_model",
        invoke_response(cohere_answer(second, [[i, 0.5] for i in range(96, 100)]), {}),
        cohere_request(COHERE_ML, second, "search_query"),
    )
    call = parse(model="cohere-embed-multilingual", input=texts, input_type="search_query")
    result = embeddings.call(bedrock, call, workers=1)
    bedrock.stubber.assert_no_pending_responses()
    assert result.response["embeddings"] == [[i, 0.5] for i in range(100)]
    # 480 from the first call's header; the second reported no count: four characters a token
    assert result.usage["input_tokens"] == 480 + sum(sandbox_tokens(t) for t in second)


def test_cohere_answer_by_embedding_type_is_read_too(bedrock):
    answer = {
        "id": "x",
        "response_type": "embeddings_by_type",
        "texts": ["a", "b"],
        "embeddings": {"float": [[0.1], [0.2]]},
    }
    bedrock.stubber.add_response(
        "invoke_model",
        invoke_response(answer, count_header(2)),
        cohere_request(COHERE_EN, ["a", "b"]),
    )
    result = embeddings.call(bedrock, parse(model=COHERE_EN, input=["a", "b"]))
    assert result.response["embeddings"] == [[0.1], [0.2]]


def test_cohere_answer_with_the_wrong_number_of_vectors_is_an_upstream_error(bedrock):
    bedrock.stubber.add_response(
        "invoke_model", invoke_response(cohere_answer(["a", "b"], [[0.1]]), count_header(2))
    )
    with pytest.raises(ProxyError, match="without the vectors"):
        embeddings.call(bedrock, parse(model=COHERE_EN, input=["a", "b"]))


# --- base64 -------------------------------------------------------------------------------------


def test_base64_is_little_endian_float32_and_round_trips(bedrock):
    vector = [0.1, -0.25, 3.0e-5, 1.0]
    bedrock.stubber.add_response(
        "invoke_model", invoke_response(titan_answer(vector, 3), count_header(3))
    )
    call = parse(model=TITAN, input="x", encoding_format="base64")
    answer = embeddings.render(call, embeddings.call(bedrock, call), "r")
    encoded = answer["data"][0]["embedding"]
    assert isinstance(encoded, str) and len(base64.b64decode(encoded)) == 4 * len(vector)
    assert base64.b64decode(encoded)[:4] == struct.pack("<f", 0.1)
    assert decode(encoded) == float32(vector)


def test_the_sandbox_float_and_base64_answers_carry_the_same_numbers():
    as_float = parse(model=SANDBOX, input=["a", "b"])
    as_b64 = parse(model=SANDBOX, input=["a", "b"], encoding_format="base64")
    floats = embeddings.render(as_float, embeddings.call(None, as_float), "r")["data"]
    b64 = embeddings.render(as_b64, embeddings.call(None, as_b64), "r")["data"]
    assert [decode(item["embedding"]) for item in b64] == [item["embedding"] for item in floats]


# --- the sandbox --------------------------------------------------------------------------------


def test_the_sandbox_is_deterministic_normalised_and_free():
    call = parse(model=SANDBOX, input=["hello", "hello", "world", "x" * 9])
    first, again = embeddings.call(None, call), embeddings.call(None, call)
    vectors = first.response["embeddings"]
    assert vectors == again.response["embeddings"]
    assert vectors[0] == vectors[1] != vectors[2]
    assert all(abs(sum(v * v for v in vector) - 1) < 1e-5 for vector in vectors)
    assert first.usage == {**upstream.ZERO_USAGE, "input_tokens": 2 + 2 + 2 + 3}
    assert models.is_free(SANDBOX) and models.is_allowed(SANDBOX, "", ["nova-lite"])
    assert SANDBOX in models.listable(["nova-lite"]) and SANDBOX in models.listable([])


def test_the_sandbox_on_invoke_model_answers_titan_and_cohere_shapes():
    def native(payload, operation="invoke_model"):
        from proxy.formats import ModelCall

        return ModelCall(
            api_format="bedrock",
            model_id=SANDBOX,
            model_alias="",
            operation=operation,
            params={"body": json.dumps(payload).encode()},
        )

    titan = embeddings.sandbox_native(native({"inputText": "hello"}))
    assert titan.response["embedding"] == embeddings.sandbox_vector("hello")
    assert titan.response["inputTextTokenCount"] == 2 and titan.usage["input_tokens"] == 2
    cohere = embeddings.sandbox_native(native({"texts": ["a", "b"], "input_type": "x"}))
    assert cohere.response["embeddings"] == [embeddings.sandbox_vector(t) for t in "ab"]
    for refused in (native({"messages": []}), native({}, operation="converse")):
        with pytest.raises(ProxyError, match="makes embeddings"):
            embeddings.sandbox_native(refused)


# --- GET /v1/models ------------------------------------------------------------------------------


def test_models_lists_the_embeddings_models_and_the_sandboxes(app, dynamodb):
    everything = put_customer(dynamodb)
    token, _ = put_token(dynamodb, everything)
    ids = [
        m["id"]
        for m in body_of(app.handle(event(token=token, path="/v1/models", method="GET")))["data"]
    ]
    assert set(models.EMBEDDING_MODELS) <= set(ids)
    restricted = put_customer(dynamodb, allowed_models=["titan-embed-v2"])
    token, _ = put_token(dynamodb, restricted)
    listing = body_of(app.handle(event(token=token, path="/v1/models", method="GET")))
    assert [m["id"] for m in listing["data"]] == [TITAN, "sandbox.echo-v1", SANDBOX]


# --- through the handler (POST /v1/embeddings) --------------------------------------------------


def embed(app, token, body, **kwargs):
    return app.handle(event(body, token=token, path="/v1/embeddings", **kwargs))


def snapshot(dynamodb, customer_id):
    return contract.get_usage_snapshot(dynamodb, customer_id, datetime.now(UTC).date())


def test_handler_sandbox_answer_is_openai_shaped_free_and_counted_as_a_request(app, dynamodb):
    customer = put_customer(dynamodb, monthly_token_quota=1000, allowed_models=["nova-lite"])
    token, _ = put_token(dynamodb, customer)
    body = {"model": SANDBOX, "input": ["hello", "world"], "user": "alice"}
    response = embed(app, token, body)
    assert response["statusCode"] == 200, response["body"]
    answer = body_of(response)
    assert answer["object"] == "list" and answer["model"] == SANDBOX
    assert [item["index"] for item in answer["data"]] == [0, 1]
    assert answer["data"][0]["embedding"] == embeddings.sandbox_vector("hello")
    assert answer["usage"] == {"prompt_tokens": 4, "total_tokens": 4}
    assert body_of(embed(app, token, body))["data"] == answer["data"]  # deterministic
    logged = app.sink.stream.events()[-1]
    assert (logged["api_format"], logged["model_id"], logged["status"]) == (
        "embeddings",
        SANDBOX,
        "success",
    )
    assert (logged["input_tokens"], logged["output_tokens"]) == (4, 0)
    assert {k: v for k, v in logged["tags"].items() if v} == {"userId": "alice"}
    counters = snapshot(dynamodb, customer.customer_id)
    assert counters["day"]["requests"] == 2 and counters["month"]["input_tokens"] == 8
    assert counters["month"].get(contract.QUOTA_TOKENS, 0) == 0  # free: no quota used


def test_handler_titan_tokens_reach_the_event_counters_and_quota(app, dynamodb, bedrock):
    customer = put_customer(dynamodb, monthly_token_quota=100_000)
    token, _ = put_token(dynamodb, customer)
    for text, tokens in (("alpha", 7), ("beta", 5)):
        bedrock.stubber.add_response(
            "invoke_model", invoke_response(titan_answer([0.5, 0.5], tokens), count_header(tokens))
        )
    response = embed(app, token, {"model": "titan-embed-v2", "input": ["alpha", "beta"]})
    assert response["statusCode"] == 200, response["body"]
    assert body_of(response)["usage"] == {"prompt_tokens": 12, "total_tokens": 12}
    assert response["headers"]["X-Request-Id"]
    (logged,) = app.sink.stream.events()
    assert (logged["model_id"], logged["model_alias"]) == (TITAN, "titan-embed-v2")
    assert (logged["input_tokens"], logged["output_tokens"]) == (12, 0)
    counters = snapshot(dynamodb, customer.customer_id)
    assert counters["month"]["input_tokens"] == 12 and counters["month"]["output_tokens"] == 0
    assert counters["month"][contract.QUOTA_TOKENS] == 12  # the hold was replaced by the count
    assert counters["month_by_model"][TITAN]["requests"] == 1


def test_handler_cohere_batch(app, bedrock, principal):
    texts = [f"t{i}" for i in range(97)]
    bedrock.stubber.add_response(
        "invoke_model",
        invoke_response(cohere_answer(texts[:96], [[1.0]] * 96), count_header(200)),
    )
    bedrock.stubber.add_response(
        "invoke_model", invoke_response(cohere_answer(texts[96:], [[2.0]]), count_header(2))
    )
    response = embed(app, principal[0], {"model": COHERE_EN, "input": texts})
    assert response["statusCode"] == 200, response["body"]
    data = body_of(response)["data"]
    assert len(data) == 97 and data[-1] == {"object": "embedding", "index": 96, "embedding": [2.0]}
    assert body_of(response)["usage"]["prompt_tokens"] == 202


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"model": "nova-lite", "input": "x"}, "does not make embeddings"),
        ({"model": SANDBOX, "input": 12}, "not a number"),
        ({"model": SANDBOX, "input": [["a"]]}, "not a list"),
        ({"model": SANDBOX, "input": [[1, 2]]}, "token ids"),
        ({"model": SANDBOX, "input": ["x"] * 129}, "at most 128"),
        ({"model": SANDBOX, "input": ""}, "empty"),
        ({"model": COHERE_EN, "input": "x", "dimensions": 256}, "'dimensions'"),
        ({"model": TITAN, "input": "x", "dimensions": 300}, "256, 512 or 1024"),
        ({"model": SANDBOX, "input": "x", "user": "a\x00b"}, "control character"),
    ],
)
def test_handler_refuses_bad_requests_before_any_call_or_count(
    app, dynamodb, principal, body, words
):
    token, customer, _ = principal
    response = embed(app, token, body)
    assert response["statusCode"] == 400, response["body"]
    error = body_of(response)["error"]
    assert error["code"] == "invalid_request" and words in error["message"]
    assert snapshot(dynamodb, customer.customer_id)["day"]["requests"] == 0  # not counted


def test_handler_nul_in_the_text_goes_to_the_model(app, bedrock, principal):
    bedrock.stubber.add_response(
        "invoke_model",
        invoke_response(titan_answer([1.0], 3), count_header(3)),
        titan_request("a\x00b"),
    )
    response = embed(app, principal[0], {"model": TITAN, "input": "a\x00b"})
    assert response["statusCode"] == 200, response["body"]
    assert not any(app.sink.stream.events()[0]["tags"].values())


def test_handler_model_outside_allowed_models_is_403_but_the_sandbox_is_not(app, dynamodb):
    customer = put_customer(dynamodb, allowed_models=["nova-lite"])
    token, _ = put_token(dynamodb, customer)
    refused = embed(app, token, {"model": TITAN, "input": "x"})
    assert refused["statusCode"] == 403 and body_of(refused)["error"]["code"] == "model_not_allowed"
    assert embed(app, token, {"model": "sandbox-embed", "input": "x"})["statusCode"] == 200


def test_handler_bedrock_failure_is_not_billed_and_gives_the_request_back(app, dynamodb, bedrock):
    customer = put_customer(dynamodb, monthly_token_quota=100_000)
    token, _ = put_token(dynamodb, customer)
    bedrock.stubber.add_client_error(
        "invoke_model", "ThrottlingException", "Rate exceeded", http_status_code=429
    )
    response = embed(app, token, {"model": TITAN, "input": "x" * 40})
    assert response["statusCode"] == 503 and response["headers"]["Retry-After"] == "2"
    assert body_of(response)["error"]["code"] == "bedrock_throttled"
    (logged,) = app.sink.stream.events()
    assert logged["status"] == "upstream_error" and logged["input_tokens"] == 0
    counters = snapshot(dynamodb, customer.customer_id)
    assert counters["day"]["requests"] == 0 and counters["month"][contract.QUOTA_TOKENS] == 0


def test_openai_sdk_float_and_its_default_base64(dynamodb, monkeypatch):
    """The official SDK on the loopback runner: it asks for base64 unless told otherwise and
    decodes it; both answers carry the sandbox's numbers."""
    from proxy import local

    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    server = local.build(0, make_app(dynamodb))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        customer = put_customer(dynamodb)
        token, _ = put_token(dynamodb, customer)
        base = f"http://127.0.0.1:{server.server_address[1]}/v1"
        client = openai.OpenAI(base_url=base, api_key=token, max_retries=0)
        default = client.embeddings.create(model=SANDBOX, input=["hello", "world"])
        floats = client.embeddings.create(
            model=SANDBOX, input=["hello", "world"], encoding_format="float"
        )
        expected = [embeddings.sandbox_vector(t) for t in ("hello", "world")]
        assert [item.embedding for item in default.data] == expected
        assert [item.embedding for item in floats.data] == expected
        assert default.usage.prompt_tokens == 4 and default.model == SANDBOX
        with pytest.raises(openai.BadRequestError):
            client.embeddings.create(model=SANDBOX, input=[[1, 2, 3]])
        with pytest.raises(openai.APIStatusError) as upstream_error:
            client.embeddings.create(model=TITAN, input="x")
        assert upstream_error.value.status_code == 502  # no Bedrock here: the sandbox only
    finally:
        server.shutdown()
        server.server_close()


# --- the embeddings sandbox on InvokeModel (native body, AWS SDK paths) -------------------------


def test_native_body_and_aws_sdk_path_on_the_embeddings_sandbox(app, dynamodb, principal):
    token, customer, _ = principal
    native = app.handle(
        event({"modelId": SANDBOX, "inputText": "hello"}, token=token, path="/bedrock")
    )
    assert native["statusCode"] == 200, native["body"]
    assert body_of(native)["embedding"] == embeddings.sandbox_vector("hello")
    raw = json.dumps({"texts": ["a", "b"], "input_type": "search_query"})
    sdk = app.handle(event(None, token=token, path=f"/model/{SANDBOX}/invoke", raw=raw))
    assert sdk["statusCode"] == 200, sdk["body"]
    assert body_of(sdk)["embeddings"] == [embeddings.sandbox_vector(t) for t in "ab"]
    assert sdk["headers"]["X-Amzn-Bedrock-Input-Token-Count"] == "2"
    counters = snapshot(dynamodb, customer.customer_id)
    assert counters["day"]["requests"] == 2
    assert counters["month"].get(contract.QUOTA_TOKENS, 0) == 0  # free


def test_chat_with_the_embeddings_sandbox_says_where_to_go(app, principal):
    response = app.handle(
        event(
            {"model": SANDBOX, "messages": [{"role": "user", "content": "x"}]}, token=principal[0]
        )
    )
    assert response["statusCode"] == 400
    assert "POST /v1/embeddings" in body_of(response)["error"]["message"]
