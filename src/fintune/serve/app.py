"""HTTP API and web page for a finished classification run.

    POST /analyze        {"text": "..."}        -> {"label", "confidence", "scores", "truncated"}
    POST /analyze/batch  {"texts": ["...", ...]} -> [{...}, ...], one per text, in order
    GET  /health, GET /model, GET /openapi.json (the schema), GET / (the page)

No /docs: Swagger UI loads from a CDN, and servers here are often offline.
With FINTUNE_API_KEY set, the API (and its schema) needs `Authorization: Bearer <key>`;
/health and the page's static shell stay open: the shell holds no data, and the page sends
the key the user types with each API call.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import re
import socket
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError
from starlette.exceptions import HTTPException as StarletteHTTPException

from fintune.errors import FintuneError, NonFiniteScores
from fintune.serve.batcher import BatcherFailed, MicroBatcher, ServerBusy, ServerStopping

if TYPE_CHECKING:
    from fintune.predict import Device, Precision

OPEN_PATHS = {"/health", "/", "/static/app.js", "/static/style.css", "/favicon.ico"}
STATIC_TYPES = {"app.js": "text/javascript", "style.css": "text/css"}
# On every answer: no other site may frame the page (clickjacking its button and key field),
# no answer is read as another type than it says, and the page loads and calls only this
# server (no inline script or style: app.js sets the bars' widths through the DOM).
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; "
        "object-src 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


@dataclass
class ServeSettings:
    max_text_chars: int = 2000
    max_batch_texts: int = 64
    # Texts per model call, gathered from concurrent requests. Many texts per call let the
    # predictor sort them into batches of similar length: on 2 CPU cores, 256 sentences
    # per call ran 1.2x faster than 32 per call.
    micro_batch: int = 256
    max_wait_ms: float = 2.0
    api_key: str | None = None
    # Texts waiting for the model; past it a request gets 503 at once. Default: 1,024 (4
    # model calls of 256: a few seconds of work for a base-size encoder on a CPU), or one
    # full batch request if that is larger.
    max_queue_texts: int | None = None
    # Answer only requests whose Host header is a loopback name or address: `fintune serve`
    # sets it on a loopback host without an API key, where a web page could otherwise
    # reach the server through DNS rebinding (a name of its own, resolved to 127.0.0.1).
    loopback_only: bool = False
    # Answer only requests whose Host is an IP address, localhost or this machine's name:
    # `fintune serve` sets it on any other host (0.0.0.0) without an API key. A DNS
    # rebinding page's Host is a name of its own, none of these.
    addresses_only: bool = False
    # Names answered besides those under addresses_only: the --host given, the machine's
    # fully qualified name (`hostname` may say only gpu3, clients gpu3.corp.example).
    host_names: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        key = self.api_key
        if key and (not key.isascii() or not key.isprintable() or key != key.strip()):
            # curl sends other characters as UTF-8, a browser as Latin-1, and HTTP strips
            # outer spaces: such a key would never match, and every call would get 401
            raise FintuneError(
                "FINTUNE_API_KEY: use printable ASCII with no space at either end (this key "
                "has other characters, which HTTP clients send differently, so none could match)"
            )
        if self.max_queue_texts is None:
            self.max_queue_texts = max(1024, self.max_batch_texts)
        if self.max_queue_texts < self.max_batch_texts:
            raise FintuneError(
                f"--max-queue {self.max_queue_texts} is below --max-batch "
                f"{self.max_batch_texts}: a full batch request could never be queued"
            )

    @property
    def max_body_bytes(self) -> int:
        """The largest body a valid request can need: every text at the limit, each
        character escaped as JSON's 12-byte surrogate pair, and room for the rest."""
        return self.max_batch_texts * self.max_text_chars * 12 + 65536


MAX_LISTED = 5  # problems an error names: 800,000 numbers in `texts` made a 37 MB answer


def _many_problems(model: type[BaseModel], body: Any) -> Any:
    """Refuse, in one short error, a body with more than MAX_LISTED unknown fields or texts
    that are not strings, before pydantic builds an error for each (seconds of the event
    loop, that every other request waited out). Fewer go to pydantic's usual errors."""
    if not isinstance(body, dict):
        return body
    problems = [f"{_short(key)}: unknown field" for key in body if key not in model.model_fields]
    texts = body.get("texts") if "texts" in model.model_fields else None
    if isinstance(texts, list):
        problems += [
            f"texts[{i}]: not a string ({type(t).__name__})"
            for i, t in enumerate(texts)
            if not isinstance(t, str)
        ]
    if len(problems) > MAX_LISTED:
        said = f"{'; '.join(problems[:MAX_LISTED])}; and {len(problems) - MAX_LISTED:,} more"
        # as context: the template would read a key's own braces as its placeholders
        raise PydanticCustomError("many_problems", "{said}", {"said": said})
    return body


