"""Experiment tracking with MLflow: runs, models, the registry and its aliases.

Runs go to ``MLFLOW_TRACKING_URI`` (unset: a local SQLite store); a server must answer
``/health`` within ``HEALTH_TIMEOUT_S`` s. Models are found by alias: ``models:/name@champion``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import version
from numbers import Real
from pathlib import Path
from urllib.parse import unquote

import mlflow
import mlflow.sklearn
import pandas as pd
import requests
from mlflow import MlflowClient
from mlflow.entities import Dataset, DatasetInput, InputTag, Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from production._validation import Instance, Interval, InvalidParameterError, validate_params
from production.config import get_settings

__all__ = [
    "HEALTH_TIMEOUT_S",
    "SEARCH_TAG",
    "TrackingServerUnavailableError",
    "ModelVersion",
    "PromotionDecision",
    "configure_tracking",
    "get_or_create_experiment",
    "log_run",
    "log_model",
    "log_child_runs",
    "log_onnx_model",
    "register_model",
    "register_best_model",
    "set_alias",
    "get_model_version",
    "load_model",
    "load_onnx_bytes",
    "list_runs",
    "compare_runs",
    "promote_model",
    "frame_digest",
    "log_training_data",
    "training_data",
]

HEALTH_TIMEOUT_S = 5.0
#: Tag marking the parent run of a search (set by ``production.tuning.log_search``).
SEARCH_TAG = "search.strategy"
_MODEL_PACKAGES = ("scikit-learn", "pandas", "numpy", "scipy", "cloudpickle")
_NO_BAR = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
_TRAINING = InputTag("mlflow.data.context", "training")  # MLflow's tag: what a dataset was for


class TrackingServerUnavailableError(ConnectionError):
    """The MLflow tracking server could not be reached."""


class ModelVersion(str):
    """A registered model's version (a str such as ``"3"``) with ``.version`` and ``.run_id``."""

    def __new__(cls, version: str | int, run_id: str | None):  # noqa: D102
        self = super().__new__(cls, str(version))
        self.version, self.run_id = str(version), run_id
        return self


def _split_credentials(uri: str) -> tuple[str, tuple[str, str] | None]:
    """Return the URI without ``user:password@``, and the (user, password) it held."""
    scheme, _, rest = uri.partition("://")
    credentials, at, host = rest.rpartition("@")  # the last @: a password may hold / # ?
    user, _, pw = credentials.partition(":")
    return (f"{scheme}://{host}", (unquote(user), unquote(pw))) if at else (uri, None)


def _check_server(server: str, auth: tuple[str, str] | None, timeout: float) -> None:
    """Raise TrackingServerUnavailableError unless the server answers ``/health`` in time."""
    try:
        requests.get(server.rstrip("/") + "/health", auth=auth, timeout=timeout).raise_for_status()
    except requests.RequestException as err:  # refused, timed out, HTTP error, bad URL
        status = getattr(err.response, "status_code", None)
        reason = f"HTTP {status}" if status else type(err).__name__
        raise TrackingServerUnavailableError(
            f"Cannot reach the MLflow tracking server at {server} ({reason}; {timeout:g} s time "
            "limit). Run 'docker compose up -d mlflow', or unset MLFLOW_TRACKING_URI."
        ) from None


def configure_tracking(tracking_uri: str | None = None) -> str:
    """Point MLflow at ``tracking_uri`` (default: the settings') and return it.

    TrackingServerUnavailableError if a server does not answer within ``HEALTH_TIMEOUT_S`` s.
    """
    uri = tracking_uri or get_settings().mlflow_tracking_uri
    if uri.startswith(("http://", "https://")):
        uri, auth = _split_credentials(uri)  # MLflow prints its URI in every run's link
        _check_server(uri, auth, HEALTH_TIMEOUT_S)
        if auth:  # MLflow's way to send basic auth
            os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = auth
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # MLflow's: minutes
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    elif uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def _client() -> MlflowClient:
    """Configure tracking (one health check) and return a client."""
    configure_tracking()
    return MlflowClient()


