"""Score a learner's search and model in a contained process; print numbers only.

The judge runs this file's text with ``python -I -c`` (see
:func:`course.grading.judge.score_model`), with ``production`` and no ``course`` on the
path, an allow-listed environment and its own session: unpickling a learner's object runs
the learner's code. It reads a request (JSON) naming parquet files and the learner's
MLflow store, and prints one JSON line: the search's best candidate cross-validated again
on the rows the judge chose, the champion's scores on the test rows (no labels are given
to it) and the features the champion was fitted on.
"""

import json
import sys


def _cv_score(request: dict) -> dict:
    """Cross-validate the search's best candidate again, on the judge's training rows."""
    import cloudpickle
    import pandas as pd
    from sklearn.base import clone
    from sklearn.model_selection import cross_val_score

    with open(request["search_pickle"], "rb") as stream:
        search = cloudpickle.load(stream)
    rows = pd.read_parquet(request["train"])
    columns = [str(c) for c in search.best_estimator_.feature_names_in_]
    scores = cross_val_score(
        clone(search.best_estimator_),
        rows[columns],
        rows["is_fraud"],
        cv=search.cv,
        scoring=search.scoring,
    )
    return {"cv_score": float(scores.mean())}


def _champion(request: dict) -> dict:
    """Load the champion from the learner's store and score the judge's test rows."""
    import mlflow
    import pandas as pd

    mlflow.set_tracking_uri(request["tracking_uri"])
    model = mlflow.sklearn.load_model(request["model_uri"])
    rows = pd.read_parquet(request["test"])
    columns = [str(c) for c in getattr(model, "feature_names_in_", rows.columns)]
    scores = model.predict_proba(rows[columns])[:, 1]
    return {"scores": [float(s) for s in scores], "features": columns}


def main(path: str) -> None:
    """Answer the request in ``path``; print ``{"cv": ..., "champion": ...}``."""
    with open(path) as stream:
        request = json.load(stream)
    answer = {}
    for key, task in (("cv", _cv_score), ("champion", _champion)):
        if key in request["tasks"]:
            try:
                answer[key] = task(request)
            except Exception as err:  # noqa: BLE001 - the learner's objects may raise anything
                answer[key] = {"error": f"{type(err).__name__}: {err}"[:400]}
    sys.stdout.write("\n" + json.dumps(answer) + "\n")


if __name__ == "__main__":
    main(sys.argv[-1])
