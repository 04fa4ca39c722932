"""Serve the champion: ONNX conversion and scoring, the batch job and the drift job.

The API that serves :class:`ServingModel` online lives in :mod:`course.api`.
"""

from __future__ import annotations

import contextlib
import copy
import datetime as dt
import importlib.util
import json
import logging
import math
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import onnxruntime as ort
import pandas as pd
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder

from production import tracking
from production._validation import (
    Instance,
    Interval,
    TableName,
    as_day,
    as_timestamp,
    check_frame,
    check_param,
    validate_params,
)
from production.config import RANDOM_STATE
from production.db import get_engine, read_sql, table_exists, write_table
from production.feature_store import LONGEST_WINDOW, OnlineFeatureStore, read_transactions
from production.features import CATEGORICAL_FEATURES, FEATURE_COLUMNS, compute_model_features
from production.monitoring import drift_report, plot_drift_report

__all__ = [
    "MODEL_NAME",
    "DECISIONS",
    "MAX_ONNX_DIFFERENCE",
    "convert_to_onnx",
    "probe_rows",
    "check_onnx",
    "register_for_serving",  # ONNX
    "ServingModel",
    "resolve_threshold",
    "load_serving_model",  # the model
    "OnlineFeatureStore",  # from production.feature_store, where it lives
    "load_features",
    "build_predictions",
    "BatchScoringResult",
    "score_day",  # batch scoring
    "DriftCheck",
    "run_drift_check",  # monitoring
]

LOGGER = logging.getLogger(__name__)
#: Registered model served by default (the one ``production demo`` registers).
MODEL_NAME = "fraud-demo"
#: Decisions, for a score below and at-or-above the threshold.
DECISIONS = ("approve", "block")
#: The key of the predictions table: one prediction per transaction and day.
PREDICTION_KEY = ["tx_date", "transaction_id"]
#: An ONNX graph whose scores differ more than this from ``predict_proba`` is not served.
MAX_ONNX_DIFFERENCE = 1e-5
#: What ONNX Runtime is fed for a missing category (its imputer then fills it as sklearn's).
MISSING_CATEGORY = "__missing__"

# ---------------------------------------------------------------------------------- ONNX
# skl2onnx and onnx take seconds to import and only registration needs them: imported inside.


def _convert_hist_gradient_boosting(scope, operator, container):
    """Run skl2onnx 1.20's converter, writing the bools it passes (onnx >= 1.18 refuses) as ints."""
    from skl2onnx.operator_converters.random_forest import convert_sklearn_random_forest_classifier

    add_node = container.add_node

    def add_node_with_ints(*args, **attrs):
        for key, value in attrs.items():
            if isinstance(value, list):
                attrs[key] = [int(v) if isinstance(v, bool) else v for v in value]
        return add_node(*args, **attrs)

    container.add_node = add_node_with_ints  # this container converts the model alone
    convert_sklearn_random_forest_classifier(scope, operator, container)


def _convert_imputer(scope, operator, container):
    """Run skl2onnx's SimpleImputer converter, or Where(IsNaN) for float64 (Imputer: float32)."""
    from skl2onnx.algebra.onnx_ops import OnnxIsNaN, OnnxWhere
    from skl2onnx.common.data_types import DoubleTensorType
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer

    if not isinstance(operator.inputs[0].type, DoubleTensorType):
        return convert_sklearn_imputer(scope, operator, container)
    version, x = container.target_opset, operator.inputs[0]  # the packed numbers
    fill = operator.raw_operator.statistics_.astype(np.float64).reshape(1, -1)
    out = [operator.outputs[0].full_name]
    where = OnnxWhere(
        OnnxIsNaN(x, op_version=version), fill, x, op_version=version, output_names=out
    )
    where.add_to(scope, container)


