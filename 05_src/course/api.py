"""The online fraud-scoring service: a FastAPI app around :mod:`production.serving`.

Run it with uvicorn's factory mode (nothing happens at import)::

    uvicorn course.api:create_app --factory --host 127.0.0.1 --port 8000

With ``--workers 2`` add ``--http course.api:TcpNoDelayHttpToolsProtocol`` (see there why).

Endpoints
---------
``POST /predict``
    One transaction in (validated by :class:`Transaction`), its score, decision and the
    model version out (:class:`Prediction`). Online features (the customer's and the
    terminal's recent history) are looked up in an in-memory
    :class:`~production.serving.OnlineFeatureStore` with the same definitions as training.
``GET /health``
    Liveness: the process answers (200 even while the model is loading).
``GET /ready``
    Readiness: 200 once a model is loaded, 503 before (with the reason).
``GET /model``
    Which model version is served, its threshold and when it was loaded.
``POST /admin/reload``
    Check the alias now and swap in the version it points at, if it moved.
``POST /labels``
    Label feedback (chargebacks, confirmations), validated by :class:`LabelBatch`: each
    label is attached to the transaction the service holds at that terminal and time, so
    the terminal's known-fraud features count it from ``label_available_at`` on -- the
    same rule as training.
``GET /metrics``
    Prometheus metrics: requests, latency, scores, decisions, model version, reloads.

Settings (environment variables, read by :func:`create_app`)
------------------------------------------------------------
``MODEL_NAME`` (default ``fraud-demo``), ``MODEL_ALIAS`` (``champion``),
``MODEL_RELOAD_INTERVAL_S`` (``30``; ``0`` turns the background check off),
``DECISION_THRESHOLD`` (see :func:`production.serving.resolve_threshold`),
``FEATURE_HISTORY`` (``1``: fill the feature store from the database at start-up; ``0``: start
empty), ``FEATURE_TABLE`` (the table it is filled from, default ``transactions``), ``API_TOKEN`` (when set, ``/predict``, ``/model`` and ``/admin/*`` need
``Authorization: Bearer <token>``; ``/labels`` too), plus ``DATABASE_URL`` and ``MLFLOW_TRACKING_URI`` as
everywhere in the package.

Reloads never interrupt service: the new version is loaded beside the old one, then one
reference is swapped; a request in flight finishes with the model it started with.

Bad input is a 4xx naming the field, never a 500: bodies over :data:`MAX_BODY_BYTES` get a
413 before they are read; the schemas bound every field as the pipeline does (0 < amount <=
1,000,000, ids fit int64, times from 2000 to one day after the service's clock, at most
:data:`MAX_LABELS_PER_REQUEST` labels); a 422 echoes at most :data:`MAX_ERRORS_SHOWN` errors
and a short, JSON-safe part of each input (NaN, Infinity and 1e400 included).
"""

import asyncio
import contextlib
import datetime as dt
import gc
import json
import logging
import math
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Literal

import pandas as pd
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from threadpoolctl import threadpool_limits
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from course.drift_metrics import REFRESH_INTERVAL_S, DriftMetrics
from production.serving import (
    DECISIONS,
    MODEL_NAME,
    OnlineFeatureStore,
    ServingModel,
    load_serving_model,
)
from production.tracking import configure_tracking, get_model_version

__all__ = [
    "MAX_BODY_BYTES",
    "MAX_LABELS_PER_REQUEST",
    "Label",
    "LabelBatch",
    "LabelResult",
    "Prediction",
    "TcpNoDelayH11Protocol",
    "TcpNoDelayHttpToolsProtocol",
    "Transaction",
    "create_app",
]

LOGGER_NAME = "course.api"
DEFAULT_RELOAD_INTERVAL_S = 30.0
#: Latency buckets (seconds): fine below the 50 ms p99 target.
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = (0.001, 0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)
_ROUTES = {"/predict", "/labels", "/health", "/ready", "/model", "/metrics", "/admin/reload"}
#: The most labels one POST /labels may carry (~1.2 MB of JSON).
MAX_LABELS_PER_REQUEST = 10_000
#: The largest request body accepted (bytes); larger ones get a 413 before being read.
MAX_BODY_BYTES = 2_000_000
#: Validation errors echo at most this many errors, and this many characters of each input.
MAX_ERRORS_SHOWN, MAX_ECHO_CHARS = 20, 200
_QUIET_ROUTES = {"/health", "/ready", "/metrics"}
_METHODS = {"GET", "POST", "HEAD", "OPTIONS", "PUT", "DELETE", "PATCH"}
#: Error answers of the token-protected routes that need a loaded model (OpenAPI docs).
_SCORING_RESPONSES = {
    401: {"description": "Missing or invalid token"},
    503: {"description": "Not ready"},
}


