"""The Lambda entry point for API Gateway REST (v1) and HTTP API (v2) proxy events.

Per warm request: auth from the in-memory cache (no read), ONE admission transaction
(limits.py), the Bedrock call, ONE counter transaction (usage.py): two DynamoDB calls.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NotRequired, ParamSpec, TypedDict

import boto3
from botocore.config import Config

from . import (
    auth,
    bedrock_runtime,
    config,
    embeddings,
    formats,
    limits,
    metrics,
    models,
    openai_format,
    prices,
    relay,
    streaming,
    upstream,
    usage,
)
from .errors import ProxyError, error_body
from .routes import CORS_ALLOW_HEADERS, CORS_EXPOSE_HEADERS, Request, route

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_s3 import S3Client

logger = logging.getLogger("proxy")
P = ParamSpec("P")
# Answers before API Gateway's shape: a buffered proxy result, or a streamed one.
Outcome = dict[str, Any] | streaming.StreamingResponse


class RequestState(TypedDict):
    """What one request has come to, for its answer and its usage event."""

    principal: auth.Principal | None
    call: formats.ModelCall | None
    result: upstream.Result | None
    status: str  # the usage event's: "rejected", "success", "upstream_error", ...
    started: float  # time.perf_counter() at its start
    error: NotRequired[ProxyError]
    surface: NotRequired[str]  # "bedrock": errors in the Bedrock Runtime's shape
    admission: NotRequired[limits.Admission]
    stream: NotRequired[bool]
    completed: NotRequired[bool]
    settled: NotRequired[bool]


class ProxyApp:
    def __init__(
        self,
        settings: config.Settings,
        *,
        dynamodb: DynamoDBClient,
        bedrock: upstream.BedrockRuntime | None = None,
        s3: S3Client | None = None,
        stream: metrics.TextStream | None = None,
    ) -> None:
        self.settings, self.dynamodb, self.bedrock = settings, dynamodb, bedrock
        self.auth = auth.Authenticator(
            dynamodb,
            settings.tables,
            size=settings.cache_size,
            ttl_seconds=settings.cache_ttl_seconds,
            recheck_seconds=settings.refusal_recheck_seconds,
        )
        self.limiter = limits.Limiter(
            dynamodb, settings.tables, self.auth, settings.warning_percent
        )
        self.sink = usage.EventSink(s3, settings.usage_bucket, settings.usage_events_dir, stream)
        self.prices = prices.PriceReader(
            dynamodb, settings.tables, ttl_seconds=settings.price_cache_seconds
        )

    # --- HTTP plumbing ---------------------------------------------------------------------

    def _cors(self, headers: Mapping[str, str]) -> dict[str, str]:
        origin = headers.get("origin")
        allowed = self.settings.cors_origins
        if not origin or not (origin in allowed or "*" in allowed):
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": CORS_EXPOSE_HEADERS,
            "Vary": "Origin",
        }

    def _body(self, request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "application/json").split(";")[0]
        content_type = content_type.strip().lower()
        if content_type != "application/json" and not content_type.endswith("+json"):
            raise ProxyError("unsupported_content_type")
        raw = request.raw_body
        if len(raw) > self.settings.max_body_bytes * (4 / 3 if request.is_base64 else 1):
            raise ProxyError(
                "body_too_large", f"The body exceeds {self.settings.max_body_bytes} bytes."
            )
        try:
            data = base64.b64decode(raw, validate=True) if request.is_base64 else raw
            body = json.loads(data)
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise ProxyError("invalid_json") from None
        except RecursionError:  # e.g. 100k nested '[': the decoder's depth, not a bug of ours
            raise ProxyError("invalid_json", "The body is nested too deeply.") from None
        if not isinstance(body, dict):
            raise ProxyError("invalid_json", "The body must be a JSON object.")
        return body

    def _response(
        self,
        status: int,
        body: bytes | str | Mapping[str, Any],
        headers: Mapping[str, str],
        request: Request,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        out = {"Content-Type": content_type, "X-Request-Id": request.request_id}
        out.update(headers)
        out.update(self._cors(request.headers))
        if isinstance(body, bytes):  # a model's own answer (the Bedrock Runtime invoke path)
            try:
                return {"statusCode": status, "headers": out, "body": body.decode("utf-8"),
                        "isBase64Encoded": False}  # fmt: skip
            except UnicodeDecodeError:
                encoded = base64.b64encode(body).decode()
                return {"statusCode": status, "headers": out, "body": encoded,
                        "isBase64Encoded": True}  # fmt: skip
        text = body if isinstance(body, str) else json.dumps(body, separators=(",", ":"))
        return {"statusCode": status, "headers": out, "body": text, "isBase64Encoded": False}

    def _error(self, exc: ProxyError, request: Request, state: RequestState) -> dict[str, Any]:
        if state.get("surface") == "bedrock":
            status, body, headers = bedrock_runtime.error_response_parts(exc)
            return self._response(status, body, {**exc.headers, **headers}, request)
        return self._response(exc.status, error_body(exc, request.request_id), exc.headers, request)

    # --- the request -----------------------------------------------------------------------

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        """API Gateway's buffered proxy result: a streamed answer arrives as one body."""
        outcome = self._dispatch(event)
        if isinstance(outcome, streaming.StreamingResponse):
            return streaming.to_buffered(outcome)
        return outcome

    def handle_streaming(self, event: dict[str, Any]) -> streaming.StreamingResponse:
        """Status and headers, then the body chunk by chunk as the model produces it (see
        streaming.py): what the local runner and the response-streaming runtime serve."""
        outcome = self._dispatch(event)
        if isinstance(outcome, streaming.StreamingResponse):
            return outcome
        return streaming.StreamingResponse.from_buffered(outcome)

    def _dispatch(self, event: dict[str, Any]) -> Outcome:
        started = time.perf_counter()
        request = Request.from_event(event)
        now = datetime.now(UTC)
        state: RequestState = {
            "principal": None,
            "call": None,
            "result": None,
            "status": "rejected",
            "started": started,
        }
        response: Outcome | None = None
        try:
            response = self._handle(request, now, state)
        except ProxyError as exc:
            state["error"] = exc
            response = self._error(exc, request, state)
        except Exception as exc:  # never a stack trace to the client; no secrets in the log
            logger.error(
                "request %s failed: %s", request.request_id, type(exc).__name__, exc_info=True
            )
            exc = ProxyError("internal_error")
            state["error"], state["status"] = exc, "error"
            response = self._error(exc, request, state)
        finally:
            if not isinstance(response, streaming.StreamingResponse):  # a stream emits at its end
                status = response["statusCode"] if response else None
                self._emit(request, now, state, status, started)
        return response

    def _handle(self, request: Request, now: datetime, state: RequestState) -> Outcome:
        if request.method == "OPTIONS":
            if not self._cors(request.headers):
                raise ProxyError("origin_not_allowed")
            state["status"] = "preflight"
            headers = {
                "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                "Access-Control-Allow-Headers": CORS_ALLOW_HEADERS,
                "Access-Control-Max-Age": "600",
            }
            return self._response(204, "", headers, request)
        if "/model/" in request.path:
            state["surface"] = "bedrock"
        name = route(request.method, request.path)
        with limits.store_errors():  # DynamoDB unreachable or throttled: 503, retryable
            principal = self.auth.authenticate(
                request.headers, request.client_ip, fresh=name == "models"
            )
        state["principal"] = principal
        if name == "models":
            state["status"] = "listed"
            listing = openai_format.render_models(
                models.listable_for(
                    principal.customer.allowed_models, principal.token.allowed_models
                ),
                int(now.timestamp()),
            )
            return self._response(200, listing, {}, request)
        if name == "bedrock":
            self._check_size(request)
            matched = bedrock_runtime.match(request.path.rstrip("/"))
            assert matched is not None  # route() named it "bedrock": the path matches
            model, operation = matched
            call = bedrock_runtime.parse(
                model, operation, request.raw_body, request.is_base64, request.headers
            )
        else:
            body = self._body(request)
            call = self._parse(name, body, request.headers, principal.customer.default_model_params)
        state["call"] = call

        def recheck(fresh: auth.Principal) -> None:
            auth.check_ip(fresh.customer, request.client_ip)
            self._check_model(fresh, call)
            state["principal"] = fresh

        free = models.is_free(call.model_id)
        if free:
            hold = 0
        elif call.api_format == "embeddings":
            hold = embeddings.quota_hold(call)
        else:
            hold = formats.quota_hold(call)
        with limits.store_errors():
            # A model refused on a cached customer item is decided again on a fresh read
            # (auth.Authenticator.confirm), so allowing a model is seen on the next request.
            principal = self.auth.confirm(
                principal, request.client_ip, lambda fresh: self._check_model(fresh, call)
            )
            state["principal"] = principal
            admission = self.limiter.admit(
                principal,
                recheck,
                now,
                request_id=request.request_id,
                quota_hold=hold,
                free=free,
                price=None if free else self._price(principal, call, now),
            )
        state["admission"] = admission  # its price: the cost in the metrics (metrics.py)
        rechecked = state["principal"]  # recheck() may have read it again
        assert rechecked is not None
        principal = rechecked
        customer_id = principal.customer.customer_id
        try:
            if call.api_format == "embeddings":
                result = embeddings.call(self.bedrock, call, enabled=self.settings.bedrock_enabled)
            elif call.stream:
                events = upstream.open_stream(
                    self.bedrock, call, enabled=self.settings.bedrock_enabled
                )
            else:
                result = upstream.call(self.bedrock, call, enabled=self.settings.bedrock_enabled)
        except ProxyError:
            state["status"] = "upstream_error"
            self._safely(
                usage.refund_request,
                self.dynamodb,
                self.settings.tables,
                customer_id,
                admission,
                principal.token.token_id,
            )
            raise
        if call.stream:
            return self._stream(call, events, request, now, state, admission)
        state["result"], state["status"] = result, "success"
        self._record(customer_id, admission, call, result.usage, principal.token.token_id)
        return self._render(call, result, request, admission.headers, int(now.timestamp()))

    def _price(
        self, principal: auth.Principal, call: formats.ModelCall, now: datetime
    ) -> prices.Price | None:
        """The model's price now (cached, prices.PriceReader), or None when it has none. When
        the prices cannot be read at all, money limits cannot be applied: a customer or token
        with a budget, or a prepaid customer, gets the store's 503; anyone else is admitted
        without the call's spend counted."""
        try:
            return self.prices.price_at(call.model_id, now)
        except Exception:
            if principal.counts_money:
                raise
            return None  # prices.PriceReader logged the failed read

    def _check_size(self, request: Request) -> None:
        limit = self.settings.max_body_bytes * (4 / 3 if request.is_base64 else 1)
        if len(request.raw_body) > limit:
            raise ProxyError(
                "body_too_large", f"The body exceeds {self.settings.max_body_bytes} bytes."
            )

    def _stream(
        self,
        call: formats.ModelCall,
        events: Iterator[upstream.StreamEvent],
        request: Request,
        now: datetime,
        state: RequestState,
        admission: limits.Admission,
    ) -> streaming.StreamingResponse:
        """The answer as the model produces it. Whatever ends the stream (its end, an upstream
        error, the client going away), the usage of what was produced is settled and exactly
        one usage event is written, marked `stream` and whether it `completed`."""
        meter = relay.Meter(call)
        renderer = relay.RENDERERS[call.api_format](
            call, meter, request.request_id, int(now.timestamp())
        )
        state["stream"], state["completed"] = True, False
        headers = {"Cache-Control": "no-cache", **admission.headers}

        def observed() -> Iterator[upstream.StreamEvent]:
            for upstream_event in events:
                meter.observe(upstream_event)
                yield upstream_event

        def body() -> Iterator[bytes]:
            try:
                yield from renderer.render(observed())
                state["completed"] = True
            except ProxyError as exc:
                state["error"] = exc
                yield renderer.error(exc, request.request_id)
            except Exception as exc:
                logger.error("stream %s failed: %s", request.request_id, type(exc).__name__)
                state["error"] = ProxyError("internal_error")
                yield renderer.error(state["error"], request.request_id)
            finally:
                settle()

        def settle() -> None:  # once, also for a stream closed before its first chunk was asked for
            if state.get("settled"):
                return
            state["settled"] = True
            close = getattr(events, "close", None)
            if close is not None:
                close()
            self._settle_stream(call, meter, request, now, state, admission)

        response = self._response(200, "", headers, request, renderer.content_type)
        return streaming.StreamingResponse(200, response["headers"], body(), on_close=settle)

    def _settle_stream(
        self,
        call: formats.ModelCall,
        meter: relay.Meter,
        request: Request,
        now: datetime,
        state: RequestState,
        admission: limits.Admission,
    ) -> None:
        principal = state["principal"]
        assert principal is not None  # admitted: authenticated
        customer_id = principal.customer.customer_id
        produced = meter.usage()
        if state.get("error") and not meter.is_exact and not produced["output_tokens"]:
            state["status"] = "upstream_error"  # nothing came out: not billed, like a failure
            self._safely(
                usage.refund_request,
                self.dynamodb,
                self.settings.tables,
                customer_id,
                admission,
                principal.token.token_id,
            )
        else:
            state["status"] = "success"
            state["result"] = upstream.Result({}, produced)
            self._record(customer_id, admission, call, produced, principal.token.token_id)
        self._emit(request, now, state, 200, state["started"])

    def _parse(
        self,
        name: str,
        body: dict[str, Any],
        headers: Mapping[str, str],
        defaults: dict[str, Any],
    ) -> formats.ModelCall:
        if name == "chat":
            return openai_format.parse(body, headers, defaults)
        if name == "embeddings":
            return embeddings.parse(body, headers)
        if "modelId" in body:
            return formats.parse_native(body, headers)
        if "prompt" in body:
            return formats.parse_prompt(body, headers, defaults)
        if "messages" in body and "model" in body:
            return openai_format.parse(body, headers, defaults)
        raise ProxyError(
            "invalid_request",
            "Send 'modelId' with a native body, 'model' with 'prompt', or an OpenAI chat body.",
        )

    @staticmethod
    def _check_model(principal: auth.Principal, call: formats.ModelCall) -> None:
        """The account's models, then the token's own (an empty list: the account's)."""
        if not models.is_allowed(
            call.model_id, call.model_alias, principal.customer.allowed_models
        ):
            raise ProxyError(
                "model_not_allowed", f"Model {call.model_id} is not enabled for this account."
            )
        allowed = principal.token.allowed_models
        if allowed and not models.is_allowed(call.model_id, call.model_alias, allowed):
            raise ProxyError(
                "model_not_allowed", f"Model {call.model_id} is not enabled for this token."
            )

    def _render(
        self,
        call: formats.ModelCall,
        result: upstream.Result,
        request: Request,
        headers: Mapping[str, str],
        created: int,
    ) -> dict[str, Any]:
        usage_out = result.usage
        if call.api_format == "embeddings":
            body = embeddings.render(call, result, request.request_id)
            return self._response(200, body, headers, request)
        if call.api_format == "bedrock":
            if call.operation == "converse":
                answer = bedrock_runtime.converse_answer(result.response)
                return self._response(200, answer, headers, request)
            headers = {**headers, **bedrock_runtime.invoke_headers(usage_out)}
            raw = result.raw if result.raw is not None else json.dumps(result.response).encode()
            content_type = result.content_type or "application/json"
            return self._response(200, raw, headers, request, content_type)
        if call.api_format == "native":
            return self._response(200, result.response, headers, request)
        if call.api_format == "prompt":
            body = formats.render_prompt(call, result.response, usage_out, request.request_id)
            return self._response(200, body, headers, request)
        body = openai_format.render(call, result.response, usage_out, request.request_id, created)
        return self._response(200, body, headers, request)

    def _record(
        self,
        customer_id: str,
        admission: limits.Admission,
        call: formats.ModelCall,
        counts: dict[str, int],
        token_id: str = "",
    ) -> None:
        """The exact counts into the counters; the quota hold replaced by them."""
        self._safely(
            usage.record_success,
            self.dynamodb,
            self.settings.tables,
            customer_id,
            admission,
            call.model_id,
            counts,
            token_id,
        )

    @staticmethod
    def _safely(function: Callable[P, None], *args: P.args, **kwargs: P.kwargs) -> None:
        """Counters are provisional (the events are what is billed): never fail the answer."""
        try:
            function(*args, **kwargs)
        except Exception as exc:
            logger.error(
                "usage counters not updated: %s %s",
                type(exc).__name__,
                (getattr(exc, "response", None) or {}).get("Error"),
            )

    def _emit(
        self,
        request: Request,
        now: datetime,
        state: RequestState,
        http_status: int | None,
        started: float,
    ) -> None:
        principal, call, result = state["principal"], state["call"], state["result"]
        error = state.get("error")
        event = usage.make_event(
            request_id=request.request_id,
            timestamp=usage.timestamp(now),
            customer_id=principal.customer.customer_id if principal else None,
            token_id=principal.token.token_id if principal else None,
            model_id=call.model_id if call else None,
            model_alias=call.model_alias if call else None,
            latency_ms=int((time.perf_counter() - started) * 1000),
            status=state["status"],
            tags=call.tags if call else {},
            client_ip=request.client_ip,
            api_format=call.api_format if call else None,
            http_status=http_status,
            error_code=error.code if error else None,
            stream=bool(state.get("stream")),
            completed=state.get("completed", True) if state.get("stream") else None,
            **(result.usage if result else {}),
        )
        try:
            self.sink.emit(event, now, store=state["status"] in usage.STORED_STATUSES)
        except Exception as exc:
            logger.error("usage event not emitted: %s", type(exc).__name__)
        metrics.emit(event, now, state.get("admission"), self.sink.stream)


