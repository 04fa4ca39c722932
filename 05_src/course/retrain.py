"""Continuous training: retrain on the latest labelled window, gate, promote or keep, roll back.

:func:`continuous_training` (a Prefect flow, run on a schedule or when the drift monitor
fires) reads the transactions whose labels are known, trains a candidate with the
champion's hyper-parameters on the older days, scores candidate and champion on the same
most recent days and promotes the candidate only if it wins by more than a margin; the
champion it replaces keeps the alias ``previous``, which :func:`rollback` restores.

Every decision is recorded twice: tags on the MLflow model version (and its run) it is
about, and a row of the database table ``training_decisions``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import pandas as pd
from mlflow import MlflowClient
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from sklearn.base import clone
from sklearn.metrics import average_precision_score
from threadpoolctl import threadpool_limits

from production._validation import (
    Instance,
    Interval,
    InvalidParameterError,
    OneOf,
    TableName,
    as_timestamp,
    validate_params,
)
from production.config import RANDOM_STATE, get_settings
from production.db import read_sql, table_exists, write_table
from production.feature_store import LONGEST_WINDOW, read_transactions
from production.features import compute_model_features
from production.serving import MODEL_NAME, register_for_serving
from production.tracking import (
    configure_tracking,
    get_model_version,
    load_model,
    log_run,
    log_training_data,
    register_model,
    set_alias,
)

__all__ = [
    "EXPERIMENT",
    "DECISIONS_TABLE",
    "TRIGGERS",
    "COLUMNS",
    "TAGS",
    "RetrainDecision",
    "Window",
    "labelled_window",
    "split_window",
    "gate",
    "move_aliases",
    "decision_row",
    "continuous_training",
    "rollback",
]

EXPERIMENT = "continuous-training"
DECISIONS_TABLE = "training_decisions"
METRIC = "average_precision"
TRIGGERS = ("schedule", "drift", "manual")
_SQL_TIME = "%Y-%m-%d %H:%M:%S.%f"  # as pandas writes times to SQLite; PostgreSQL parses it
#: The columns of table ``training_decisions``, and the MLflow tags of a decision.
COLUMNS = ("decided_at", "trigger", "as_of", "model_name", "candidate_version")
COLUMNS += ("champion_version", "metric", "candidate_score", "champion_score", "decision", "reason")
TAGS = ("decision", "reason", "champion_version", "candidate_score", "champion_score")
TAGS += ("trigger", "as_of")


def _transient(task, task_run, state) -> bool:
    """Retry only what may pass on a retry: an unreachable database or tracking server."""
    return isinstance(state.result(raise_on_failure=False), ConnectionError | TimeoutError)


#: Options of the tasks that talk to the database or MLflow (never cached: they read news).
IO = dict(retries=2, retry_delay_seconds=2, retry_condition_fn=_transient, cache_policy=NO_CACHE)


@dataclass(frozen=True)
class RetrainDecision:
    """What the gate (or a rollback) decided, about which versions, on which scores, and why.

    ``decision`` is ``"promoted"``, ``"kept"`` or ``"rolled_back"``; ``candidate_version``
    is the version proposed as champion, ``champion_version`` the champion at the time.
    """

    decision: str
    reason: str
    metric: str
    candidate_version: str | None
    champion_version: str | None
    candidate_score: float | None
    champion_score: float | None
    trigger: str
    as_of: pd.Timestamp


@dataclass(frozen=True)
class Window:
    """The labelled window: train on ``[train_start, eval_start)``, evaluate ``[eval_start, end]``."""

    as_of: pd.Timestamp
    train_start: pd.Timestamp
    eval_start: pd.Timestamp
    end: pd.Timestamp
    table: str = "transactions"

    def source(self) -> str:
        """Where the training rows come from, as a URI for the dataset's lineage."""
        t = "%Y-%m-%dT%H:%M:%S"
        return (
            f"db://{self.table}?start={self.train_start:{t}}&end={self.eval_start:{t}}"
            f"&labels_as_of={self.as_of:{t}}"
        )