def _short(key: str) -> str:
    return key if len(key) <= 40 else f"{key[:37]}..."


class AnalyzeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a typo'd field is an error, not ignored
    text: str = Field(description="The text to classify.")

    @model_validator(mode="before")
    @classmethod
    def _few_problems(cls, body: Any) -> Any:
        return _many_problems(cls, body)


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    texts: list[str] = Field(description="Texts to classify, at most the server's batch limit.")

    @model_validator(mode="before")
    @classmethod
    def _few_problems(cls, body: Any) -> Any:
        return _many_problems(cls, body)


REQUESTS: dict[str, type[BaseModel]] = {"/analyze": AnalyzeRequest, "/analyze/batch": BatchRequest}


class Prediction(BaseModel):
    label: str
    confidence: float
    scores: dict[str, float]
    truncated: bool = Field(
        False, description="The text was longer than the model's max_length and was cut there."
    )


class ApiErrorBody(BaseModel):
    error: str = Field(description="What is wrong, naming the field or limit.")


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers of a route for the OpenAPI schema: all are {"error": "..."}, and
    naming 422 keeps FastAPI from documenting its own {"detail": [...]} shape instead."""
    said = {
        400: "Host not allowed, or a body that is not UTF-8 or repeats a key",
        401: "Missing or wrong API key (with FINTUNE_API_KEY set)",
        413: "A text, the batch or the body over its limit",
        415: "The body is not sent as application/json",
        422: "A body that is not valid JSON, a field missing, unknown or of the wrong type, "
        "or an empty text",
        500: "The model's scores for a text are not finite, or the batching stopped on a bug "
        "(restart the server)",
        503: "The server is busy (with Retry-After), or stopping",
    }
    return {code: {"model": ApiErrorBody, "description": said[code]} for code in codes}


class ApiError(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


class RepeatedKey(ValueError):
    """A JSON object names a key twice: json.loads would keep the last value unsaid."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    seen = set()
    for key, _ in pairs:
        if key in seen:
            raise RepeatedKey(f"the body gives the key {key!r} twice; give it once")
        seen.add(key)
    return dict(pairs)


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), object_pairs_hook=_unique_keys)
        return self._json


class StrictJsonRoute(APIRoute):
    """A route whose JSON body may not repeat a key ({"texts": [...], "texts": [...]})."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict


def run_summary(run_dir: Path) -> dict[str, Any]:
    """What /model shows: the run's name, backbone, method, labels, test metrics with CI."""
    from fintune.evaluation.metrics import edge_intervals
    from fintune.models.load import trained_commit
    from fintune.predict import check_run_dir, read_run_config

    run_dir = Path(run_dir)
    check_run_dir(run_dir)
    path = run_dir / "metrics.json"
    try:
        metrics = json.loads(path.read_text())
    except ValueError as error:
        raise FintuneError(f"{path}: not a run's metrics (not valid JSON: {error})") from None
    if not isinstance(metrics, dict) or not isinstance(metrics.get("labels"), list):
        raise FintuneError(f"{path}: not a run's metrics (no list of labels)")
    config = read_run_config(run_dir)
    try:  # the base's hub commit; loading the model refuses a damaged record where it matters
        commit = trained_commit(run_dir / "model")
    except FintuneError:
        commit = None
    test = metrics.get("test") or {}
    if not isinstance(test, dict) or (test and not isinstance(test.get("ci95"), dict)):
        raise FintuneError(f"{path}: not a run's metrics (its test section has no ci95)")
    headline = ("accuracy", "f1_macro", "f1_weighted")
    shown = {k: {"value": test[k], "ci95": test["ci95"][k]} for k in headline if k in test}
    # all right (or wrong): the bootstrap's intervals have no width, the reports' exact one
    # (and what it bounds) has
    if "accuracy" in shown:
        for name, interval in edge_intervals(test.get("n"), test["accuracy"]).items():
            if name in shown:
                shown[name]["ci95"] = interval
    return {
        "run": run_dir.resolve().name,  # "." when served from inside the run
        "name": config.get("name"),
        "backbone": config.get("model", {}).get("name"),
        "base_commit": commit,
        "method": config.get("method", {}).get("name"),
        "labels": metrics["labels"],
        "test": {
            "n": test.get("n"),
            **shown,
        },
    }


