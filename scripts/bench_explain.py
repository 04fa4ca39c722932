"""Benchmark production.explain on synthetic card transactions.

Prints:
* seconds to compute SHAP values of 1,000 rows for a HistGradientBoostingClassifier
  pipeline fitted on ~20k rows x 10 mixed features (goal: <= 2 s);
* peak traced memory (tracemalloc) and seconds of scikit-learn's partial dependence on a
  2,000-row sample of 200k rows (the sampling lab 06 does before PartialDependenceDisplay).

Run: /work/main/.venv/bin/python scripts/bench_explain.py
"""

import time
import tracemalloc

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.inspection import partial_dependence
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from production.config import RANDOM_STATE
from production.explain import compute_shap_values

NUMERIC = ["amount", "hour", "customer_age", "account_age_days", "txn_last_24h", "distance_km"]
CATEGORICAL = ["channel", "country", "merchant_category", "card_type"]


def make_transactions(n_rows, random_state):
    """Synthetic fraud-like transactions: 6 numeric and 4 categorical columns, ~3% fraud."""
    rng = np.random.default_rng(random_state)
    X = pd.DataFrame(
        {
            "amount": rng.lognormal(3.5, 1.2, n_rows),
            "hour": rng.integers(0, 24, n_rows).astype(float),
            "customer_age": rng.normal(45, 15, n_rows).clip(18, 95),
            "account_age_days": rng.exponential(900, n_rows),
            "txn_last_24h": rng.poisson(2, n_rows).astype(float),
            "distance_km": rng.exponential(20, n_rows),
            "channel": rng.choice(["web", "pos", "atm", "phone"], n_rows, p=[0.4, 0.4, 0.15, 0.05]),
            "country": rng.choice(
                ["CA", "US", "MX", "FR", "GB", "XX"], n_rows, p=[0.5, 0.25, 0.1, 0.06, 0.06, 0.03]
            ),
            "merchant_category": rng.choice([f"mcc_{i:02d}" for i in range(30)], n_rows),
            "card_type": rng.choice(["visa", "mc", "amex"], n_rows, p=[0.55, 0.35, 0.1]),
        }
    )
    logit = (
        -6.5
        + 0.6 * np.log1p(X["amount"])
        + 1.5 * (X["channel"] == "web")
        + 1.2 * (X["country"] == "XX")
        + 0.25 * X["txn_last_24h"]
        + 0.01 * X["distance_km"]
        - 0.0005 * X["account_age_days"]
    )
    y = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(int).to_numpy()
    X.loc[rng.random(n_rows) < 0.03, "amount"] = np.nan
    return X, y


def make_pipeline():
    """The course pipeline: "preprocess" (num impute->scale, cat impute->one-hot) + "model"."""
    num = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    cat = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="infrequent_if_exist", sparse_output=False)),
        ]
    )
    preprocess = ColumnTransformer([("num", num, NUMERIC), ("cat", cat, CATEGORICAL)])
    model = HistGradientBoostingClassifier(early_stopping=False, random_state=RANDOM_STATE)
    return Pipeline([("preprocess", preprocess), ("model", model)])


def main():
    X, y = make_transactions(20_000, RANDOM_STATE)
    pipeline = make_pipeline().fit(X, y)
    n_columns = pipeline[:-1].transform(X.head()).shape[1]
    print(
        f"data: {len(X):,} rows x {X.shape[1]} columns -> {n_columns} model columns, "
        f"fraud rate {y.mean():.3f}; model: HistGradientBoostingClassifier "
        f"({pipeline[-1].n_iter_} iterations)"
    )

    timings = []
    for _ in range(3):
        start = time.perf_counter()
        explanation = compute_shap_values(pipeline, X, max_rows=1000)
        timings.append(time.perf_counter() - start)
    print(
        f"compute_shap_values, 1,000 of 20,000 rows: first {timings[0]:.2f} s, "
        f"best {min(timings):.2f} s (goal <= 2 s); shape {explanation.shape}"
    )

    X_big, _ = make_transactions(200_000, RANDOM_STATE + 1)
    size_mb = X_big.memory_usage(deep=True).sum() / 1e6

    def sampled_partial_dependence():
        rows = X_big.sample(2000, random_state=RANDOM_STATE)
        grid = {"percentiles": (0.05, 0.95), "grid_resolution": 20, "kind": "both"}
        return partial_dependence(pipeline, rows, ["amount"], **grid)

    start = time.perf_counter()
    sampled_partial_dependence()
    seconds = time.perf_counter() - start
    tracemalloc.start()
    sampled_partial_dependence()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        f"partial_dependence on 2,000 sampled of {len(X_big):,} rows (X: {size_mb:.0f} MB; "
        f"grid 20, kind='both'): {seconds:.2f} s, peak traced memory {peak / 1e6:.1f} MB"
    )


if __name__ == "__main__":
    main()