def _convertible_copy(pipeline, is_text) -> tuple[Pipeline, list, list]:
    """Copy for skl2onnx (text sentinel, no passthrough); columns: by position in (numbers, text)."""
    clone, names = copy.deepcopy(pipeline), list(pipeline.feature_names_in_)
    groups = getattr(clone[0], "transformers_", [("all", None, names)])

    def cols(spec) -> list:  # a transformer's columns, by name
        spec = [spec] if isinstance(spec, str | int) else spec
        return [names[c] if isinstance(c, int) else c for c in spec]

    packed = sorted(dict.fromkeys(c for *_, cs in groups for c in cols(cs)), key=is_text)
    if hasattr(clone[0], "transformers_"):  # position i in (numbers, text): skl2onnx slices
        clone[0].transformers_ = [(n, t, [packed.index(c) for c in cols(s)]) for n, t, s in groups]
    for _, transformer, _ in getattr(clone[0], "transformers_", []):
        for step_name, step in transformer.steps if isinstance(transformer, Pipeline) else []:
            if step is None or isinstance(step, str):  # "passthrough" has no converter
                transformer.set_params(**{step_name: FunctionTransformer()})
            elif isinstance(step, SimpleImputer) and step.statistics_.dtype.kind in "OUS":
                step.set_params(missing_values=MISSING_CATEGORY)  # NaN is refused for text
            elif isinstance(step, OneHotEncoder) and step.handle_unknown == "infrequent_if_exist":
                if all(c is None for c in step.infrequent_categories_):  # none: the same
                    step.set_params(handle_unknown="ignore")
    return clone, [c for c in packed if not is_text(c)], [c for c in packed if is_text(c)]


def convert_to_onnx(pipeline, X_sample: pd.DataFrame) -> bytes:
    """Convert a fitted ``Pipeline([("preprocess", ColumnTransformer), ("model", clf)])`` to ONNX.

    Inputs ``numbers`` (float64) and ``text`` (missing: ``"__missing__"``), their columns named
    in the metadata ``columns``; float64 preprocessing, float32 for trees. Outputs: label, scores.
    """
    from onnx import TensorProto, compose, helper
    from skl2onnx import to_onnx, update_registered_converter
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
    from skl2onnx.common.shape_calculator import calculate_linear_classifier_output_shapes as shape
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes

    check_frame(X_sample, "convert_to_onnx", name="X_sample", columns=pipeline.feature_names_in_)
    flags = dict.fromkeys(["zipmap", "nocl", "raw_scores"], [True, False])  # as skl2onnx's
    for cls, calc, convert, opts in [
        (SimpleImputer, calculate_sklearn_imputer_output_shapes, _convert_imputer, None),
        (HistGradientBoostingClassifier, shape, _convert_hist_gradient_boosting, flags),
    ]:
        update_registered_converter(cls, f"Sklearn{cls.__name__}", calc, convert, options=opts)
    is_text = lambda column: not pd.api.types.is_numeric_dtype(X_sample[column])  # noqa: E731
    (clone, numeric, text), opsets = _convertible_copy(pipeline, is_text), {"": 17, "ai.onnx.ml": 3}
    inputs = [("numbers", DoubleTensorType([None, len(numeric)]))] if numeric else []
    inputs += [("text", StringTensorType([None, len(text)]))] if text else []
    steps = to_onnx(clone[0], initial_types=inputs, target_opset=opsets)
    width, output = clone[-1].n_features_in_, steps.graph.output[0].name
    for dtype in (np.float64, np.float32):  # trees emit doubles ONNX Runtime refuses: float32
        X_model = np.zeros((1, width), dtype)  # its dtype sets the input's
        model = to_onnx(clone[-1], X_model, options={"zipmap": False}, target_opset=opsets)
        if not any(node.op_type == "TreeEnsembleClassifier" for node in model.graph.node):
            break
    if dtype == np.float32:
        steps.graph.node.append(helper.make_node("Cast", [output], ["X32"], to=TensorProto.FLOAT))
        steps.graph.output.pop()
        steps.graph.output.append(helper.make_tensor_value_info("X32", TensorProto.FLOAT, None))
        output = "X32"
    for graph in (steps, model):  # each converter declares its own versions; ONNX wants one
        graph.ClearField("opset_import")
        graph.opset_import.extend(helper.make_opsetid(*item) for item in opsets.items())
    merged = compose.merge_models(steps, model, io_map=[(output, "X")], prefix2="model_")
    helper.set_model_props(merged, {"columns": json.dumps({"numbers": numeric, "text": text})})
    return merged.SerializeToString()