class BodyLimit:
    """Refuses a body no valid request needs (the limits on texts come only after the
    whole body is parsed): by its Content-Length before reading it, and a chunked one
    once it has sent more than the limit."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.limit:
            message = (
                f"invalid request: the body has {int(length):,} bytes; the limit is {self.limit:,}"
            )
            return await JSONResponse({"error": message}, status_code=413)(scope, receive, send)
        received = 0

        async def counted():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(
                    413, f"invalid request: the body has more than {self.limit:,} bytes"
                )
            return message

        await self.app(scope, counted, send)


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every answer, the middleware's own errors included."""

    def __init__(self, app):
        self.app = app
        self.headers = [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *self.headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(predict, summary: dict[str, Any], settings: ServeSettings, prepare=None) -> FastAPI:
    """`predict(texts) -> [{"label", "confidence", "scores"}]` is the model, batched inside;
    `prepare(text)` is what the model will read of a text (the run's cleaning), checked
    for emptiness before it joins a batch."""
    batcher = MicroBatcher(
        predict, settings.micro_batch, settings.max_wait_ms, settings.max_queue_texts
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        batcher.start()
        yield
        await batcher.stop()

    app = FastAPI(
        title="fintune classifier",
        description=f"Serving run {summary['run']} ({summary['backbone']}, {summary['method']}).",
        lifespan=lifespan,
        # Swagger UI and ReDoc load their scripts from a CDN: blank on an air-gapped machine
        docs_url=None,
        redoc_url=None,
    )
    app.router.route_class = StrictJsonRoute
    # Added before the other middleware, so it sits inside them, next to the routes: the
    # error it raises while FastAPI reads a body then reaches the API's error handlers.
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    app.state.batcher = batcher

    @app.middleware("http")
    async def loopback_host(request: Request, call_next):
        host = request.headers.get("host", "")
        if settings.loopback_only and not is_loopback(host_name(host)):
            message = (
                f"this server answers only requests addressed to localhost, 127.0.0.1 or "
                f"[::1], not Host {host!r}: without FINTUNE_API_KEY it serves loopback only "
                "(a web page could otherwise reach it by DNS rebinding); set FINTUNE_API_KEY "
                "to serve it under another name"
            )
            return JSONResponse({"error": message}, status_code=400)
        if settings.addresses_only and not is_own_address(host_name(host), settings.host_names):
            names = [socket.gethostname(), *settings.host_names]
            names = ", ".join(map(repr, dict.fromkeys(names)))
            message = (
                f"this server answers only requests addressed to an IP address, localhost or "
                f"{names}, not Host {host!r}: without FINTUNE_API_KEY a web "
                "page could otherwise reach it under a name of its own (DNS rebinding); set "
                "FINTUNE_API_KEY to serve it under another name"
            )
            return JSONResponse({"error": message}, status_code=400)
        return await call_next(request)

    @app.middleware("http")
    async def require_key(request: Request, call_next):
        if settings.api_key and request.url.path not in OPEN_PATHS:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            # the scheme ignores case, and one or more spaces may follow it
            given = token.lstrip(" ") if scheme.lower() == "bearer" else ""
            if not hmac.compare_digest(given.encode(), settings.api_key.encode()):
                return JSONResponse(
                    {"error": "missing or wrong API key: send 'Authorization: Bearer <key>'"},
                    status_code=401,
                    # the scheme to use (RFC 9110); Bearer, unlike Basic, opens no browser dialog
                    headers={"WWW-Authenticate": "Bearer"},
                )
        return await call_next(request)

    # added last, so outermost of the middleware: its headers reach their answers too (a
    # 500 is sent from outside all of them, so its handler adds them itself)
    app.add_middleware(SecurityHeaders)

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, error: ApiError):
        return JSONResponse({"error": error.message}, status_code=error.status)

    @app.exception_handler(ServerBusy)
    async def busy(_request: Request, error: ServerBusy):
        return JSONResponse({"error": str(error)}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(ServerStopping)
    async def stopping(_request: Request, _error: ServerStopping):
        message = "the server is stopping: nothing was classified; send it again once it is back"
        return JSONResponse({"error": message}, status_code=503, headers={"Connection": "close"})

    @app.exception_handler(BatcherFailed)
    async def failed(_request: Request, error: BatcherFailed):
        return JSONResponse({"error": f"internal error: {error}"}, status_code=500)

    @app.exception_handler(NonFiniteScores)
    async def no_label(request: Request, error: NonFiniteScores):  # fails only its request
        message = str(error)  # the CLI's, which counts texts from 1
        if error.rows and request.url.path.endswith("/analyze"):
            message = (
                f"the model's outputs are NaN or infinite, so the text has no label: {error.why}"
            )
        elif error.rows:  # named as the request's other errors name a text: texts[1]
            shown = ", ".join(f"texts[{i}]" for i in error.rows[:5])
            shown += ", ..." if len(error.rows) > 5 else ""
            message = (
                f"the model's outputs are NaN or infinite for {len(error.rows)} of {error.total} "
                f"texts ({shown}), so they have no label: {error.why}"
            )
        return JSONResponse({"error": message}, status_code=500)

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, error: Exception):
        message = f"internal error: {type(error).__name__}"
        return JSONResponse({"error": message}, status_code=500, headers=SECURITY_HEADERS)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, error: StarletteHTTPException):
        # the framework's own 400/404/405 in the API's {"error": ...} shape
        message = str(error.detail)
        if isinstance(error.__cause__, RepeatedKey):
            message = f"invalid request: {error.__cause__}"
        elif error.status_code == 400 and error.__cause__ is not None:
            # FastAPI's "error parsing the body" for what is not a JSON syntax error:
            # bytes that are not UTF-8, an integer too long for Python to read
            message = f"invalid request: the body is not valid JSON ({error.__cause__})"
            if isinstance(error.__cause__, RecursionError):  # valid JSON, nested too deep
                message = "invalid request: the body's JSON is nested too deeply to read"
        return JSONResponse(
            {"error": message}, status_code=error.status_code, headers=error.headers
        )

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        kind = request.headers.get("content-type", "none")
        media = kind.split(";")[0].strip().lower()
        is_json = media == "application/json" or re.fullmatch(r"application/[^/]+\+json", media)
        if request.method == "POST" and not is_json:
            message = (  # curl -d sends form encoding unless told otherwise
                f"invalid request: the body must be JSON, sent with Content-Type: "
                f"application/json (this request said {kind})"
            )
            return JSONResponse({"error": message}, status_code=415)
        problems = []
        for item in error.errors():
            if item["type"] == "json_invalid":
                problems.append("the body is not valid JSON")
                continue
            if item["type"] == "many_problems":
                fields = ", ".join(REQUESTS[request.url.path].model_fields)
                problems.append(f"{item['msg']} ({request.url.path} takes fields: {fields})")
                continue
            # texts[1], as the API's own checks name a text, not pydantic's texts.1
            where = "".join(
                f"[{p}]" if isinstance(p, int) else f".{p}" for p in item["loc"] if p != "body"
            ).lstrip(".")
            where = where or "body"
            if item["type"] == "extra_forbidden" and request.url.path in REQUESTS:
                path, fields = request.url.path, ", ".join(REQUESTS[request.url.path].model_fields)
                problems.append(f"{where}: unknown field; {path} takes fields: {fields}")
                continue
            problems.append(f"{where}: {item['msg']}")
        if len(problems) > MAX_LISTED:
            problems[MAX_LISTED:] = [f"and {len(problems) - MAX_LISTED:,} more"]
        return JSONResponse({"error": "invalid request: " + "; ".join(problems)}, status_code=422)

    def check(text: str, where: str) -> str:
        if not text.strip():
            raise ApiError(422, f"invalid request: {where}: text is empty")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:  # a lone surrogate such as "\ud800": valid JSON
            bad = text[error.start : error.end].encode("unicode_escape").decode()
            raise ApiError(
                422, f"invalid request: {where}: text is not valid Unicode ({bad})"
            ) from None
        if len(text) > settings.max_text_chars:
            raise ApiError(
                413,
                f"invalid request: {where}: text has {len(text)} characters; the limit is "
                f"{settings.max_text_chars}",
            )
        if prepare is not None and not prepare(text):  # last: it runs on valid, short texts
            raise ApiError(
                422, f"invalid request: {where}: text is empty after the run's data.cleaning"
            )
        return text

    post_errors = _errors(400, 401, 413, 415, 422, 500, 503)

    @app.post("/analyze", response_model=Prediction, responses=post_errors)
    async def analyze(body: AnalyzeRequest, request: Request) -> dict:
        texts = [check(body.text, "text")]
        return (await _unless_gone(request, batcher.submit(texts)))[0]

    @app.post("/analyze/batch", response_model=list[Prediction], responses=post_errors)
    async def analyze_batch(body: BatchRequest, request: Request) -> list[dict]:
        if not body.texts:
            raise ApiError(422, "invalid request: texts: give at least one text")
        if len(body.texts) > settings.max_batch_texts:
            raise ApiError(
                413,
                f"invalid request: texts: {len(body.texts)} texts; the limit is "
                f"{settings.max_batch_texts}",
            )
        texts = [check(t, f"texts[{i}]") for i, t in enumerate(body.texts)]
        return await _unless_gone(request, batcher.submit(texts))

    @app.get("/health")
    async def health() -> JSONResponse:
        # a worker stopped on a bug answers nothing more: a load balancer should know
        if batcher.failed is not None:
            return JSONResponse({"status": "failed", "error": str(batcher.failed)}, 500)
        return JSONResponse({"status": "ok"})

    @app.head("/health")  # curl -I, wget --spider and load balancers' checks send HEAD
    async def health_head() -> Response:
        return Response(status_code=500 if batcher.failed is not None else 200)

    @app.get("/model", responses=_errors(400, 401))
    async def model() -> dict:
        return {**summary, "serving": batcher.stats.as_dict()}

    @app.get("/docs", include_in_schema=False)
    async def docs() -> None:
        raise ApiError(
            404,
            "no /docs: its interactive page (Swagger UI) loads from a CDN, which an offline "
            "server cannot offer; the API's schema is at /openapi.json (open it in any OpenAPI "
            "viewer), and the README's 'Serving a model' describes the endpoints",
        )

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> str:
        return _static("index.html")

    @app.get("/favicon.ico", include_in_schema=False)
    async def favicon() -> Response:  # browsers ask on every page load: no icon, no error
        return Response(status_code=204)

    @app.get("/static/{name}", include_in_schema=False)
    async def static(name: str) -> Response:
        if name not in STATIC_TYPES:
            raise ApiError(404, f"no such file: {name}")
        return Response(_static(name), media_type=STATIC_TYPES[name])

    # HEAD wherever GET answers (curl -I, uptime monitors); FastAPI adds it to no route.
    # The server sends the head of the GET's answer, without its body
    for path, endpoint, kind in (
        ("/model", model, JSONResponse),
        ("/", page, HTMLResponse),
        ("/favicon.ico", favicon, Response),
        ("/static/{name}", static, Response),
    ):
        app.add_api_route(
            path, endpoint, methods=["HEAD"], response_class=kind, include_in_schema=False
        )
    return app