def labelled_window(as_of, labelled_until, *, train_days: int, eval_days: int) -> Window:
    """Return the window ending at ``labelled_until``: ``eval_days`` after ``train_days``."""
    end = pd.Timestamp(labelled_until)
    eval_start = end - pd.Timedelta(days=eval_days)
    return Window(pd.Timestamp(as_of), eval_start - pd.Timedelta(days=train_days), eval_start, end)


def split_window(transactions: pd.DataFrame, features: pd.DataFrame, window: Window) -> dict:
    """Return the labelled training and evaluation rows of ``window`` (pure: no I/O).

    A row is labelled when ``label_available_at <= window.as_of``. Returns a dict of
    ``X_train``, ``y_train``, ``X_eval``, ``y_eval`` and ``train_rows`` (the transactions).
    """
    when, labelled = transactions["tx_datetime"], transactions["label_available_at"] <= window.as_of
    train = (labelled & (when >= window.train_start) & (when < window.eval_start)).to_numpy()
    evaluate = (labelled & (when >= window.eval_start) & (when <= window.end)).to_numpy()
    y = transactions["is_fraud"].astype("int64")
    for name, rows, days in (
        ("training", train, "train_days"),
        ("evaluation", evaluate, "eval_days"),
    ):
        if y[rows].nunique() < 2:
            raise ValueError(
                f"continuous_training: the {name} window ({int(rows.sum())} labelled rows) "
                f"needs both fraud and legitimate transactions; widen {days}."
            )
    return {
        "X_train": features[train],
        "y_train": y[train],
        "X_eval": features[evaluate],
        "y_eval": y[evaluate],
        "train_rows": transactions[train].reset_index(drop=True),
    }


def gate(
    candidate_score: float, champion_score: float, min_improvement: float, metric: str = METRIC
) -> tuple:
    """Return ``("promoted" or "kept", reason)``: promoted when the gain beats the margin."""
    gain = candidate_score - champion_score
    verdict = "promoted" if gain > min_improvement else "kept"
    more = "more" if verdict == "promoted" else "not more"
    reason = (
        f"{metric} {candidate_score:.4f} vs champion {champion_score:.4f}: gain {gain:+.4f}, "
        f"{more} than the margin {min_improvement:g}"
    )
    return verdict, reason


@task(name="read-labelled-window", **IO)
def read_labelled_window(as_of, train_days: int, eval_days: int, table: str = "transactions"):
    """Read the transactions of the latest labelled window and the history its features need.

    Legitimate labels arrive after a fixed delay (no chargeback by then), fraud labels
    earlier: past the last labelled legitimate transaction only frauds are known, so the
    window ends there. Returns ``(window, transactions, features)``.
    """
    if not table_exists(table):
        raise ValueError(f"continuous_training: no table {table!r}; load transactions first")
    if as_of is None:
        as_of = read_sql(f"select max(tx_datetime) as t from {table}")["t"].iloc[0]
    as_of = as_timestamp(as_of, "as_of", "continuous_training")
    until = read_sql(
        f"select max(tx_datetime) as t from {table} "
        "where is_fraud = 0 and label_available_at <= :as_of",
        params={"as_of": f"{as_of:{_SQL_TIME}}"},
    )["t"].iloc[0]
    if pd.isna(until):
        raise ValueError(f"continuous_training: no labelled transactions by as_of={as_of}")
    window = labelled_window(as_of, until, train_days=train_days, eval_days=eval_days)
    window = replace(window, table=table)
    end = window.end + pd.Timedelta(seconds=1)  # read_transactions: end excluded, to the second
    transactions = read_transactions(window.train_start - LONGEST_WINDOW, end, table=table)
    return window, transactions, compute_model_features(transactions)


@task(name="load-champion", **IO)
def load_champion(model_name: str):
    """Return the champion pipeline and its version."""
    try:
        return load_model(model_name, "champion"), get_model_version(model_name, "champion")
    except LookupError as err:
        raise LookupError(
            f"continuous_training: {err}; register a champion first (e.g. 'production demo')"
        ) from None