def get_or_create_experiment(name: str) -> str:
    """Return the id of experiment ``name`` (a non-empty str), created if missing, now active."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidParameterError(
            f"The 'name' parameter of get_or_create_experiment must be a non-empty str. Got {name!r} instead."
        )
    uri = configure_tracking()
    if mlflow.get_experiment_by_name(name) is None:  # a local store keeps artifacts beside it
        db = Path(uri.removeprefix("sqlite:///")) if uri.startswith("sqlite:///") else None
        location = (db.parent / "artifacts").as_uri() if db else None
        mlflow.create_experiment(name, artifact_location=location)
    return mlflow.set_experiment(name).experiment_id


def _batch(metrics=None, params=None, tags=None, where: str = "log_run") -> dict:
    """Return MlflowClient.log_batch's arguments; raise naming metrics that are not numbers."""
    metrics, now = metrics or {}, int(time.time() * 1000)
    bad = {k: v for k, v in metrics.items() if isinstance(v, bool) or not isinstance(v, Real)}
    if bad:
        raise InvalidParameterError(f"{where}: metrics must be numbers; got {bad}")
    return {  # values cut to MLflow's longest, 6000 characters
        "metrics": [Metric(str(k), float(v), now, 0) for k, v in metrics.items()],
        "params": [Param(str(k), str(v)[:6000]) for k, v in (params or {}).items()],
        "tags": [RunTag(str(k), str(v)[:6000]) for k, v in (tags or {}).items()],
    }


@contextmanager
def _unless_set(variable: str, value: str):
    """Set an environment variable for the block, unless it is set already."""
    if variable in os.environ:
        yield
        return
    os.environ[variable] = value
    try:
        yield
    finally:
        os.environ.pop(variable, None)


def log_model(model, *, input_example=None):
    """Log a fitted scikit-learn model as ``model`` of the active run; return its info.

    Pinned requirements (fast); ``mlflow models serve`` returns ``predict_proba``.
    """
    if mlflow.active_run() is None:
        raise RuntimeError("log_model needs an active run: call it inside mlflow.start_run().")
    # MLflow's advice that does not apply here (cloudpickle, pinned requirements), only
    quiet = [logging.getLogger(n) for n in ("mlflow.sklearn", "mlflow.utils.environment")]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:  # uv files off: else the project's uv.lock (1 MB) is copied into every model
        with _unless_set("MLFLOW_LOG_UV_FILES", "false"), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer")
            return mlflow.sklearn.log_model(
                model,
                name="model",
                input_example=input_example,
                serialization_format="cloudpickle",
                pip_requirements=[f"{p}=={version(p)}" for p in _MODEL_PACKAGES],
                pyfunc_predict_fn="predict_proba",
            )
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)


def log_run(
    experiment: str,
    *,
    run_name: str | None = None,
    params: dict | None = None,
    metrics: dict | None = None,
    tags: dict | None = None,
    model=None,
    input_example=None,
    figures: dict | None = None,
    tables: dict | None = None,
) -> str:
    """Log one run (nested if a run is active) in ``experiment``; return its id.

    ``metrics`` are numbers; ``figures``/``tables`` map artifact files to figures/DataFrames.
    """
    batch = _batch(metrics, params, tags)
    if model is not None and not hasattr(model, "predict"):
        raise InvalidParameterError(f"log_run: model must have predict(); got {model!r}")
    get_or_create_experiment(experiment)
    with mlflow.start_run(run_name=run_name, nested=mlflow.active_run() is not None) as run:
        MlflowClient().log_batch(run.info.run_id, **batch)
        for artifact_file, figure in (figures or {}).items():
            mlflow.log_figure(figure, artifact_file)
        for artifact_file, table in (tables or {}).items():
            mlflow.log_table(table, artifact_file=artifact_file)
        if model is not None:
            log_model(model, input_example=input_example)
    return run.info.run_id


