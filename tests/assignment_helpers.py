"""Submissions of the assignments, written independently of the checks, for the grader's tests.

Each submission is the template's percent-format source with its blanks replaced: a
mapping ``{blank line of the template: replacement code}``. :func:`build_course` writes a
repository-like folder (``.git``, the rubric, the notebook) in which to grade one.
"""

import shutil
import subprocess
from pathlib import Path

import jupytext
import nbformat

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "02_activities" / "assignments"

A1_BLANKS = {
    "sample": "sample_df = None  # TODO: 10 % of every (is_fraud, channel) stratum of `transactions`",
    "known": "n_labels_known = None  # TODO: an int",
    "test": "test_df = None  # TODO: every transaction of [CUTOFF, CUTOFF + TEST_DAYS days)",
    "train": "train_df = None  # TODO: before CUTOFF - GAP_DAYS[channel], label known at the cutoff",
    "feature": '    raise NotImplementedError("TODO: one count per transaction, indexed like `transactions`")',
}

#: A straightforward solution: groupby-sample, boolean masks, a loop over terminals.
A1_SOLUTION = {
    "sample": (
        "sample_df = transactions.groupby(['is_fraud', 'channel'], group_keys=False).sample("
        "frac=0.1, random_state=2026)"
    ),
    "known": (
        "n_labels_known = int(((transactions['tx_datetime'] < CUTOFF) & "
        "(transactions['label_available_at'] <= CUTOFF)).sum())"
    ),
    "test": (
        "test_df = transactions[(transactions['tx_datetime'] >= CUTOFF) & "
        "(transactions['tx_datetime'] < CUTOFF + pd.Timedelta(days=TEST_DAYS))]"
    ),
    "train": (
        "gap = pd.to_timedelta(transactions['channel'].map(GAP_DAYS), unit='D')\n"
        "train_df = transactions[(transactions['tx_datetime'] < CUTOFF - gap) & "
        "(transactions['label_available_at'] <= CUTOFF)]"
    ),
    "feature": """\
    day = transactions["tx_datetime"].dt.normalize()
    counts = pd.Series(0, index=transactions.index)
    frauds = transactions[transactions["is_fraud"] == 1]
    for terminal, rows in transactions.groupby("terminal_id"):
        mine = frauds[frauds["terminal_id"] == terminal]
        d = day[rows.index].to_numpy()[:, None]
        t = mine["tx_datetime"].to_numpy()[None, :]
        known = mine["label_available_at"].to_numpy()[None, :] <= d
        ok = (t >= d - np.timedelta64(14, "D")) & (t < d) & known
        counts[rows.index] = ok.sum(axis=1)
    return counts""",
}

#: A different but correct formulation: category dtype, np.int64 count, query strings,
#: a merge-based feature returning float counts.
A1_ALTERNATIVE = {
    "sample": """\
parts = []
for _, group in transactions.astype({"channel": "category"}).groupby(
    ["is_fraud", "channel"], observed=True
):
    parts.append(group.sample(n=int(round(len(group) * 0.1)), random_state=2026))
sample_df = pd.concat(parts).sort_index()""",
    "known": (
        "n_labels_known = np.int64(len(transactions.query("
        "'tx_datetime < @CUTOFF and label_available_at <= @CUTOFF')))"
    ),
    "test": (
        "end = CUTOFF + pd.Timedelta(days=TEST_DAYS)\n"
        "test_df = transactions.loc[transactions['tx_datetime'].between(CUTOFF, end, "
        "inclusive='left')].copy()"
    ),
    "train": """\
limit = CUTOFF - transactions["channel"].map(lambda c: pd.Timedelta(days=GAP_DAYS[c]))
train_df = transactions[
    transactions["tx_datetime"].lt(limit) & transactions["label_available_at"].le(CUTOFF)
].reset_index(drop=True)""",
    "feature": """\
    rows = transactions.assign(day=transactions["tx_datetime"].dt.normalize())
    frauds = rows.loc[rows["is_fraud"] == 1, ["terminal_id", "tx_datetime", "label_available_at"]]
    keys = rows[["terminal_id", "day"]].drop_duplicates()
    pairs = keys.merge(frauds, on="terminal_id")
    ok = (
        (pairs["tx_datetime"] >= pairs["day"] - pd.Timedelta(days=14))
        & (pairs["tx_datetime"] < pairs["day"])
        & (pairs["label_available_at"] <= pairs["day"])
    )
    counted = pairs[ok].groupby(["terminal_id", "day"]).size().rename("n")
    merged = rows[["terminal_id", "day"]].merge(
        counted.reset_index(), on=["terminal_id", "day"], how="left"
    )
    return pd.Series(merged["n"].fillna(0).to_numpy(dtype=float), index=transactions.index)""",
}

#: The boundary mistakes of issue 10: <= at the cutoff, an open-ended test period,
#: one gap for every channel, labels known strictly before the cutoff.
A1_BOUNDARY_BUGS = {
    **A1_SOLUTION,
    "known": (
        "n_labels_known = int(((transactions['tx_datetime'] <= CUTOFF) & "
        "(transactions['label_available_at'] < CUTOFF)).sum())"
    ),
    "test": "test_df = transactions[transactions['tx_datetime'] >= CUTOFF]",
    "train": (
        "train_df = transactions[(transactions['tx_datetime'] <= CUTOFF - pd.Timedelta(days=7)) "
        "& (transactions['label_available_at'] < CUTOFF)]"
    ),
}


