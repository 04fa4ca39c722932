"""Experiment tracking with MLflow: runs, models, the registry and its aliases.

The only module that imports :mod:`mlflow`. With ``MLFLOW_TRACKING_URI`` unset, runs go to
a local SQLite store in the repository (``mlruns/``); set it to a server's URL
(``http://127.0.0.1:5000`` under ``docker compose up``) and the same calls log there.

Registry *stages* (Staging/Production) are deprecated in MLflow; this module uses
*aliases* (``champion``, ``challenger``) and loads models as ``models:/name@alias``.
"""

from __future__ import annotations

import logging
import os
import tempfile
import time
import urllib.error
import urllib.request
import warnings
from contextlib import contextmanager
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow
import mlflow.sklearn
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from production.config import get_settings, mask_url

__all__ = [
    "TrackingServerUnavailableError",
    "configure_tracking",
    "get_or_create_experiment",
    "log_run",
    "log_model",
    "register_model",
    "set_alias",
    "get_model_version",
    "load_model",
    "list_runs",
    "log_search",
    "log_child_runs",
    "compare_runs",
    "register_best_model",
    "promote_model",
]

HEALTH_TIMEOUT_S = 5.0
SEARCH_STRATEGY_TAG = "search.strategy"
_MAX_PARAM_VALUE = 6000  # MLflow's limit on a parameter value's length
_BATCH_PARAMS = 100  # MLflow's limit of params per log_batch call
_SUPPRESS_URL = "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"
_MODEL_PACKAGES = ("scikit-learn", "pandas", "numpy", "scipy", "cloudpickle")
# What MLflow prints on every log_model that does not apply here, by logger: the cloudpickle
# format is chosen on purpose (see log_model); pip requirements are pinned, so neither pip's
# version nor the course's uv project matter (the project's uv.lock, 1.1 MB of JupyterLab
# and friends, is not copied into every model: MLFLOW_LOG_UV_FILES=false unless set).
# Integer columns of the input example are integers at serving time too. Only these
# messages are hidden, only inside log_model.
_QUIET = {
    "mlflow.sklearn": ("Saving scikit-learn models in the pickle or cloudpickle format",),
    "mlflow.utils.environment": ("Failed to resolve installed pip version",),
    "mlflow.utils.uv_utils": ("uv file logging disabled", "Detected uv project"),
}
_INTEGER_HINT = r"Hint: Inferred schema contains integer column"


class _DropMessages(logging.Filter):
    """A logging filter that drops records whose message starts with one of ``prefixes``."""

    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.prefixes)


@contextmanager
def _quiet_model_logging():
    """Hide the messages of ``_QUIET`` and skip copying uv files, for one log_model call."""
    filters = [(logging.getLogger(name), _DropMessages(p)) for name, p in _QUIET.items()]
    for logger, drop in filters:
        logger.addFilter(drop)
    unset = "MLFLOW_LOG_UV_FILES" not in os.environ
    if unset:
        os.environ["MLFLOW_LOG_UV_FILES"] = "false"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_INTEGER_HINT, category=UserWarning)
            yield
    finally:
        if unset:
            os.environ.pop("MLFLOW_LOG_UV_FILES", None)
        for logger, drop in filters:
            logger.removeFilter(drop)


class TrackingServerUnavailableError(ConnectionError):
    """The MLflow tracking server could not be reached."""


def _check_server(uri: str, timeout: float) -> None:
    """Fail fast when an http(s) tracking server does not answer its /health endpoint."""
    url = uri.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            if response.status == 200:
                return
            reason = f"HTTP {response.status}"
    except urllib.error.HTTPError as err:
        reason = f"HTTP {err.code} {err.reason}"
    except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
        reason = str(getattr(err, "reason", err)) or type(err).__name__
    raise TrackingServerUnavailableError(
        f"Cannot reach the MLflow tracking server at {mask_url(uri)} ({reason}, checked "
        f"{url.replace(uri.rstrip('/'), '')} with a {timeout:g} s time limit). Start it with "
        "'docker compose up -d mlflow' (or 'bash scripts/services.sh start'), or unset "
        "MLFLOW_TRACKING_URI to log to the local store in mlruns/."
    )