def log_child_runs(parent_run_id: str, children) -> list[str]:
    """Log one finished run per child, nested under ``parent_run_id``; return their ids.

    ``children``: dicts with optional keys ``run_name``, ``params``, ``metrics``, ``tags``.
    """
    prepared = []
    for i, child in enumerate(children):
        unknown = sorted(set(child) - {"run_name", "params", "metrics", "tags"})
        if unknown:
            raise InvalidParameterError(f"log_child_runs: child {i} has unknown key(s) {unknown}")
        where = f"log_child_runs: child {i}"
        batch = _batch(child.get("metrics"), child.get("params"), child.get("tags"), where)
        prepared.append((child.get("run_name"), batch))
    client = _client()
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    run_ids = []
    with _unless_set("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true"):  # no "View run" each
        for run_name, batch in prepared:
            tags = {MLFLOW_PARENT_RUN_ID: parent_run_id}
            run_id = client.create_run(experiment_id, run_name=run_name, tags=tags).info.run_id
            client.log_batch(run_id, **batch)
            client.set_terminated(run_id, "FINISHED")
            run_ids.append(run_id)
    return run_ids


@validate_params(onnx_bytes=Instance(bytes))
def log_onnx_model(onnx_bytes: bytes, *, run_id: str, name: str = "onnx") -> None:
    """Store ``onnx_bytes`` as the artifact ``<name>/model.onnx`` of ``run_id``."""
    client = _client()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "model.onnx").write_bytes(onnx_bytes)
        client.log_artifact(run_id, str(Path(tmp) / "model.onnx"), artifact_path=name)


def register_model(run_id: str, name: str, *, alias: str | None = None) -> str:
    """Register the model logged in ``run_id``, move ``alias`` to it; return the version."""
    client = _client()
    logged = client.search_logged_models(
        experiment_ids=[client.get_run(run_id).info.experiment_id],
        filter_string=f"source_run_id = '{run_id}' AND name = 'model'",
    )
    if not logged:
        raise ValueError(f"register_model: run {run_id!r} has no logged model named 'model'.")
    new = str(mlflow.register_model(logged[0].model_uri, name).version)
    if alias:
        client.set_registered_model_alias(name, alias, new)
    return new


def register_best_model(search_run_id: str, name: str, *, alias: str = "challenger") -> str:
    """Register the best pipeline of a search logged by ``tuning.log_search``; alias it."""
    tags = _client().get_run(search_run_id).data.tags
    if SEARCH_TAG not in tags:
        raise ValueError(
            f"register_best_model: run {search_run_id!r} is not the parent run of a search "
            f"(no {SEARCH_TAG!r} tag; its parent run: {tags.get(MLFLOW_PARENT_RUN_ID)!r})"
        )
    return register_model(search_run_id, name, alias=alias)


def set_alias(name: str, alias: str, version: str | int) -> None:
    """Point ``alias`` of registered model ``name`` at ``version`` (moving it)."""
    _client().set_registered_model_alias(name, alias, str(version))


def _version(client: MlflowClient, name: str, alias: str) -> ModelVersion:
    """Return the version ``alias`` points at, with its source run; LookupError if none."""
    try:
        found = client.get_model_version_by_alias(name, alias)
    except MlflowException as err:
        first_line = err.message.splitlines()[0]
        raise LookupError(f"model {name!r} has no alias {alias!r} ({first_line})") from None
    return ModelVersion(found.version, found.run_id)


def get_model_version(name: str, alias: str = "champion") -> ModelVersion:
    """Return the version ``alias`` points at: a str with ``.version``, ``.run_id``; or LookupError."""
    return _version(_client(), name, alias)


def load_model(name: str, alias: str = "champion"):
    """Load the scikit-learn model ``models:/name@alias``; LookupError if no such alias."""
    _version(_client(), name, alias)
    with tempfile.TemporaryDirectory() as tmp, _unless_set(_NO_BAR, "false"):
        return mlflow.sklearn.load_model(f"models:/{name}@{alias}", dst_path=tmp)