def serve_until_stopped(application: FastAPI, host: str, port: int, say=print) -> None:
    """uvicorn, but the first Ctrl+C (or SIGTERM) stops the batcher at once: what it has not
    classified gets the 503 'the server is stopping'. uvicorn alone waits, silently at log
    level warning, until every queued text is classified; a second Ctrl+C then cancelled
    the waiting requests as bare 500s."""
    import uvicorn

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            if not self.should_exit:
                application.state.batcher.stop_soon()
                say("Stopping: requests not yet classified are answered 503 (server stopping)")
            super().handle_exit(sig, frame)

    Server(uvicorn.Config(application, host=host, port=port, log_level="warning")).run()


async def _unless_gone(request: Request, work):
    """`work`'s result; cancelled if the client disconnects first (uvicorn lets a handler
    run on), so the batcher drops the texts of a client that gave up before the model."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(_disconnect(request))
    try:
        done, _ = await asyncio.wait({task, gone}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
        if not task.done():
            task.cancel()
    if task not in done:  # nobody reads this answer
        raise ApiError(499, "the client closed the request")
    return task.result()


async def _disconnect(request: Request) -> None:
    # the body is read: what the server sends next is the disconnect
    while (await request.receive())["type"] != "http.disconnect":
        pass


def host_name(host: str) -> str:
    """The name or address of a Host header (or of --host), without its port or brackets."""
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def is_loopback(name: str) -> bool:
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def is_own_address(name: str, names: tuple[str, ...] = ()) -> bool:
    """An IP address, localhost, this machine's name or one of `names`: never a DNS
    rebinding page's."""
    own = {"localhost", socket.gethostname().lower(), *(n.lower().rstrip(".") for n in names)}
    if name.lower().rstrip(".") in own:
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _static(name: str) -> str:
    return resources.files("fintune.serve").joinpath("static", name).read_text(encoding="utf-8")


def app_for_run(
    run_dir: Path,
    settings: ServeSettings | None = None,
    precision: Precision = "fp32",
    device: Device = "auto",
) -> FastAPI:
    from fintune.predict import Predictor

    settings = settings or ServeSettings(api_key=os.environ.get("FINTUNE_API_KEY") or None)
    summary = run_summary(Path(run_dir))  # before loading: a broken folder fails fast
    predictor = Predictor.from_run(run_dir, device=device, precision=precision)
    summary["precision"], summary["device"] = predictor.precision, predictor.device
    summary["max_length"] = predictor.max_length
    application = create_app(predictor, summary, settings, prepare=predictor.prepare)
    application.state.device = predictor.device
    return application