# --------------------------------------------------------------------------- schemas

#: Times accepted: from this day on, up to ``MAX_AHEAD`` after the service's clock (UTC).
EARLIEST_TIME = dt.datetime(2000, 1, 1)
MAX_AHEAD = dt.timedelta(days=1)
#: Amounts accepted, as in the pipeline's schema: 0 < amount <= MAX_AMOUNT.
MAX_AMOUNT = 1_000_000.0
_INT64 = 2**63 - 1


def _recent_utc(value: dt.datetime) -> dt.datetime:
    """Return ``value`` as naive UTC, if between EARLIEST_TIME and MAX_AHEAD after now."""
    latest = dt.datetime.now(dt.UTC).replace(tzinfo=None) + MAX_AHEAD
    try:
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
    except OverflowError:  # e.g. year 1 with a positive UTC offset
        value = dt.datetime.min
    if not EARLIEST_TIME <= value <= latest:
        raise ValueError(
            f"must be between {EARLIEST_TIME:%Y-%m-%d} and {latest:%Y-%m-%dT%H:%M} UTC "
            f"(at most {MAX_AHEAD.days} day after the service's clock)"
        )
    return value


#: A point in time: ISO 8601 (naive times are UTC), stored as naive UTC like the database.
RecentTime = Annotated[dt.datetime, AfterValidator(_recent_utc)]
#: A non-negative id that fits the database's int64 columns; ``true`` is not an id.
Id = Annotated[int, Field(ge=0, le=_INT64, strict=True)]


class Transaction(BaseModel):
    """One card transaction to score, as the payment system sends it.

    ``merchant_category`` and ``channel`` may hold values the model never saw: the model's
    encoder ignores them and the response lists them in ``unknown_categories``. Unknown
    fields are rejected, so a misspelt field name is a 422, not a silently missing feature.
    """

    model_config = ConfigDict(
        extra="forbid",
        str_strip_whitespace=True,
        json_schema_extra={
            "examples": [
                {
                    "transaction_id": 3100000042,
                    "tx_datetime": "2026-02-01T12:34:56",
                    "customer_id": 17,
                    "terminal_id": 123,
                    "amount": 42.5,
                    "merchant_category": "grocery",
                    "channel": "contactless",
                }
            ]
        },
    )

    transaction_id: Id | None = Field(default=None, description="Echoed back; de-duplicates.")
    tx_datetime: RecentTime = Field(description="When the transaction happened.")
    customer_id: Id = Field(description="The paying customer.")
    terminal_id: Id = Field(description="The terminal (merchant) paid at.")
    amount: float = Field(
        gt=0, le=MAX_AMOUNT, strict=True, allow_inf_nan=False, description="0 < amount <= 1e6."
    )
    merchant_category: str = Field(min_length=1, max_length=64)
    channel: str = Field(min_length=1, max_length=32)


class Prediction(BaseModel):
    """The service's answer for one transaction."""

    transaction_id: int | None
    score: float = Field(description="Fraud probability from the model, in [0, 1].")
    decision: Literal["approve", "block"]
    threshold: float
    model_name: str
    model_version: str
    unknown_categories: list[str] = Field(
        default_factory=list, description="Columns whose value the model never saw in training."
    )