def load_onnx_bytes(model_name: str, alias: str) -> bytes | None:
    """Return the ONNX model stored with the version ``alias`` points at (None if none)."""
    client = _client()
    run_id = _version(client, model_name, alias).run_id
    stored = {a.path for a in client.list_artifacts(run_id, "onnx")} if run_id else set()
    if "onnx/model.onnx" not in stored:
        return None
    with tempfile.TemporaryDirectory() as tmp, _unless_set(_NO_BAR, "false"):
        return Path(client.download_artifacts(run_id, "onnx/model.onnx", tmp)).read_bytes()


def _runs(experiment: str, where: str, **search) -> pd.DataFrame:
    """Return mlflow.search_runs of one experiment; ValueError naming those that exist."""
    configure_tracking()
    if mlflow.get_experiment_by_name(experiment) is None:
        names = sorted(e.name for e in mlflow.search_experiments())
        raise ValueError(f"{where}: experiment {experiment!r} not found; available: {names}")
    runs = mlflow.search_runs(experiment_names=[experiment], **search)
    return runs.rename(columns={"tags.mlflow.runName": "run_name"})


@validate_params(max_results=Interval(int, 1, None))
def list_runs(experiment: str, *, max_results: int = 100) -> pd.DataFrame:
    """Return the runs of ``experiment``, newest first: ids, names, params, metrics, tags."""
    runs = _runs(experiment, "list_runs", max_results=max_results, order_by=["start_time DESC"])
    first = [c for c in ("run_id", "run_name", "start_time", "status") if c in runs]
    rest = sorted(c for c in runs if c.startswith(("params.", "metrics.", "tags.")))
    return runs[first + rest].reset_index(drop=True)


def compare_runs(
    experiment: str,
    metric: str,
    *,
    parent_run_id: str | None = None,
    higher_is_better: bool = True,
) -> pd.DataFrame:
    """Return runs (the children of ``parent_run_id`` if given), best ``metric`` first."""
    filter_string = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'" if parent_run_id else ""
    runs = _runs(experiment, "compare_runs", filter_string=filter_string)
    if runs.empty and parent_run_id:
        raise ValueError(f"compare_runs: run {parent_run_id!r} has no child runs in {experiment!r}")
    column = f"metrics.{metric}"
    if column not in runs:
        logged = sorted(c.removeprefix("metrics.") for c in runs if c.startswith("metrics."))
        raise ValueError(f"compare_runs: no run logged metric {metric!r}; available: {logged}")
    runs = runs.sort_values(
        [column, "start_time"], ascending=[not higher_is_better, True], na_position="last"
    )
    others = sorted(c for c in runs if c.startswith("metrics.") and c != column)
    params = sorted(c for c in runs if c.startswith("params."))
    return runs[["run_id", "run_name", column, *others, *params]].reset_index(drop=True)


@dataclass(frozen=True)
class PromotionDecision:
    """What :func:`promote_model` decided and why; its truth value is ``promoted``."""

    promoted: bool
    reason: str
    metric: str
    challenger_version: str
    challenger_score: float
    champion_version: str | None = None
    champion_score: float | None = None

    def __bool__(self) -> bool:
        return self.promoted


def _metric_of(client: MlflowClient, name: str, version: ModelVersion, metric: str) -> float:
    """Return the metric of the run that logged ``version``; ValueError listing its metrics."""
    metrics = client.get_run(version.run_id).data.metrics if version.run_id else {}
    if metric not in metrics:
        raise ValueError(
            f"promote_model: version {version} of {name!r} comes from run {version.run_id!r}, "
            f"which has no metric {metric!r}; available: {sorted(metrics)}"
        )
    return metrics[metric]