def _session(onnx_model: bytes) -> ort.InferenceSession:
    """Open an ONNX Runtime session on one thread (two workers on two cores)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(onnx_model, options, providers=["CPUExecutionProvider"])


def _text(value) -> str:
    """Return ``value`` as ONNX text: the sentinel if it is missing."""
    return MISSING_CATEGORY if pd.isna(value) else str(value)


def _run(session: ort.InferenceSession, rows, columns=None) -> np.ndarray:
    """Score a DataFrame or records (dicts): float64 numbers, text with a sentinel for missing."""
    columns = columns or json.loads(session.get_modelmeta().custom_metadata_map["columns"])
    if isinstance(rows, pd.DataFrame):  # batch: whole columns at once; None and pd.NA: NaN
        text = rows[columns["text"]].astype(object)
        feed = {
            "numbers": rows[columns["numbers"]].to_numpy(np.float64, na_value=np.nan),
            "text": text.where(text.notna(), MISSING_CATEGORY).astype(str).to_numpy(object),
        }
    else:  # a few records (the API): no DataFrame to build
        feed = {"numbers": np.array([[r[c] for c in columns["numbers"]] for r in rows], np.float64)}
        feed["text"] = np.array([[_text(r[c]) for c in columns["text"]] for r in rows], object)
    feed = {name: values for name, values in feed.items() if columns[name]}
    return session.run([session.get_outputs()[-1].name], feed)[0][:, 1].astype(np.float64)


def _known_categories(pipeline) -> dict:
    """Map each encoded input column to the categories its encoder was fitted with."""
    known = {}
    for _, transformer, columns in getattr(pipeline[0], "transformers_", []):
        for _, step in transformer.steps if isinstance(transformer, Pipeline) else []:
            if isinstance(step, OneHotEncoder | OrdinalEncoder) and isinstance(columns, list):
                for column, categories in zip(columns, step.categories_, strict=True):
                    known[str(column)] = frozenset(c for c in categories if not pd.isna(c))
    return known


@validate_params(n_rows=Interval(int, 1, None))
def probe_rows(pipeline, X=None, *, n_rows: int = 200, random_state=RANDOM_STATE) -> pd.DataFrame:
    """Draw rows of ``X``'s values (default: a grid), 1 in 4 extreme (1e9, NaN, unseen, None)."""
    rng, known, columns = np.random.default_rng(random_state), _known_categories(pipeline), {}
    for name in (str(c) for c in pipeline.feature_names_in_):
        if name in known:
            typical = np.array(sorted(known[name], key=str) or ["?"], dtype=object)
            extreme = np.array(["__unseen_category__", None], dtype=object)
        else:
            typical = np.array([0.0, 1.0, 2.0, 5.0, 10.0, 30.0, 100.0, 1000.0])
            extreme = np.array([0.0, -1.0, 1e6, 1e9, np.nan])
        typical = X[name].to_numpy() if X is not None and len(X) else typical
        values = rng.choice(typical, n_rows).astype(extreme.dtype)
        outliers = rng.random(n_rows) < 0.25
        values[outliers] = rng.choice(extreme, int(outliers.sum()))
        columns[name] = values
    return pd.DataFrame(columns)


def check_onnx(onnx_model, pipeline, X_probe: pd.DataFrame) -> float:
    """Return ``max |ONNX score - predict_proba score|`` on ``X_probe`` (inf for a NaN score)."""
    check_frame(X_probe, "check_onnx", name="X_probe", columns=pipeline.feature_names_in_)
    session = onnx_model if isinstance(onnx_model, ort.InferenceSession) else _session(onnx_model)
    expected = pipeline.predict_proba(X_probe[list(pipeline.feature_names_in_)])[:, 1]
    difference = np.abs(_run(session, X_probe) - expected)
    return math.inf if np.isnan(difference).any() else float(difference.max(initial=0.0))