def submission(template: Path, blanks: dict, answers: dict) -> str:
    """Return the template's source with the blanks named in ``answers`` filled."""
    text = template.read_text()
    for key, code in answers.items():
        assert blanks[key] in text, f"blank {key!r} not in {template.name}"
        text = text.replace(blanks[key], code)
    return text


def build_course(folder: Path, assignment: str, source: str, *, git: bool = False) -> Path:
    """Write a repository-like folder holding one assignment; return its notebook."""
    target = folder / "02_activities" / "assignments"
    target.mkdir(parents=True, exist_ok=True)
    for suffix in ("_rubric.yml", "_rubric.md"):
        shutil.copy(ASSIGNMENTS / f"{assignment}{suffix}", target / f"{assignment}{suffix}")
    notebook = target / f"{assignment}_activity.ipynb"
    nbformat.write(jupytext.reads(source, fmt="py:percent"), notebook)
    if git:
        subprocess.run(["git", "init", "-q", str(folder)], check=True)
    else:
        (folder / ".git").mkdir(exist_ok=True)
    return notebook


A2_BLANKS = {
    "search": "search = None  # TODO: a fitted GridSearchCV / RandomizedSearchCV on train[FEATURES]",
    "run": "parent_run_id = None  # TODO: the parent run's id, a str",
    "info": "model_info = None  # TODO: what mlflow.sklearn.log_model returned",
    "version": "model_version = None  # TODO: the registered version the alias 'champion' points at",
    "card": "model_card = None  # TODO: a dict with the fields above",
}

#: A grid search of a one-hot pipeline, logged with start_run blocks.
A2_SOLUTION = {
    "search": """\
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

pre = ColumnTransformer(
    [("cat", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL)], remainder="passthrough"
)
model = HistGradientBoostingClassifier(max_iter=60, random_state=RANDOM_STATE)
pipe = Pipeline([("pre", pre), ("model", model)])
grid = {"model__learning_rate": [0.05, 0.1], "model__max_leaf_nodes": [15, 31]}
search = GridSearchCV(pipe, grid, cv=TimeSeriesSplit(n_splits=3), scoring="average_precision")
search.fit(train[FEATURES], train["is_fraud"])""",
    "run": """\
with mlflow.start_run(run_name="grid") as parent:
    for params, score in zip(search.cv_results_["params"], search.cv_results_["mean_test_score"]):
        with mlflow.start_run(nested=True):
            mlflow.log_params(params)
            mlflow.log_metric("cv_average_precision", score)
    mlflow.log_metric("best_cv_average_precision", search.best_score_)
    logged = mlflow.sklearn.log_model(
        search.best_estimator_, name="model", serialization_format="cloudpickle",
        pip_requirements=["scikit-learn"],
    )
parent_run_id = parent.info.run_id""",
    "info": "model_info = logged",
    "version": """\
registered = mlflow.register_model(model_info.model_uri, MODEL_NAME)
MlflowClient().set_registered_model_alias(MODEL_NAME, "champion", registered.version)
model_version = registered.version""",
    "card": """\
model_card = {
    "model_name": MODEL_NAME,
    "version": model_version,
    "intended_use": "Rank card transactions by fraud risk for the review team; not for automatic blocking.",
    "training_data": "Simulated transactions before the cutoff minus five days, labels known at the cutoff.",
    "metrics": {"cv_average_precision": float(search.best_score_),
                "test_average_precision": float(test_average_precision)},
    "top_features": ["amount", "amount_ratio", "terminal_tx_7d"],
    "limitations": "Trained on a few weeks of simulated data; new fraud patterns are not covered.",
    "monitoring": "Watch the score distribution and the precision once labels arrive; retrain monthly.",
}""",
}

#: Another honest formulation: RandomizedSearchCV, ordinal encoding, an Index of features,
#: a numpy version number.
A2_ALTERNATIVE = {
    **A2_SOLUTION,
    "search": """\
from scipy.stats import loguniform
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import RandomizedSearchCV, TimeSeriesSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OrdinalEncoder

encode = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
pipe = make_pipeline(
    make_column_transformer((encode, CATEGORICAL), remainder="passthrough"),
    HistGradientBoostingClassifier(max_iter=60, random_state=RANDOM_STATE),
)
space = {"histgradientboostingclassifier__learning_rate": loguniform(0.03, 0.3)}
search = RandomizedSearchCV(pipe, space, n_iter=4, cv=TimeSeriesSplit(n_splits=3),
                            scoring="average_precision", random_state=RANDOM_STATE)
search.fit(train[FEATURES], train["is_fraud"])""",
    "card": A2_SOLUTION["card"].replace(
        '["amount", "amount_ratio", "terminal_tx_7d"]',
        'pd.Index(["amount", "hour", "amount_ratio"])',
    ),
}

#: The leak of issue 10: the search is fitted on train + test rows.
A2_LEAKY_SEARCH = {
    **A2_SOLUTION,
    "search": A2_SOLUTION["search"].replace(
        'search.fit(train[FEATURES], train["is_fraud"])',
        'both = pd.concat([train, test])\nsearch.fit(both[FEATURES], both["is_fraud"])',
    ),
}