@validate_params(min_improvement=Interval(float, 0, None))
def promote_model(
    name: str,
    *,
    metric: str,
    from_alias: str = "challenger",
    to_alias: str = "champion",
    higher_is_better: bool = True,
    min_improvement: float = 0.0,
) -> PromotionDecision:
    """Move ``to_alias`` to the ``from_alias`` version if it beats the incumbent by a margin.

    Scores are ``metric`` of the runs that logged the models; the challenger wins when there
    is no champion or it gains MORE than ``min_improvement``. Returns a PromotionDecision.
    """
    if from_alias == to_alias:
        raise ValueError(f"promote_model: from_alias and to_alias are both {to_alias!r}")
    client = _client()
    challenger = _version(client, name, from_alias)
    score = _metric_of(client, name, challenger, metric)
    decided = {"metric": metric, "challenger_version": str(challenger), "challenger_score": score}
    try:
        champion = _version(client, name, to_alias)
    except LookupError:
        client.set_registered_model_alias(name, to_alias, str(challenger))
        return PromotionDecision(True, f"there was no {to_alias}", **decided)
    best = _metric_of(client, name, champion, metric)
    decided |= {"champion_version": str(champion), "champion_score": best}
    gain = score - best if higher_is_better else best - score
    promoted = gain > min_improvement
    if promoted:
        client.set_registered_model_alias(name, to_alias, str(challenger))
    more = "more" if promoted else "not more"
    reason = f"{metric} gains {gain:.4g}, {more} than the margin {min_improvement:g}"
    return PromotionDecision(promoted, reason, **decided)


@validate_params(frame=Instance(pd.DataFrame))
def frame_digest(frame: pd.DataFrame) -> str:
    """Return a content hash (16 hex digits) of ``frame``'s columns, dtypes and rows, in order."""
    digest = hashlib.sha256(repr([(str(c), str(t)) for c, t in frame.dtypes.items()]).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


@validate_params(frame=Instance(pd.DataFrame), source=Instance(str), tags=Instance(dict, none=True))
def log_training_data(frame, *, source: str, run_id: str, name="training", tags=None) -> str:
    """Log ``frame`` as the training dataset of run ``run_id``; return its :func:`frame_digest`.

    ``source``: where it was read (``"lake://silver/transactions?start=..."``); ``tags``: e.g. a rev.
    """
    digest = frame_digest(frame)
    with warnings.catch_warnings():  # the schema's integer-column advice is for model inputs
        warnings.filterwarnings("ignore", "Hint: Inferred schema contains integer")
        found = mlflow.data.from_pandas(frame, name=name, digest=digest).to_dict()
    dataset = Dataset(**found | {"source_type": "uri", "source": json.dumps({"uri": source})})
    tags = [_TRAINING] + [InputTag(k, str(v)) for k, v in (tags or {}).items()]
    _client().log_inputs(run_id, datasets=[DatasetInput(dataset, tags=tags)])
    return digest


@validate_params(version=Instance(str, int, none=True))
def training_data(name: str, version: str | int | None = None, *, alias: str = "champion") -> dict:
    """Return the dataset registered model ``name``'s ``version`` (or ``alias``) trained on.

    Keys ``run_id``, ``version``, ``name``, ``digest``, ``source``, ``tags``; else LookupError.
    """
    client = _client()
    version = _version(client, name, alias).version if version is None else str(version)
    try:
        run_id = client.get_model_version(name, version).run_id
    except MlflowException:
        raise LookupError(f"training_data: model {name!r} has no version {version!r}") from None
    logged = [d for d in client.get_run(run_id).inputs.dataset_inputs if _TRAINING in d.tags]
    if not logged:
        raise LookupError(f"training_data: version {version} of {name!r} logged no training data")
    dataset, tags = logged[-1].dataset, {t.key: t.value for t in logged[-1].tags if t != _TRAINING}
    found = {"run_id": run_id, "version": version, "name": dataset.name, "tags": tags}
    return found | {"digest": dataset.digest, "source": json.loads(dataset.source)["uri"]}