@validate_params(run_id=Instance(str), n_rows=Interval(int, 1, None))
def register_for_serving(pipeline, X_sample, *, run_id: str, n_rows: int = 10_000) -> dict:
    """Log run ``run_id``'s ONNX graph if it scores as ``pipeline`` on ``n_rows`` probe rows.

    Otherwise scikit-learn serves, the reason logged: never an error. Returns ``{"backend":
    "onnx" or "sklearn", "max_difference": float or None, "reason": str or None}``.
    """
    try:
        onnx_model = convert_to_onnx(pipeline, X_sample)
        difference = check_onnx(onnx_model, pipeline, probe_rows(pipeline, X_sample, n_rows=n_rows))
        reason = None if difference <= MAX_ONNX_DIFFERENCE else f"scores differ by {difference:.2g}"
    except Exception as err:  # any failure means: serve with scikit-learn, reason recorded
        difference, reason = None, f"ONNX conversion failed: {type(err).__name__}: {err}"[:500]
    if reason is None:
        tracking.log_onnx_model(onnx_model, run_id=run_id, name="onnx")
        LOGGER.info("run %s: ONNX graph logged, max difference %.1e", run_id, difference)
    else:
        LOGGER.warning("run %s will be served by scikit-learn: %s", run_id, reason)
    return dict(backend="sklearn" if reason else "onnx", max_difference=difference, reason=reason)


# ----------------------------------------------------------------------------- the model


class ServingModel:
    """A model version to score: ONNX Runtime if its graph scores as the pipeline, else sklearn.

    ``backend`` says which one scores; ``fallback_reason`` why it is not ONNX.
    """

    def __init__(
        self, pipeline, *, name=None, version="0", alias=None, threshold=None, onnx_model=None
    ):
        if not hasattr(pipeline, "predict_proba") or not hasattr(pipeline, "feature_names_in_"):
            raise TypeError(
                "ServingModel: pipeline must be a classifier fitted on a DataFrame "
                f"(predict_proba, feature_names_in_). Got {type(pipeline).__name__} instead."
            )
        self.pipeline, self.alias, self.threshold = pipeline, alias, resolve_threshold(threshold)
        self.name, self.version = str(name or "unregistered"), str(version)
        self.feature_names = tuple(str(c) for c in pipeline.feature_names_in_)
        self.known_categories = _known_categories(pipeline)
        self.loaded_at = dt.datetime.now(dt.UTC)
        self.backend, self.fallback_reason = "sklearn", "no ONNX model logged with this version"
        self._session = None
        if onnx_model is not None:
            try:
                session = _session(onnx_model)
                difference = check_onnx(session, pipeline, probe_rows(pipeline))
                if difference > MAX_ONNX_DIFFERENCE:
                    raise ValueError(f"scores differ by {difference:.2g} on probe rows")
            except Exception as err:  # any failure means: serve with scikit-learn, reason kept
                self.fallback_reason = f"ONNX model rejected: {type(err).__name__}: {err}"[:500]
                return
            self.backend, self.fallback_reason, self._session = "onnx", None, session
            self._columns = json.loads(session.get_modelmeta().custom_metadata_map["columns"])

    def score_frame(self, X: pd.DataFrame) -> np.ndarray:
        """Return the fraud score of every row of ``X`` (its feature columns, else raise)."""
        check_frame(X, "ServingModel.score_frame", name="X", columns=self.feature_names)
        if len(X) == 0:
            return np.empty(0)
        if self._session is None:
            return self.pipeline.predict_proba(X[list(self.feature_names)])[:, 1]
        return _run(self._session, X, self._columns)

    def score_records(self, records: list[Mapping]) -> np.ndarray:
        """Return the scores of a few records (dicts of features): the online path."""
        missing = sorted({c for r in records for c in self.feature_names if c not in r})
        if missing:
            raise ValueError(f"score_records: feature column(s) {missing} missing")
        if self._session is None:
            frame = pd.DataFrame.from_records(records, columns=list(self.feature_names))
            return self.pipeline.predict_proba(frame)[:, 1]
        return _run(self._session, records, self._columns)

    def unknown_categories(self, record: Mapping) -> list[str]:
        """Name the columns of ``record`` holding a category the encoders never saw."""
        known = self.known_categories.items()
        return [c for c, seen in known if not pd.isna(record.get(c)) and record[c] not in seen]

    def decide(self, scores) -> np.ndarray:
        """Return ``"block"`` where a score reaches the threshold, else ``"approve"``."""
        return np.where(np.asarray(scores) >= self.threshold, DECISIONS[1], DECISIONS[0])