class Label(BaseModel):
    """The outcome of one transaction, once known: a chargeback or a confirmation.

    The transaction is found by ``terminal_id`` and ``tx_datetime`` (as sent to
    ``/predict``); the terminal's fraud features count it from ``label_available_at`` on.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "terminal_id": 123,
                    "tx_datetime": "2026-02-01T12:34:56",
                    "is_fraud": True,
                    "label_available_at": "2026-02-04T09:00:00",
                }
            ]
        },
    )

    terminal_id: Id = Field(description="The terminal the transaction was paid at.")
    tx_datetime: RecentTime = Field(description="When the transaction happened.")
    is_fraud: bool = Field(strict=True, description="true: fraud; false: confirmed legitimate.")
    label_available_at: RecentTime = Field(description="When the label became known.")

    @model_validator(mode="after")
    def _label_after_transaction(self):
        if self.label_available_at < self.tx_datetime:
            raise ValueError(
                f"label_available_at ({self.label_available_at.isoformat()}) is before "
                f"tx_datetime ({self.tx_datetime.isoformat()}): a label cannot precede "
                "its transaction"
            )
        return self


class LabelBatch(BaseModel):
    """Labels sent together (a day's chargeback file, say)."""

    model_config = ConfigDict(extra="forbid")

    labels: list[Label] = Field(min_length=1, max_length=MAX_LABELS_PER_REQUEST)


class LabelResult(BaseModel):
    """What ``POST /labels`` did."""

    received: int
    attached: int = Field(description="Labels matched to a transaction the service holds.")
    not_found: int = Field(
        description="Labels of transactions the service does not hold (never scored here, "
        "or older than its feature windows): nothing to update."
    )


def _echo(value):
    """Return ``value`` if it is short, finite JSON, else a truncated ``repr`` of it."""
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        text = None
    if text is not None and len(text) <= MAX_ECHO_CHARS:
        return value
    shown = repr(value)
    return shown if len(shown) <= MAX_ECHO_CHARS else shown[: MAX_ECHO_CHARS - 3] + "..."


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Answer 422 naming each bad field; echo only a short, serializable part of the input."""
    errors = exc.errors()
    detail = [
        {
            "type": error["type"],
            "loc": [part if isinstance(part, int) else _echo(str(part)) for part in error["loc"]],
            "msg": error["msg"][:MAX_ECHO_CHARS],
            "input": _echo(error.get("input")),
        }
        for error in errors[:MAX_ERRORS_SHOWN]
    ]
    return JSONResponse(status_code=422, content={"detail": detail, "n_errors": len(errors)})


class _BodyLimit:
    """Pure ASGI middleware: 413 for a body over ``limit`` bytes, before it is read or parsed."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body larger than {self.limit} bytes"
        declared = dict(scope["headers"]).get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            await JSONResponse(status_code=413, content={"detail": too_large})(scope, receive, send)
            return
        received = 0

        async def counted():  # a chunked body has no Content-Length: count as it arrives
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.limit:
                raise HTTPException(status_code=413, detail=too_large)
            return message

        await self.app(scope, counted, send)


# ------------------------------------------------------------------------- settings


@dataclass
class _Settings:
    model_name: str
    alias: str
    token: str | None
    reload_interval: float
    feature_history: bool
    feature_table: str


def _settings(model_name, alias, token, reload_interval, feature_history) -> _Settings:
    """Parameters win over environment variables, which win over defaults."""
    env = os.environ
    if reload_interval is None:
        raw = env.get("MODEL_RELOAD_INTERVAL_S", "").strip() or str(DEFAULT_RELOAD_INTERVAL_S)
        try:
            reload_interval = float(raw)
        except ValueError:
            raise ValueError(
                f"MODEL_RELOAD_INTERVAL_S must be a number of seconds (0 turns the check off). "
                f"Got {raw!r} instead."
            ) from None
    if not math.isfinite(reload_interval) or reload_interval < 0:
        raise ValueError(
            f"The reload interval of create_app must be a number of seconds >= 0. "
            f"Got {reload_interval!r} instead."
        )
    if feature_history is None:
        feature_history = env.get("FEATURE_HISTORY", "1").strip() not in ("0", "false", "no")
    if token is None:
        token = env.get("API_TOKEN", "").strip() or None
    return _Settings(
        model_name=model_name or env.get("MODEL_NAME", "").strip() or MODEL_NAME,
        alias=alias or env.get("MODEL_ALIAS", "").strip() or "champion",
        token=token or None,
        reload_interval=float(reload_interval),
        feature_history=bool(feature_history),
        feature_table=env.get("FEATURE_TABLE", "").strip() or "transactions",
    )


# -------------------------------------------------------------------------- metrics


class _Metrics:
    """The app's Prometheus metrics, in a registry of its own (one per app).

    With several uvicorn workers each process counts its own requests; when
    ``PROMETHEUS_MULTIPROC_DIR`` names an empty folder (set before the workers start, as
    ``deploy/Dockerfile`` does), every worker writes its values there and ``/metrics``
    adds them up across workers (:mod:`prometheus_client.multiprocess`), whichever worker
    answers. The model-info gauge then reports, per version, whether any live worker
    serves it.
    """

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        counter = partial(Counter, registry=self.registry)
        histogram = partial(Histogram, registry=self.registry)
        self.requests = counter(
            "fraud_api_requests",
            "HTTP requests by route, method and status code.",
            ["route", "method", "status"],
        )
        self.latency = histogram(
            "fraud_api_request_duration_seconds",
            "Time from request received to response sent, by route.",
            ["route"],
            buckets=LATENCY_BUCKETS,
        )
        self.scores = histogram(
            "fraud_api_score", "Distribution of the fraud scores returned.", buckets=SCORE_BUCKETS
        )
        self.decisions = counter("fraud_api_decisions", "Decisions returned.", ["decision"])
        self.unknown = counter(
            "fraud_api_unknown_categories",
            "Requests carrying a category the model never saw, by column.",
            ["column"],
        )
        self.model_info = Gauge(
            "fraud_api_model_info",
            "The model version being served (value 1).",
            ["name", "alias", "version"],
            registry=self.registry,
            multiprocess_mode="livemax",  # 1 if any live worker serves the version
        )
        self.reloads = counter(
            "fraud_api_model_reloads", "Model loads after start-up, by outcome.", ["outcome"]
        )
        self.labels = counter(
            "fraud_api_labels",
            "Labels received on /labels, by outcome (attached, not_found).",
            ["outcome"],
        )
        for decision in DECISIONS:
            self.decisions.labels(decision)
        for outcome in ("attached", "not_found"):
            self.labels.labels(outcome)

    def exposition(self) -> bytes:
        """Return the metrics as text: this app's, or every worker's in multi-process mode."""
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=self.multiprocess_dir)
        return generate_latest(merged)

    def close(self) -> None:
        """Drop this process's live gauges (multi-process mode), at worker shutdown."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)


# ---------------------------------------------------------------------------- state


@dataclass
class _State:
    settings: _Settings
    metrics: _Metrics
    logger: logging.Logger
    model: ServingModel | None = None
    store: OnlineFeatureStore | None = None
    not_ready_reason: str = "starting"
    reload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def serve(self, model: ServingModel) -> None:
        """Swap in ``model`` (one reference assignment: requests in flight keep theirs)."""
        previous = self.model
        self.model = model
        if previous is not None:
            # set to 0, not removed: a multi-process gauge keeps its series in a file
            self.metrics.model_info.labels(
                previous.name, previous.alias or "", previous.version
            ).set(0)
        self.metrics.model_info.labels(model.name, model.alias or "", model.version).set(1)


class _JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and any ``extra`` fields."""

    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message"}

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        return json.dumps(entry, default=str)