@task(name="train-and-evaluate", cache_policy=NO_CACHE)
def train_and_evaluate(champion, data: dict, random_state: int):
    """Fit a clone of the champion (same hyper-parameters) and score both on the eval rows."""
    candidate = clone(champion)
    seeds = [k for k in candidate.get_params() if k.split("__")[-1] == "random_state"]
    candidate.set_params(**dict.fromkeys(seeds, random_state))
    with threadpool_limits(1):  # small data: one thread is faster than a busy team
        candidate.fit(data["X_train"], data["y_train"])
        scores = [
            average_precision_score(data["y_eval"], model.predict_proba(data["X_eval"])[:, 1])
            for model in (candidate, champion)
        ]
    return candidate, *map(float, scores)


@task(name="log-and-register-candidate", **IO)
def log_candidate(candidate, data: dict, window: Window, scores, context: dict) -> tuple:
    """Log the candidate run with its training data, ONNX graph, and register it."""
    run_id = log_run(
        EXPERIMENT,
        run_name=f"candidate {window.as_of:%Y-%m-%d %H:%M}",
        params={
            "train_start": window.train_start,
            "eval_start": window.eval_start,
            "labelled_until": window.end,
            "n_train": len(data["y_train"]),
            "n_eval": len(data["y_eval"]),
            **{k: context[k] for k in ("train_days", "eval_days", "random_state")},
            "champion_version": context["champion_version"],
        },
        metrics={METRIC: scores[0], f"champion_{METRIC}": scores[1]},
        tags={"trigger": context["trigger"], "as_of": window.as_of.isoformat()},
        model=candidate,
        input_example=data["X_train"].head(5),
    )
    database = get_settings().describe()["DATABASE_URL"][0]  # password masked
    log_training_data(
        data["train_rows"], source=window.source(), run_id=run_id, tags={"database": database}
    )
    register_for_serving(candidate, data["X_train"], run_id=run_id)
    return register_model(run_id, context["model_name"], alias="challenger"), run_id


def decision_row(decision: RetrainDecision, model_name: str) -> pd.DataFrame:
    """Return the decision as a one-row frame of the ``training_decisions`` columns (pure)."""
    row = asdict(decision) | {"model_name": model_name}
    row["decided_at"] = pd.Timestamp.now(tz="UTC").tz_localize(None)
    frame = pd.DataFrame([row], columns=list(COLUMNS))
    return frame.astype({"candidate_score": "float64", "champion_score": "float64"})


def record(decision: RetrainDecision, model_name: str, version: str, run_id: str | None) -> None:
    """Tag ``version`` (and its run) with the decision and append it to ``training_decisions``."""
    configure_tracking()
    client = MlflowClient()
    for key in TAGS:
        value = getattr(decision, key)
        value = value.isoformat() if key == "as_of" else str(value)
        client.set_model_version_tag(model_name, version, key, value)
        if run_id:
            client.set_tag(run_id, key, value)
    write_table(decision_row(decision, model_name), DECISIONS_TABLE, mode="append")


record_task = task(name="record-decision", **IO)(record)


def move_aliases(verdict: str, model_name: str, candidate: str, champion: str | None) -> None:
    """On promotion: the champion (if any) becomes ``previous``, the candidate ``champion``."""
    if verdict == "promoted":
        if champion is not None:
            set_alias(model_name, "previous", champion)
        set_alias(model_name, "champion", candidate)


apply_decision = task(name="apply-decision", **IO)(move_aliases)