def resolve_threshold(threshold: float | None = None) -> float:
    """Return ``threshold``, else ``DECISION_THRESHOLD`` from the environment, else 0.5."""
    source, text = "threshold", os.environ.get("DECISION_THRESHOLD", "").strip()
    if threshold is None and text:
        source, threshold = "DECISION_THRESHOLD", text
        with contextlib.suppress(ValueError):  # else the check below names the text
            threshold = float(text)
    threshold = 0.5 if threshold is None else threshold
    return float(check_param(threshold, Interval(float, 0, 1), source, "resolve_threshold"))


def load_serving_model(name=MODEL_NAME, alias="champion") -> ServingModel:
    """Load the version ``alias`` of model ``name`` points at (LookupError if none)."""
    tracking.configure_tracking()
    for _ in range(3):  # the alias may move while we load: then load again
        version = tracking.get_model_version(name, alias).version
        pipeline = tracking.load_model(name, alias)
        onnx_model = tracking.load_onnx_bytes(name, alias)
        if tracking.get_model_version(name, alias).version == version:
            break
    model = ServingModel(pipeline, name=name, version=version, alias=alias, onnx_model=onnx_model)
    if model.backend != "onnx":
        LOGGER.warning("%s v%s served by scikit-learn: %s", name, version, model.fallback_reason)
    return model


# ------------------------------------------------------------------------- batch scoring


@validate_params(table=TableName())
def load_features(start, end, *, table: str = "transactions", engine=None) -> pd.DataFrame:
    """Read the transactions with ``start <= tx_datetime < end``, ids, labels and features."""
    start = as_timestamp(start, "start", "load_features")
    end = as_timestamp(end, "end", "load_features")
    rows = read_transactions(start - LONGEST_WINDOW, end, table=table, engine=engine)
    features = compute_model_features(rows)
    keep = (rows["tx_datetime"] >= start).to_numpy()
    ids = rows.loc[keep, ["transaction_id", "tx_datetime", "is_fraud", "label_available_at"]]
    return pd.concat([ids, features.loc[keep]], axis=1).reset_index(drop=True)


def build_predictions(model: ServingModel, features: pd.DataFrame, *, day) -> pd.DataFrame:
    """Score ``features`` into rows of the ``predictions`` table (pure: no I/O)."""
    check_frame(features, "build_predictions", name="features", columns=["transaction_id"])
    scores = model.score_frame(features)
    return pd.DataFrame(
        {
            "tx_date": as_day(day, "day", "build_predictions"),
            "transaction_id": features["transaction_id"].to_numpy(dtype="int64"),
            "score": scores,
            "decision": model.decide(scores),
            "threshold": model.threshold,
            "model_name": model.name,
            "model_version": model.version,
            "scored_at": pd.Timestamp.now(tz="UTC").tz_localize(None),
        }
    )


@dataclass(frozen=True)
class BatchScoringResult:
    """What one :func:`score_day` run did: transactions of the day, skipped, scored, chunks."""

    day: pd.Timestamp
    model_name: str
    model_version: str
    n_transactions: int
    n_already_scored: int
    n_scored: int
    n_chunks: int
    seconds: float


@validate_params(
    model=Instance(ServingModel, none=True),
    chunk_size=Interval(int, 1, None),
    predictions_table=TableName(),
)
def score_day(
    day,
    *,
    model=None,
    model_name=MODEL_NAME,
    alias="champion",
    chunk_size=5_000,
    table="transactions",
    predictions_table="predictions",
    engine=None,
):
    """Score one day of ``table`` into ``predictions_table``, chunk by chunk, resumably.

    Skips rows this model version already scored that day; each chunk is upserted on
    ``(tx_date, transaction_id)``: a re-run finishes a crashed day, leaves a finished one.
    """
    started, day = time.perf_counter(), as_day(day, "day", "score_day")
    engine, model = engine or get_engine(), model or load_serving_model(model_name, alias)
    next_day = day + pd.Timedelta(days=1)
    features = todo = load_features(day, next_day, table=table, engine=engine)
    if table_exists(predictions_table, engine=engine):
        done = read_sql(
            f"select transaction_id from {predictions_table} where tx_date >= :day and "
            "tx_date < :next and model_name = :name and model_version = :version",
            params=dict(day=str(day), next=str(next_day), name=model.name, version=model.version),
            engine=engine,
        )["transaction_id"]
        todo = features[~features["transaction_id"].isin(done)]
    chunks = range(0, len(todo), chunk_size)
    for first in chunks:  # each chunk commits alone: a crash loses at most one chunk
        rows = build_predictions(model, todo.iloc[first : first + chunk_size], day=day)
        write_table(rows, predictions_table, mode="upsert", key_cols=PREDICTION_KEY, engine=engine)
    n_done, seconds = len(features) - len(todo), time.perf_counter() - started
    return BatchScoringResult(
        day, model.name, model.version, len(features), n_done, len(todo), len(chunks), seconds
    )