def _logger() -> logging.Logger:
    """Return the request logger, with a JSON handler on stderr unless one is configured."""
    logger = logging.getLogger(LOGGER_NAME)
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(_JsonFormatter())
        logger.addHandler(handler)
        logger.propagate = False
    if logger.level == logging.NOTSET:
        logger.setLevel(os.environ.get("LOG_LEVEL", "INFO").strip().upper() or "INFO")
    return logger


class _RequestMetrics:
    """Pure ASGI middleware: latency, counts and one structured log line per request.

    Logs method, route, status, duration and client address: never headers (the bearer
    token) nor bodies.
    """

    def __init__(self, app, state: _State):
        self.app = app
        self.state = state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started, status = time.perf_counter(), {"code": 500, "recorded": False}

        async def send_and_record(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            elif not message.get("more_body", False):  # counted before the client can see it
                self._record(scope, status, time.perf_counter() - started)
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            if not status["recorded"]:  # no response was sent
                self._record(scope, status, time.perf_counter() - started)

    def _record(self, scope, status: dict, elapsed: float) -> None:
        """Count the request, observe its latency and log one line."""
        status["recorded"] = True
        route = scope["path"] if scope["path"] in _ROUTES else "other"
        method = scope["method"] if scope["method"] in _METHODS else "other"
        metrics, logger = self.state.metrics, self.state.logger
        metrics.requests.labels(route, method, str(status["code"])).inc()
        metrics.latency.labels(route).observe(elapsed)
        level = logging.DEBUG if route in _QUIET_ROUTES else logging.INFO
        if logger.isEnabledFor(level):
            client = scope.get("client")
            extra = {"method": method, "route": route, "status": status["code"]}
            extra.update(duration_ms=round(elapsed * 1000, 3), client=client[0] if client else None)
            logger.log(level, "request", extra=extra)


# ---------------------------------------------------------------------- model loads


async def _load(state: _State) -> ServingModel:
    settings = state.settings
    return await asyncio.to_thread(load_serving_model, settings.model_name, settings.alias)


def _alias_version(name: str, alias: str) -> str:
    """Point MLflow at the configured store, then read the version ``alias`` points at."""
    configure_tracking()
    return get_model_version(name, alias)


async def _check_alias(state: _State) -> bool:
    """Load the version the alias points at if it differs from the one served."""
    settings = state.settings
    async with state.reload_lock:
        try:
            version = await asyncio.to_thread(_alias_version, settings.model_name, settings.alias)
            if state.model is not None and state.model.version == version:
                return False
            model = await _load(state)
        except (LookupError, ConnectionError, OSError, ValueError) as err:
            state.metrics.reloads.labels("failed").inc()
            if state.model is None:
                state.not_ready_reason = f"model not loaded: {err}"
            state.logger.warning("model check failed", extra={"error": str(err)})
            return False
        previous = state.model.version if state.model is not None else None
        state.serve(model)
        state.metrics.reloads.labels("loaded").inc()
        state.logger.info(
            "model loaded",
            extra={"model": model.name, "version": model.version, "previous": previous},
        )
        return True


async def _reload_loop(state: _State) -> None:
    while True:
        await asyncio.sleep(state.settings.reload_interval)
        await _check_alias(state)


async def _drift_loop(drift: DriftMetrics) -> None:
    while True:
        await asyncio.sleep(REFRESH_INTERVAL_S)
        await asyncio.to_thread(drift.refresh)


def _limit_threads() -> None:
    """One OpenMP/BLAS thread: a one-row prediction with a thread team costs 10x more."""
    threadpool_limits(1)


# ------------------------------------------------------------------------ transport


class _NoDelay:
    """Turn Nagle's algorithm off on every connection (see :class:`TcpNoDelayH11Protocol`)."""

    def connection_made(self, transport) -> None:
        """Set ``TCP_NODELAY``, then let the HTTP parser take the connection."""
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        super().connection_made(transport)


class TcpNoDelayH11Protocol(_NoDelay, H11Protocol):
    """uvicorn's h11 protocol with Nagle's algorithm off on every connection.

    With ``--workers N`` uvicorn binds the socket itself as ``socket.socket(family)``
    (protocol number 0), and asyncio only sets ``TCP_NODELAY`` on sockets whose protocol
    is ``IPPROTO_TCP``: the header and body writes of a response then wait for the
    client's delayed ACK, ~40 ms per request on Linux (measured: 44 ms at concurrency 1
    instead of 1.5 ms). Select this protocol to fix it::

        uvicorn course.api:create_app --factory --workers 2 --http course.api:TcpNoDelayH11Protocol
    """


class TcpNoDelayHttpToolsProtocol(_NoDelay, HttpToolsProtocol):
    """The same on uvicorn's httptools protocol (a C parser, faster than pure-Python h11).

    The image and ``scripts/bench_serving.py`` select it with
    ``--http course.api:TcpNoDelayHttpToolsProtocol``.
    """


# ------------------------------------------------------------------------------ app


def create_app(
    *,
    model_name: str | None = None,
    alias: str | None = None,
    token: str | None = None,
    reload_interval: float | None = None,
    feature_history: bool | None = None,
    model: ServingModel | None = None,
    store: OnlineFeatureStore | None = None,
) -> FastAPI:
    """Build the scoring service; the model is loaded when the app starts (lifespan).

    Parameters override the environment variables listed in the module docstring.

    Parameters
    ----------
    model_name : str, optional
        Registered model to serve (``MODEL_NAME``, default ``"fraud-demo"``).
    alias : str, optional
        Alias to serve and watch (``MODEL_ALIAS``, default ``"champion"``).
    token : str, optional
        Bearer token required on ``/predict``, ``/model`` and ``/admin/*``
        (``API_TOKEN``); ``None`` and empty mean no authentication.
    reload_interval : float, optional
        Seconds between checks of the alias (``MODEL_RELOAD_INTERVAL_S``, default 30);
        ``0`` turns the background check off (``POST /admin/reload`` still works).
    feature_history : bool, optional
        Fill the feature store from the database at start-up (``FEATURE_HISTORY``,
        default true). Without history, windowed features start from zero.
    model : ServingModel, optional
        Serve this model instead of loading one from the registry (tests, notebooks);
        the alias is still watched when ``reload_interval > 0``.
    store : OnlineFeatureStore, optional
        Use this feature store instead of building one.

    Returns
    -------
    fastapi.FastAPI
        The app; run it with uvicorn or call it with ``fastapi.testclient.TestClient``.

    Raises
    ------
    ValueError
        If the reload interval is not a number >= 0.

    Examples
    --------
    >>> from fastapi.testclient import TestClient  # doctest: +SKIP
    >>> with TestClient(create_app()) as client:  # doctest: +SKIP
    ...     client.get("/ready").json()
    """
    settings = _settings(model_name, alias, token, reload_interval, feature_history)
    state = _State(settings=settings, metrics=_Metrics(), logger=_logger())
    drift = DriftMetrics(state.metrics.registry, settings.model_name)  # fraud_*_psi gauges
    app = FastAPI(
        title="Fraud scoring API",
        summary="Scores card transactions with the champion model of the MLflow registry.",
        version="0.1.0",
        lifespan=_lifespan(state, drift, model, store),
    )
    app.state.serving = state
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_middleware(_BodyLimit, limit=MAX_BODY_BYTES)
    app.add_middleware(_RequestMetrics, state=state)  # outermost: counts the 413s too
    # no token configured: no dependency to solve on every request (nor a lock in the docs)
    auth = [Depends(_authorizer(settings.token))] if settings.token is not None else []
    _add_operation_routes(app, state, auth)
    _add_scoring_routes(app, state, auth)
    _add_feedback_routes(app, state, auth)
    return app


def _lifespan(state: _State, drift: DriftMetrics, model, store):
    """Return the app's lifespan: load the store and the model, start the loops, stop them."""
    settings = state.settings

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        _limit_threads()
        state.reload_lock = asyncio.Lock()
        if store is not None:
            state.store = store
        elif settings.feature_history:
            try:
                state.store = await asyncio.to_thread(
                    OnlineFeatureStore.from_database, table=settings.feature_table
                )
            except (ConnectionError, OSError, ValueError) as err:
                state.logger.warning(
                    "feature history not loaded; windowed features start empty",
                    extra={"error": str(err)},
                )
                state.store = OnlineFeatureStore()
        else:
            state.store = OnlineFeatureStore()
        if model is not None:
            state.serve(model)
        else:
            await _check_alias(state)
        # startup objects (model, feature history) leave the GC's generations: a full
        # collection then scans what requests allocate, not ~10^5 long-lived objects
        gc.collect()
        gc.freeze()
        state.logger.info(
            "service started",
            extra={
                "model": settings.model_name,
                "alias": settings.alias,
                "version": state.model.version if state.model else None,
                "auth": settings.token is not None,
                "reload_interval_s": settings.reload_interval,
                "history_rows": state.store.n_rows,
            },
        )
        await asyncio.to_thread(drift.refresh)  # table drift_reports now, then every minute
        tasks = [asyncio.create_task(_drift_loop(drift))]
        if settings.reload_interval > 0:
            tasks.append(asyncio.create_task(_reload_loop(state)))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            state.metrics.close()

    return lifespan


_BEARER = HTTPBearer(auto_error=False)


def _authorizer(token: str):
    """Return the dependency that checks the bearer ``token`` in constant time."""

    async def authorize(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
    ) -> None:
        """Check the bearer token in constant time.

        ``async`` on purpose: FastAPI runs plain ``def`` dependencies in a thread pool, a
        hop that costs more than the check itself.
        """
        given = credentials.credentials if credentials is not None else ""
        if not secrets.compare_digest(given.encode(), token.encode()):
            raise HTTPException(
                status_code=401,
                detail="missing or invalid bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return authorize


def _current_model(state: _State) -> ServingModel:
    """Return the model being served; raise a 503 naming why there is none yet."""
    served = state.model
    if served is None:
        raise HTTPException(status_code=503, detail=f"not ready: {state.not_ready_reason}")
    return served


def _add_operation_routes(app: FastAPI, state: _State, auth: list) -> None:
    """Add ``/health``, ``/ready``, ``/model``, ``/admin/reload`` and ``/metrics``."""

    @app.get("/health", tags=["operations"])
    async def health() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/ready", tags=["operations"])
    async def ready():
        """Readiness: a model is loaded and requests can be scored."""
        served = state.model
        if served is None:
            return JSONResponse(
                status_code=503, content={"status": "not ready", "reason": state.not_ready_reason}
            )
        return {"status": "ready", "model_name": served.name, "model_version": served.version}

    @app.get("/model", tags=["operations"], dependencies=auth)
    async def model_info() -> dict:
        """Describe the model being served."""
        served = _current_model(state)
        return {
            "model_name": served.name,
            "model_alias": served.alias,
            "model_version": served.version,
            "threshold": served.threshold,
            "features": list(served.feature_names),
            "backend": served.backend,
            "fallback_reason": served.fallback_reason,
            "loaded_at": served.loaded_at.isoformat(),
            "history_rows": state.store.n_rows if state.store else 0,
        }

    @app.post("/admin/reload", tags=["operations"], dependencies=auth)
    async def reload() -> dict:
        """Check the alias now; load and swap in its version if it moved."""
        changed = await _check_alias(state)
        return {"reloaded": changed, "model_version": _current_model(state).version}

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def metrics_endpoint(request: Request) -> Response:
        """Prometheus metrics in the text exposition format."""
        return Response(state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)


def _add_scoring_routes(app: FastAPI, state: _State, auth: list) -> None:
    """Add ``/predict``: score one transaction with its online features."""
    # the body is parsed by pydantic from bytes (not json.loads, then a dict validated) and the
    # answer written as JSON at once: Transaction and Prediction only document the route
    body_schema = {"content": {"application/json": {"schema": Transaction.model_json_schema()}}}

    @app.post(
        "/predict",
        response_model=Prediction,
        tags=["scoring"],
        dependencies=auth,
        responses={**_SCORING_RESPONSES, 422: {"description": "Invalid transaction"}},
        openapi_extra={"requestBody": {**body_schema, "required": True}},
    )
    async def predict(request: Request) -> JSONResponse:
        """Score one transaction with the online features of its customer and terminal."""
        try:
            tx = Transaction.model_validate_json(await request.body()).model_dump()
        except ValidationError as err:
            errors = [{**error, "loc": ("body", *error["loc"])} for error in err.errors()]
            raise RequestValidationError(errors) from None
        served = _current_model(state)
        features_store = state.store
        try:  # e.g. handle_unknown="error" in the model's encoder
            record = features_store.lookup(tx)
            score = float(served.score_records([record])[0])
        except (ValueError, ArithmeticError) as err:
            raise HTTPException(status_code=422, detail=f"cannot score: {err}"[:500]) from None
        if not 0.0 <= score <= 1.0:  # NaN included: never answer with a non-JSON number
            raise HTTPException(status_code=422, detail="the model gave no score in [0, 1]")
        unknown = served.unknown_categories(record)
        features_store.record(tx)
        decision = DECISIONS[1] if score >= served.threshold else DECISIONS[0]
        metrics = state.metrics
        metrics.scores.observe(score)
        metrics.decisions.labels(decision).inc()
        for column in unknown:
            metrics.unknown.labels(column).inc()
        return JSONResponse(
            {
                "transaction_id": tx["transaction_id"],
                "score": score,
                "decision": decision,
                "threshold": served.threshold,
                "model_name": served.name,
                "model_version": served.version,
                "unknown_categories": unknown,
            }
        )


def _add_feedback_routes(app: FastAPI, state: _State, auth: list) -> None:
    """Add ``/labels``: delayed labels attached to the transactions the service holds."""

    @app.post(
        "/labels",
        response_model=LabelResult,
        tags=["feedback"],
        dependencies=auth,
        responses=_SCORING_RESPONSES,
    )
    async def labels(batch: LabelBatch) -> LabelResult:
        """Attach delayed labels to the transactions the service holds."""
        _current_model(state)  # 503 until the model and its feature store are loaded
        frame = pd.DataFrame([label.model_dump() for label in batch.labels])
        attached = state.store.add_labels(frame.astype({"is_fraud": "int8"}))
        result = LabelResult(
            received=len(frame), attached=attached, not_found=len(frame) - attached
        )
        state.metrics.labels.labels("attached").inc(result.attached)
        state.metrics.labels.labels("not_found").inc(result.not_found)
        return result