def configure_tracking(tracking_uri: str | None = None, *, timeout: float = HEALTH_TIMEOUT_S):
    """Point MLflow at the configured tracking store and check that it answers.

    Parameters
    ----------
    tracking_uri : str, optional
        Defaults to ``MLFLOW_TRACKING_URI`` from :func:`production.config.get_settings`
        (the local store ``mlruns/mlflow.db`` when unset).
    timeout : float, default=5.0
        Seconds to wait for a tracking server's ``/health`` answer.

    Returns
    -------
    str
        The tracking URI in use.

    Raises
    ------
    TrackingServerUnavailableError
        Within ``timeout`` seconds when a server does not answer; the message says how to
        start it (the password of the URL, if any, is masked).
    """
    settings = get_settings()
    uri = tracking_uri or settings.mlflow_tracking_uri
    if uri.startswith(("http://", "https://")):
        _check_server(uri, timeout)
        # after the health check, keep MLflow's own retries short as well (default: minutes)
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    elif uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def _artifact_location(tracking_uri: str) -> str | None:
    """Keep a local store's artifacts beside its database, not in the notebook's folder."""
    if tracking_uri.startswith("sqlite:///"):
        return (Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts").as_uri()
    return None


def get_or_create_experiment(name: str) -> str:
    """Return the id of experiment ``name``, creating it if needed, and make it active.

    Parameters
    ----------
    name : str
        Experiment name, e.g. ``"fraud-baselines"``.

    Returns
    -------
    str
        The experiment id.

    Raises
    ------
    ValueError
        If ``name`` is empty.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            f"The 'name' parameter of get_or_create_experiment must be a non-empty string. "
            f"Got {name!r} instead."
        )
    experiment = mlflow.get_experiment_by_name(name)
    if experiment is None:
        experiment_id = mlflow.create_experiment(
            name, artifact_location=_artifact_location(mlflow.get_tracking_uri())
        )
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def _pip_requirements() -> list[str]:
    """Pin the packages a scikit-learn model needs, so MLflow need not infer them (~5 s)."""
    pins = []
    for package in _MODEL_PACKAGES:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            continue
    return pins


def log_model(model, *, name: str = "model", input_example=None, registered_model_name=None):
    """Log a fitted scikit-learn estimator or pipeline to the active run.

    Uses cloudpickle serialisation (MLflow's default, skops, refuses tree models and
    custom transformers) and pinned pip requirements (skips a ~5 s inference).

    Parameters
    ----------
    model : estimator
        A fitted scikit-learn estimator or Pipeline.
    name : str, default="model"
        The model's name within the run.
    input_example : pandas.DataFrame, optional
        A few input rows; MLflow stores them and infers the model signature.
    registered_model_name : str, optional
        Also register the model under this name.

    Returns
    -------
    mlflow.models.model.ModelInfo
        Where the model was logged (``model_uri``) and its signature.

    Raises
    ------
    RuntimeError
        If no run is active.
    """
    if mlflow.active_run() is None:
        raise RuntimeError("log_model needs an active run: call it inside log_run or start_run.")
    with _quiet_model_logging():
        return mlflow.sklearn.log_model(
            model,
            name=name,
            input_example=input_example,
            serialization_format="cloudpickle",
            pip_requirements=_pip_requirements(),
            registered_model_name=registered_model_name,
        )


def _log_figures(figures: dict) -> None:
    for filename, figure in figures.items():
        mlflow.log_figure(figure, filename)


def _log_artifacts(artifacts: dict) -> None:
    for artifact_path, source in artifacts.items():
        source = Path(source)
        if not source.exists():
            raise FileNotFoundError(f"log_run: artifact {artifact_path!r} not found at {source}")
        if source.is_dir():
            mlflow.log_artifacts(str(source), artifact_path=artifact_path)
        else:
            mlflow.log_artifact(str(source), artifact_path=artifact_path or None)


def log_run(
    experiment: str,
    *,
    run_name: str | None = None,
    params: dict | None = None,
    metrics: dict | None = None,
    tags: dict | None = None,
    model=None,
    input_example=None,
    registered_model_name: str | None = None,
    figures: dict | None = None,
    artifacts: dict | None = None,
    tables: dict | None = None,
) -> str:
    """Log one complete run: parameters, metrics, tags, a model, figures and files.

    Parameters
    ----------
    experiment : str
        Experiment name; created if missing.
    run_name : str, optional
        A readable name for the run.
    params, metrics, tags : dict, optional
        Values to log. Metrics must be numbers.
    model : estimator, optional
        A fitted scikit-learn model or pipeline, logged with :func:`log_model` as ``"model"``.
    input_example : pandas.DataFrame, optional
        A few input rows for the model's signature.
    registered_model_name : str, optional
        Also register the model under this name.
    figures : dict, optional
        ``{"plots/roc.png": matplotlib_figure}``.
    artifacts : dict, optional
        ``{"artifact/folder": "local/path"}``: files or folders to copy into the run.
    tables : dict, optional
        ``{"tables/cv_results.json": DataFrame}``: tables stored as JSON artifacts.

    Returns
    -------
    str
        The run id.

    Raises
    ------
    TypeError
        If a metric is not a number (the message names it).
    TrackingServerUnavailableError
        If a configured server cannot be reached (checked first, within a few seconds).

    Examples
    --------
    >>> run_id = log_run("demo", params={"C": 1.0}, metrics={"auc": 0.9})  # doctest: +SKIP
    """
    metrics = metrics or {}
    bad = {k: v for k, v in metrics.items() if isinstance(v, bool) or not _is_number(v)}
    if bad:
        raise TypeError(f"log_run: metrics must be numbers; got {bad}")
    if model is not None and not hasattr(model, "predict"):
        raise TypeError(
            f"The 'model' parameter of log_run must be a fitted estimator with predict(). "
            f"Got {type(model).__name__} instead."
        )
    configure_tracking()
    get_or_create_experiment(experiment)
    with mlflow.start_run(run_name=run_name, nested=mlflow.active_run() is not None) as run:
        if params:
            mlflow.log_params(params)
        if metrics:
            mlflow.log_metrics({k: float(v) for k, v in metrics.items()})
        if tags:
            mlflow.set_tags(tags)
        if figures:
            _log_figures(figures)
        if tables:
            for artifact_file, table in tables.items():
                mlflow.log_table(table, artifact_file=artifact_file)
        if artifacts:
            _log_artifacts(artifacts)
        if model is not None:
            log_model(
                model, input_example=input_example, registered_model_name=registered_model_name
            )
        return run.info.run_id


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def register_model(run_id: str, name: str, *, alias: str | None = None, model: str = "model"):
    """Register the model logged in run ``run_id`` and optionally point an alias at it.

    Parameters
    ----------
    run_id : str
        The run that logged the model.
    name : str
        Registered model name, e.g. ``"fraud-detector"``.
    alias : str, optional
        Alias to move to the new version, e.g. ``"challenger"``.
    model : str, default="model"
        The model's name within the run.

    Returns
    -------
    str
        The new model version.
    """
    client = MlflowClient()
    logged = [
        m
        for m in client.search_logged_models(
            experiment_ids=[client.get_run(run_id).info.experiment_id],
            filter_string=f"source_run_id = '{run_id}' AND name = '{model}'",
        )
    ]
    if not logged:
        raise ValueError(f"register_model: run {run_id!r} has no logged model named {model!r}.")
    version_ = mlflow.register_model(logged[0].model_uri, name).version
    if alias:
        set_alias(name, alias, version_)
    return str(version_)


def set_alias(name: str, alias: str, version: str | int) -> None:
    """Point ``alias`` of registered model ``name`` at ``version`` (moving it if it existed).

    Parameters
    ----------
    name : str
        Registered model name.
    alias : str
        E.g. ``"champion"`` or ``"challenger"``.
    version : str or int
        The model version.
    """
    MlflowClient().set_registered_model_alias(name, alias, str(version))


def get_model_version(name: str, alias: str = "champion") -> str:
    """Return the version that ``alias`` of registered model ``name`` points at.

    Parameters
    ----------
    name : str
        Registered model name.
    alias : str, default="champion"
        The alias.

    Returns
    -------
    str
        The model version.

    Raises
    ------
    LookupError
        If the model or the alias does not exist.
    """
    try:
        return str(MlflowClient().get_model_version_by_alias(name, alias).version)
    except mlflow.exceptions.MlflowException as err:
        raise LookupError(
            f"get_model_version: registered model {name!r} has no alias {alias!r} "
            f"({err.message.splitlines()[0]})"
        ) from None


def load_model(name: str, alias: str = "champion"):
    """Load the scikit-learn model that ``alias`` of registered model ``name`` points at.

    Parameters
    ----------
    name : str
        Registered model name.
    alias : str, default="champion"
        The alias, e.g. ``"champion"``.

    Returns
    -------
    estimator
        The fitted scikit-learn model or pipeline.

    Raises
    ------
    LookupError
        If the model or the alias does not exist.
    """
    get_model_version(name, alias)
    with tempfile.TemporaryDirectory() as tmp:
        return mlflow.sklearn.load_model(f"models:/{name}@{alias}", dst_path=tmp)


def list_runs(experiment: str, *, max_results: int = 100) -> pd.DataFrame:
    """Return the runs of ``experiment`` as a DataFrame, newest first.

    Parameters
    ----------
    experiment : str
        Experiment name.
    max_results : int, default=100
        At most this many runs.

    Returns
    -------
    pandas.DataFrame
        One row per run: ``run_id``, ``run_name``, ``start_time``, ``status`` and one column
        per parameter (``params.*``), metric (``metrics.*``) and tag (``tags.*``).

    Raises
    ------
    ValueError
        If the experiment does not exist (the message lists those that do).
    """
    configure_tracking()
    if mlflow.get_experiment_by_name(experiment) is None:
        names = sorted(e.name for e in mlflow.search_experiments())
        raise ValueError(f"list_runs: experiment {experiment!r} not found; available: {names}")
    runs = mlflow.search_runs(
        experiment_names=[experiment], max_results=max_results, order_by=["start_time DESC"]
    )
    runs = runs.rename(columns={"tags.mlflow.runName": "run_name"})
    first = ["run_id", "run_name", "start_time", "status"]
    rest = sorted(c for c in runs.columns if c.startswith(("params.", "metrics.", "tags.")))
    return runs[[c for c in first if c in runs.columns] + rest].reset_index(drop=True)


# --------------------------------------------------------------------------- searches


def _check_metrics(metrics: dict, where: str) -> dict:
    """Return metrics as floats; raise naming the offenders when some are not numbers."""
    bad = {k: v for k, v in metrics.items() if isinstance(v, bool) or not _is_number(v)}
    if bad:
        raise TypeError(f"{where}: metrics must be numbers; got {bad}")
    return {k: float(v) for k, v in metrics.items()}


def _param_value(value) -> str:
    text = str(value)
    return text if len(text) <= _MAX_PARAM_VALUE else text[: _MAX_PARAM_VALUE - 3] + "..."


_CHILD_KEYS = {"run_name", "params", "metrics", "tags"}


def log_child_runs(parent_run_id: str, children) -> list[str]:
    """Log one finished child run per entry under ``parent_run_id``, in few requests.

    Each child costs three tracking calls (create, one ``log_batch`` with all its params
    and metrics, terminate): cheap enough for one run per search candidate, which is why
    children carry no model or artifact.

    Parameters
    ----------
    parent_run_id : str
        The parent run; children go to its experiment and are nested under it (tag
        ``mlflow.parentRunId``).
    children : iterable of dict
        ``{"run_name": str, "params": dict, "metrics": dict, "tags": dict}``, every key
        optional. Params and tags are logged as text, metrics must be numbers.

    Returns
    -------
    list of str
        The child run ids, in the order given.

    Raises
    ------
    ValueError
        If a child has a key other than those four.
    TypeError
        If a metric is not a number (the message names the child and the metric).

    Examples
    --------
    >>> log_child_runs(parent_id, [{"params": {"C": 1}, "metrics": {"ap": 0.4}}])  # doctest: +SKIP
    """
    children = list(children)
    prepared = []
    for i, child in enumerate(children):
        unknown = set(child) - _CHILD_KEYS
        if unknown:
            raise ValueError(
                f"log_child_runs: child {i} has unknown key(s) {sorted(unknown)}; "
                f"expected some of {sorted(_CHILD_KEYS)}."
            )
        metrics = _check_metrics(child.get("metrics") or {}, f"log_child_runs: child {i}")
        prepared.append((child, metrics))
    client = MlflowClient()
    experiment_id = client.get_run(parent_run_id).info.experiment_id
    run_ids = []
    # against a server, set_terminated prints two "View run" lines per run and fetches the
    # run again to name it: silence that for the children (the parent still prints its link)
    previous = os.environ.get(_SUPPRESS_URL)
    os.environ[_SUPPRESS_URL] = "true"
    try:
        for child, metrics in prepared:
            run_ids.append(_log_child(client, experiment_id, parent_run_id, child, metrics))
    finally:
        if previous is None:
            os.environ.pop(_SUPPRESS_URL, None)
        else:
            os.environ[_SUPPRESS_URL] = previous
    return run_ids


def _log_child(client, experiment_id, parent_run_id, child, metrics) -> str:
    """Create, fill and finish one child run: three tracking calls."""
    now = int(time.time() * 1000)
    tags = {k: _param_value(v) for k, v in (child.get("tags") or {}).items()}
    run = client.create_run(
        experiment_id,
        start_time=now,
        tags={**tags, MLFLOW_PARENT_RUN_ID: parent_run_id},
        run_name=child.get("run_name"),
    )
    run_id = run.info.run_id
    params = [Param(str(k), _param_value(v)) for k, v in (child.get("params") or {}).items()]
    metric_list = [Metric(k, v, now, 0) for k, v in metrics.items()]
    for start in range(0, max(len(params), len(metric_list), 1), _BATCH_PARAMS):
        batch_params = params[start : start + _BATCH_PARAMS]
        batch_metrics = metric_list[start : start + _BATCH_PARAMS]
        if batch_params or batch_metrics:
            client.log_batch(run_id, metrics=batch_metrics, params=batch_params)
    client.set_terminated(run_id, "FINISHED", end_time=int(time.time() * 1000))
    return run_id


def log_search(
    experiment: str,
    *,
    run_name: str | None = None,
    params: dict | None = None,
    metrics: dict | None = None,
    tags: dict | None = None,
    children=(),
    model=None,
    input_example=None,
    figures: dict | None = None,
    tables: dict | None = None,
) -> str:
    """Log a hyperparameter search: a parent run, one nested run per candidate, the best model.

    :func:`production.tuning.run_search` calls this; it can log any search whose
    candidates are described as dicts.

    Parameters
    ----------
    experiment : str
        Experiment name; created if missing.
    run_name : str, optional
        Name of the parent run.
    params, metrics, tags : dict, optional
        Logged on the parent run (e.g. strategy, best score).
    children : iterable of dict, default=()
        One dict per candidate, see :func:`log_child_runs`.
    model : estimator, optional
        The refitted best pipeline, logged on the parent as ``"model"``.
    input_example : pandas.DataFrame, optional
        A few input rows for the model's signature.
    figures : dict, optional
        ``{"search/cv_results.png": matplotlib_figure}``.
    tables : dict, optional
        ``{"search/cv_results.csv": DataFrame}``: ``.csv`` names are written as CSV text,
        other names with :func:`mlflow.log_table` (JSON).

    Returns
    -------
    str
        The parent run id.

    Raises
    ------
    TypeError
        If a metric (parent or child) is not a number, or ``model`` has no ``predict``.
    ValueError
        If a child has an unknown key.
    TrackingServerUnavailableError
        If a configured server cannot be reached.

    Examples
    --------
    >>> parent_id = log_search(
    ...     "tuning", params={"strategy": "grid"}, metrics={"cv_ap": 0.4},
    ...     children=[{"params": {"C": 1}, "metrics": {"cv_ap": 0.4}}],
    ... )  # doctest: +SKIP
    """
    parent_metrics = _check_metrics(metrics or {}, "log_search")
    children = list(children)
    for i, child in enumerate(children):
        _check_metrics(child.get("metrics") or {}, f"log_search: child {i}")
    if model is not None and not hasattr(model, "predict"):
        raise TypeError(
            f"The 'model' parameter of log_search must be a fitted estimator with predict(). "
            f"Got {type(model).__name__} instead."
        )
    configure_tracking()
    get_or_create_experiment(experiment)
    with mlflow.start_run(run_name=run_name, nested=mlflow.active_run() is not None) as run:
        run_id = run.info.run_id
        client = MlflowClient()
        now = int(time.time() * 1000)
        client.log_batch(
            run_id,
            metrics=[Metric(k, v, now, 0) for k, v in parent_metrics.items()],
            params=[Param(str(k), _param_value(v)) for k, v in (params or {}).items()][
                :_BATCH_PARAMS
            ],
            tags=[RunTag(str(k), _param_value(v)) for k, v in (tags or {}).items()],
        )
        extra = list((params or {}).items())[_BATCH_PARAMS:]
        if extra:
            mlflow.log_params({k: _param_value(v) for k, v in extra})
        log_child_runs(run_id, children)
        if figures:
            _log_figures(figures)
        for artifact_file, table in (tables or {}).items():
            if artifact_file.endswith(".csv"):
                mlflow.log_text(table.to_csv(index=False), artifact_file)
            else:
                mlflow.log_table(table, artifact_file=artifact_file)
        if model is not None:
            log_model(model, input_example=input_example)
        return run_id


def compare_runs(
    experiment: str,
    metric: str,
    *,
    parent_run_id: str | None = None,
    higher_is_better: bool = True,
    max_results: int = 1000,
) -> pd.DataFrame:
    """Return runs with their params and metrics, best ``metric`` first.

    Parameters
    ----------
    experiment : str
        Experiment name.
    metric : str
        Metric to sort by, e.g. ``"cv_average_precision"``.
    parent_run_id : str, optional
        Only the runs nested under this run (the candidates of one search).
    higher_is_better : bool, default=True
        Sort descending (``False``: ascending, e.g. for a loss).
    max_results : int, default=1000
        At most this many runs are read.

    Returns
    -------
    pandas.DataFrame
        One row per run: ``run_id``, ``run_name``, ``metrics.<metric>``, then the other
        ``metrics.*`` and the ``params.*`` columns (params are text, as MLflow stores
        them). Runs without the metric come last.

    Raises
    ------
    ValueError
        If the experiment does not exist (the message lists those that do), if no run of
        the selection logged ``metric`` (the message lists the metrics that exist), or if
        ``parent_run_id`` has no child runs.

    Examples
    --------
    >>> compare_runs("tuning", "cv_average_precision", parent_run_id=result.parent_run_id)  # doctest: +SKIP
    """
    configure_tracking()
    if mlflow.get_experiment_by_name(experiment) is None:
        names = sorted(e.name for e in mlflow.search_experiments())
        raise ValueError(f"compare_runs: experiment {experiment!r} not found; available: {names}")
    filter_string = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_run_id}'" if parent_run_id else ""
    runs = mlflow.search_runs(
        experiment_names=[experiment], filter_string=filter_string, max_results=max_results
    )
    if runs.empty and parent_run_id:
        raise ValueError(
            f"compare_runs: run {parent_run_id!r} has no child runs in experiment {experiment!r}."
        )
    column = f"metrics.{metric}"
    if column not in runs.columns:
        available = sorted(c.removeprefix("metrics.") for c in runs if c.startswith("metrics."))
        raise ValueError(f"compare_runs: no run logged metric {metric!r}; available: {available}")
    runs = runs.rename(columns={"tags.mlflow.runName": "run_name"})
    runs = runs.sort_values(
        [column, "start_time"], ascending=[not higher_is_better, True], na_position="last"
    )
    other_metrics = sorted(c for c in runs if c.startswith("metrics.") and c != column)
    params = sorted(c for c in runs if c.startswith("params."))
    return runs[["run_id", "run_name", column, *other_metrics, *params]].reset_index(drop=True)


def register_best_model(search_run_id: str, name: str, *, alias: str = "challenger") -> str:
    """Register the best pipeline of a logged search and point ``alias`` at it.

    Parameters
    ----------
    search_run_id : str
        The parent run of a search (``SearchResult.parent_run_id``).
    name : str
        Registered model name, e.g. ``"fraud-detector"``.
    alias : str, default="challenger"
        Alias for the new version. Promote it with :func:`promote_model`.

    Returns
    -------
    str
        The new model version.

    Raises
    ------
    ValueError
        If the run is not the parent run of a search (e.g. a candidate's run) or has no
        logged model.
    """
    run = MlflowClient().get_run(search_run_id)
    if SEARCH_STRATEGY_TAG not in run.data.tags:
        parent = run.data.tags.get(MLFLOW_PARENT_RUN_ID)
        hint = f"; its parent run is {parent!r}" if parent else ""
        raise ValueError(
            f"register_best_model: run {search_run_id!r} is not the parent run of a search "
            f"(no {SEARCH_STRATEGY_TAG!r} tag){hint}. Pass SearchResult.parent_run_id."
        )
    return register_model(search_run_id, name, alias=alias)


def _version_metric(client: MlflowClient, name: str, version: str, metric: str) -> float:
    """Return the metric logged by the run that produced model version ``version``."""
    model_version = client.get_model_version(name, version)
    run_id = model_version.run_id
    if not run_id and getattr(model_version, "model_id", None):
        run_id = client.get_logged_model(model_version.model_id).source_run_id
    metrics = client.get_run(run_id).data.metrics if run_id else {}
    if metric not in metrics:
        raise ValueError(
            f"promote_model: version {version} of {name!r} comes from run {run_id!r}, which "
            f"has no metric {metric!r}; available: {sorted(metrics)}"
        )
    return metrics[metric]


def promote_model(
    name: str,
    *,
    metric: str,
    from_alias: str = "challenger",
    to_alias: str = "champion",
    higher_is_better: bool = True,
    min_improvement: float = 0.0,
) -> bool:
    """Move ``to_alias`` to the ``from_alias`` version if its metric beats the incumbent's.

    The metric of each version is read from the run that logged its model (for a
    search, the parent run's best CV score). The challenger wins when there is no
    champion yet, or when it beats the champion by MORE than ``min_improvement``
    (ties keep the champion).

    Parameters
    ----------
    name : str
        Registered model name.
    metric : str
        Metric of the source runs to compare, e.g. ``"cv_average_precision"``.
    from_alias : str, default="challenger"
        Alias of the candidate version.
    to_alias : str, default="champion"
        Alias to move when the candidate wins.
    higher_is_better : bool, default=True
        ``False`` for losses.
    min_improvement : float, default=0.0
        Margin, in the metric's units, by which the challenger must win.

    Returns
    -------
    bool
        Whether ``to_alias`` now points at the challenger's version because of this call
        (``False`` when it lost, or already was the champion).

    Raises
    ------
    LookupError
        If the model or ``from_alias`` does not exist.
    ValueError
        If ``from_alias == to_alias``, ``min_improvement < 0``, or a source run lacks
        ``metric`` (the message lists the metrics it has).

    Examples
    --------
    >>> promote_model("fraud-detector", metric="cv_average_precision")  # doctest: +SKIP
    True
    """
    if from_alias == to_alias:
        raise ValueError(
            f"promote_model: from_alias and to_alias must differ; both are {to_alias!r}."
        )
    if not _is_number(min_improvement) or isinstance(min_improvement, bool) or min_improvement < 0:
        raise ValueError(
            f"The 'min_improvement' parameter of promote_model must be a number >= 0. "
            f"Got {min_improvement!r} instead."
        )
    client = MlflowClient()
    challenger = get_model_version(name, from_alias)
    challenger_score = _version_metric(client, name, challenger, metric)
    try:
        champion = get_model_version(name, to_alias)
    except LookupError:
        champion = None
    if champion == challenger:
        return False
    if champion is not None:
        champion_score = _version_metric(client, name, champion, metric)
        margin = (
            challenger_score - champion_score
            if higher_is_better
            else (champion_score - challenger_score)
        )
        if not margin > min_improvement:
            return False
    set_alias(name, to_alias, challenger)
    return True