# --- the Lambda entry point ------------------------------------------------------------------

_APP: ProxyApp | None = None


def build_app(settings: config.Settings | None = None) -> ProxyApp:
    settings = settings or config.load()
    session = boto3.session.Session(region_name=settings.region)
    dynamodb = session.client(
        "dynamodb",
        config=Config(
            connect_timeout=2,
            read_timeout=settings.dynamodb_timeout_seconds,
            retries={"max_attempts": 3, "mode": "standard"},
            max_pool_connections=50,
        ),
    )
    bedrock = None
    if settings.bedrock_enabled:
        # Never the emulator (AWS_ENDPOINT_URL) for Bedrock: only a real or explicit endpoint.
        # One attempt within the time budget: a retry after a slow read would outlive the
        # Lambda (29 s), which then dies without an answer, an event or its quota hold back.
        # Throttling is answered at once with 503 + Retry-After; the client retries.
        connect_timeout = min(3, max(1, settings.bedrock_timeout_seconds // 5))
        bedrock = session.client(
            "bedrock-runtime",
            endpoint_url=settings.bedrock_endpoint_url,
            config=Config(
                connect_timeout=connect_timeout,
                read_timeout=max(1, settings.bedrock_timeout_seconds - connect_timeout),
                retries={"total_max_attempts": 1, "mode": "standard"},
                # botocore has it (1.31+), botocore-stubs' Config does not declare it.
                ignore_configured_endpoint_urls=True,  # type: ignore[call-arg]
                max_pool_connections=50,
            ),
        )
    s3 = session.client("s3") if settings.usage_bucket else None
    return ProxyApp(settings, dynamodb=dynamodb, bedrock=bedrock, s3=s3)


def set_app(app: ProxyApp | None) -> None:
    global _APP
    _APP = app


def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    global _APP
    if _APP is None:
        _APP = build_app()
    return _APP.handle(event)
