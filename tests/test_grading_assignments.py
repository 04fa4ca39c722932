"""The real assignments, graded end to end as CI grades a pull request.

Each committed template is graded unsolved (0 points, a message per criterion), then with
its blanks replaced by a reference solution (full marks). This runs the notebook in a
fresh kernel through :func:`course.grading.grade_notebook`, so it catches a template,
rubric and checks that drifted apart (~45 s for both assignments).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from course.grading import grade_notebook, load_rubric

ROOT = Path(__file__).resolve().parents[1]
ASSIGNMENTS = ROOT / "02_activities" / "assignments"

# the code that replaces each "# YOUR CODE HERE" cell, keyed by the name the cell defines
SOLUTIONS = {
    "01_training_data": {
        "sample_df": """
from production.sampling import stratified_sample

sample_df = stratified_sample(
    transactions, ["is_fraud", "channel"], frac=0.1, random_state=2026
)
""",
        "n_labels_known": """
known = (transactions["tx_datetime"] < CUTOFF) & (transactions["label_available_at"] <= CUTOFF)
n_labels_known = int(known.sum())
""",
        "train_df": """
from production.sampling import time_split

split = time_split(transactions, cutoff=CUTOFF, gap_days=LABEL_DELAY_DAYS, test_days=TEST_DAYS)
train_df, test_df = split.train, split.test
""",
        "nightly_terminal_frauds": """
from course.grading_checks.training_data import reference_nightly_terminal_frauds


def nightly_terminal_frauds(transactions):
    return reference_nightly_terminal_frauds(transactions)
""",
    },
    "02_model_development": {
        "search": """
from sklearn.ensemble import HistGradientBoostingClassifier

from production.features import build_pipeline, build_preprocessor
from production.sampling import simple_random_sample
from production.tuning import run_search

sample = simple_random_sample(train, 12_000, random_state=RANDOM_STATE)
sample = sample.sort_values("tx_datetime")
pipeline = build_pipeline(
    build_preprocessor(NUMERIC, CATEGORICAL, scale=False),
    HistGradientBoostingClassifier(random_state=RANDOM_STATE),
)
search = run_search(
    pipeline,
    {"model__learning_rate": [0.05, 0.1], "model__max_leaf_nodes": [15, 31]},
    sample[["tx_datetime", *NUMERIC, *CATEGORICAL]],
    sample["is_fraud"],
    cv=3,
    time_col="tx_datetime",
    experiment=EXPERIMENT,
    random_state=RANDOM_STATE,
)
""",
        "model_version": """
from production.tracking import get_model_version, promote_model, register_best_model

register_best_model(search.parent_run_id, MODEL_NAME)
promote_model(MODEL_NAME, metric="cv_average_precision")
model_version = get_model_version(MODEL_NAME, "champion")
""",
        "shap_values": """
from production.explain import compute_shap_values

shap_values = compute_shap_values(champion, test, max_rows=300, random_state=RANDOM_STATE)
importance = pd.Series(abs(shap_values.values).mean(axis=0), index=shap_values.feature_names)
top_feature = importance.idxmax()
""",
        "model_card": """
model_card = {
    "model_name": MODEL_NAME,
    "version": model_version,
    "intended_use": "Rank card transactions by fraud risk for the analysts' review queue.",
    "training_data": "12,000 transactions sampled up to 5 days before the 2026-02-12 cutoff.",
    "metrics": {
        "cv_average_precision": search.best_score_,
        "test_average_precision": average_precision_score(test["is_fraud"], test_score),
    },
    "top_features": list(importance.nlargest(3).index),
    "limitations": "Eight weeks of simulated data: fraud patterns it never saw go unnoticed.",
    "monitoring": "Weekly PSI of amount and of the score; average precision once labelled.",
}
""",
    },
}


def _blank_name(source: str) -> str:
    """Return the graded name a '# YOUR CODE HERE' cell defines."""
    for line in source.splitlines():
        if line.startswith("def "):
            return line[4:].partition("(")[0]
        if "= None  # TODO" in line:
            return line.partition(" ")[0]
    raise AssertionError(f"no graded name in the cell:\n{source}")


def _copy_assignment(tmp_path: Path, topic: str, solved: bool) -> Path:
    """Copy the template and rubric of ``topic`` to tmp_path, blanks filled if ``solved``."""
    template = ASSIGNMENTS / f"{topic}_activity.ipynb"
    shutil.copy(ASSIGNMENTS / f"{topic}_rubric.yml", tmp_path)
    notebook = json.loads(template.read_text(encoding="utf-8"))
    filled = set()
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if solved and cell["cell_type"] == "code" and source.startswith("# YOUR CODE HERE"):
            name = _blank_name(source)
            cell["source"] = SOLUTIONS[topic][name].strip() + "\n"
            filled.add(name)
    if solved:
        assert filled == set(SOLUTIONS[topic]), f"blanks changed: {sorted(filled)}"
    path = tmp_path / template.name
    path.write_text(json.dumps(notebook), encoding="utf-8")
    return path


@pytest.mark.parametrize("topic", sorted(SOLUTIONS))
def test_unsolved_template_scores_zero(tmp_path, topic):
    result = grade_notebook(_copy_assignment(tmp_path, topic, solved=False))
    rubric = load_rubric(ASSIGNMENTS / f"{topic}_rubric.yml")
    assert result.status == "ok", result
    assert result.score == 0 and result.max_score == rubric.max_score
    assert len(result.criteria) == len(rubric.criteria)
    assert all(not c.passed and c.message for c in result.criteria)


@pytest.mark.parametrize("topic", sorted(SOLUTIONS))
def test_reference_solution_scores_full_marks(tmp_path, topic):
    result = grade_notebook(_copy_assignment(tmp_path, topic, solved=True))
    failed = {c.id: c.message for c in result.criteria if not c.passed}
    assert result.status == "ok" and not failed, failed
    assert (
        result.score
        == result.max_score
        == load_rubric(ASSIGNMENTS / f"{topic}_rubric.yml").max_score
    )