@flow(name="continuous-training", validate_parameters=False)
@validate_params(
    trigger=OneOf(*TRIGGERS),
    model_name=Instance(str),
    train_days=Interval(int, 1, None),
    eval_days=Interval(int, 1, None),
    min_improvement=Interval(float, 0, 1),
    random_state=Interval(int, 0, None),
    table=TableName(),
)
def continuous_training(
    as_of=None,
    *,
    trigger: str = "schedule",
    model_name: str = MODEL_NAME,
    train_days: int = 21,
    eval_days: int = 3,
    min_improvement: float = 0.0,
    random_state: int = RANDOM_STATE,
    table: str = "transactions",
) -> RetrainDecision:
    """Retrain the champion on the latest labelled window; promote the candidate if it wins.

    Parameters
    ----------
    as_of : date, datetime or str, optional
        What is known: transactions up to it and the labels available by then. Default:
        the latest transaction's time.
    trigger : {"schedule", "drift", "manual"}, default="schedule"
        Why the flow runs; recorded with the decision.
    model_name : str, default=MODEL_NAME
        The registered model whose ``champion`` is retrained and challenged.
    train_days, eval_days : int, default=21, 3
        Days of labelled data to train on, then to evaluate both models on (the latest).
    min_improvement : float, default=0.0
        Average-precision gain in [0, 1] the candidate must exceed to be promoted.
    random_state : int, default=RANDOM_STATE
        Seed of the candidate's estimators.
    table : str, default="transactions"
        The database table of transactions (with ``is_fraud`` and ``label_available_at``).

    Returns
    -------
    RetrainDecision
        Also recorded as tags on the candidate's model version and run, and in the table
        ``training_decisions``.

    Raises
    ------
    InvalidParameterError
        For a bad parameter, named.
    LookupError
        If the model has no champion.
    ValueError
        If there are no labelled transactions, or a window lacks one of the classes.
    """
    if as_of is not None:
        as_of = as_timestamp(as_of, "as_of", "continuous_training")
    window, transactions, features = read_labelled_window(as_of, train_days, eval_days, table)
    champion, champion_version = load_champion(model_name)
    data = split_window(transactions, features, window)
    candidate, candidate_ap, champion_ap = train_and_evaluate(champion, data, random_state)
    context = dict(
        model_name=model_name, trigger=trigger, champion_version=str(champion_version),
        train_days=train_days, eval_days=eval_days, random_state=random_state,
    )  # fmt: skip
    version, run_id = log_candidate(candidate, data, window, (candidate_ap, champion_ap), context)
    verdict, reason = gate(candidate_ap, champion_ap, min_improvement)
    apply_decision(verdict, model_name, version, str(champion_version))
    decision = RetrainDecision(
        verdict, reason, METRIC, version, str(champion_version), candidate_ap, champion_ap,
        trigger, window.as_of,
    )  # fmt: skip
    record_task(decision, model_name, version, run_id)
    get_run_logger().info("v%s %s: %s", version, verdict, reason)
    return decision


@validate_params(model_name=Instance(str), reason=Instance(str))
def rollback(model_name: str = MODEL_NAME, *, reason: str) -> RetrainDecision:
    """Move ``champion`` back to the version aliased ``previous``; record why.

    Parameters
    ----------
    model_name : str, default=MODEL_NAME
        The registered model.
    reason : str
        Why (non-empty); recorded with the decision.

    Returns
    -------
    RetrainDecision
        ``"rolled_back"``, ``candidate_version`` the restored version, ``champion_version``
        the demoted one, whose model version (and run) get the decision's tags; a row is
        appended to ``training_decisions``. The alias ``previous`` is removed.

    Raises
    ------
    InvalidParameterError
        If ``reason`` is empty.
    LookupError
        If no version is aliased ``previous`` (or ``champion``).
    """
    if not reason.strip():
        raise InvalidParameterError("The 'reason' parameter of rollback must be a non-empty str.")
    try:
        previous = get_model_version(model_name, "previous")
    except LookupError as err:
        raise LookupError(
            f"rollback: {err}: nothing to roll back to (continuous_training sets 'previous' "
            "when it promotes a candidate)"
        ) from None
    champion = get_model_version(model_name, "champion")
    set_alias(model_name, "champion", previous)
    MlflowClient().delete_registered_model_alias(model_name, "previous")
    decision = RetrainDecision(
        "rolled_back", f"champion v{champion} -> v{previous}: {reason}", METRIC,
        str(previous), str(champion), None, None, "manual",
        pd.Timestamp.now(tz="UTC").tz_localize(None),
    )  # fmt: skip
    record(decision, model_name, str(champion), champion.run_id)
    return decision