# ---------------------------------------------------------------------------- monitoring


@dataclass(frozen=True)
class DriftCheck:
    """What :func:`run_drift_check` found: the report, whether it is flagged, and where."""

    report: pd.DataFrame
    flagged: bool
    drifted_features: list
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    run_id: str


@validate_params(reference=Instance(pd.DataFrame))
def run_drift_check(
    reference,
    *,
    model_name=MODEL_NAME,
    window_end=None,
    psi_threshold=0.2,
    p_value_threshold=0.01,
    engine=None,
) -> DriftCheck:
    """Compare the scored day before ``window_end`` (default: the last) with ``reference``.

    Features and score; the report replaces the window's in table ``drift_reports`` and is
    logged as a run of the MLflow experiment ``monitoring``.
    """
    engine, where = engine or get_engine(), "from predictions where model_name = :name"
    latest = None
    if table_exists("predictions", engine=engine):
        query = f"select max(tx_date) as latest {where}"
        latest = read_sql(query, params={"name": model_name}, engine=engine)["latest"].iloc[0]
    if pd.isna(latest):
        raise ValueError(f"run_drift_check: no predictions of {model_name!r}; run score_day first")
    end = pd.Timestamp(latest) + pd.Timedelta(days=1) if window_end is None else window_end
    end = as_day(end, "window_end", "run_drift_check")
    start = end - pd.Timedelta(days=1)
    query = f"select transaction_id, score {where} and tx_date >= :start and tx_date < :end"
    scores = read_sql(
        query, params=dict(name=model_name, start=str(start), end=str(end)), engine=engine
    )
    if scores.empty:
        raise ValueError(f"run_drift_check: no predictions of {model_name!r} on {start:%Y-%m-%d}")
    current = load_features(start, end, engine=engine).merge(scores, on="transaction_id")
    columns = [c for c in (*FEATURE_COLUMNS, "score") if c in reference and c != "tx_weekday"]
    columns = [c for c in columns if reference[c].notna().any() and current[c].notna().any()]
    categorical = [c for c in columns if c in CATEGORICAL_FEATURES]
    thresholds = {"psi_threshold": psi_threshold, "p_value_threshold": p_value_threshold}
    report = drift_report(
        reference[columns], current[columns], categorical_cols=categorical, **thresholds
    )
    drifted = report.loc[report["drifted"]].sort_values("psi", ascending=False)["feature"]
    window = {"model_name": model_name, "window_start": start, "window_end": end}
    record = report.assign(**window, created_at=pd.Timestamp.now(tz="UTC").tz_localize(None))
    write_table(
        record, "drift_reports", mode="replace_partitions", partition_cols=[*window], engine=engine
    )
    plots = importlib.util.find_spec("matplotlib")  # the serving image (its CronJob) has none
    run_id = tracking.log_run(
        "monitoring",
        run_name=f"drift {start:%Y-%m-%d}",
        params={**window, **thresholds},
        metrics={
            "n_drifted": len(drifted),
            "max_psi": float(report["psi"].max()),
            "n_current": len(current),
            "n_reference": len(reference),
        },
        tags={"drift.flagged": str(bool(len(drifted))).lower()},
        figures={"drift/drift_report.png": plot_drift_report(report)} if plots else {},
        tables={"drift/drift_report.json": report},
    )
    return DriftCheck(report, bool(len(drifted)), drifted.tolist(), start, end, run_id)
