"""Behavioural tests of the fraud model (after Ribeiro et al.'s CheckList), as lab 08 writes them.

A small pipeline is trained on simulated data; each test states what any good fraud model must
do: ignore an irrelevant change (invariance), not look safer when the risk rises (directional
expectation), and catch the obvious case (minimum functionality). A retrained model that breaks
a behaviour fails CI like any other regression.
"""

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from production.config import RANDOM_STATE
from production.features import (
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    build_pipeline,
    build_preprocessor,
    compute_model_features,
)
from production.simulate import simulate


@pytest.fixture(scope="module")
def fitted():
    """A pipeline trained on 3.5 weeks and 500 held-out transactions of the week after."""
    transactions = simulate(
        n_customers=250, n_terminals=80, n_days=35, random_state=RANDOM_STATE
    ).transactions
    X = compute_model_features(transactions)
    when = transactions["tx_datetime"]
    train = ((when >= "2026-01-08") & (when < "2026-01-29")).to_numpy()
    pipeline = build_pipeline(
        build_preprocessor(list(NUMERIC_FEATURES), list(CATEGORICAL_FEATURES)),
        HistGradientBoostingClassifier(random_state=RANDOM_STATE),
    )
    with threadpool_limits(limits=1, user_api="openmp"):
        pipeline.fit(X[train], transactions.loc[train, "is_fraud"])
    sample = X[(when >= "2026-01-29").to_numpy()].sample(500, random_state=RANDOM_STATE)
    return pipeline, sample


def score(pipeline, rows):
    return pipeline.predict_proba(rows)[:, 1]


def test_training_is_reproducible(fitted):
    pipeline, sample = fitted
    np.testing.assert_array_equal(score(pipeline, sample), score(pipeline, sample.copy()))


def test_invariance_to_one_cent(fitted):
    pipeline, sample = fitted
    moved = sample.assign(amount=sample["amount"] + 0.01)
    change = np.abs(score(pipeline, moved) - score(pipeline, sample))
    assert (change > 0.02).mean() < 0.02, f"{(change > 0.02).mean():.1%} of rows moved > 0.02"


def test_invariance_to_row_order(fitted):
    pipeline, sample = fitted
    shuffled = sample.sample(frac=1.0, random_state=RANDOM_STATE)
    np.testing.assert_allclose(
        score(pipeline, shuffled), score(pipeline, sample.loc[shuffled.index])
    )


def test_directional_five_times_the_amount_is_not_safer(fitted):
    pipeline, sample = fitted
    delta = score(pipeline, sample.assign(amount=sample["amount"] * 5)) - score(pipeline, sample)
    assert delta.mean() > 0
    assert (delta < -1e-3).mean() < 0.05, f"{(delta < -1e-3).mean():.1%} scored lower"


def test_directional_a_terminal_with_known_fraud_is_not_safer(fitted):
    pipeline, sample = fitted
    risky = sample.assign(
        terminal_fraud_rate_28d=0.5,
        terminal_fraud_count_28d=(sample["terminal_tx_count_28d"] * 0.5).round(),
    )
    delta = score(pipeline, risky) - score(pipeline, sample)
    assert delta.mean() > 0
    assert (delta < -1e-3).mean() < 0.05, f"{(delta < -1e-3).mean():.1%} scored lower"


def test_minimum_functionality_large_amounts_look_risky(fitted):
    pipeline, sample = fitted  # in the simulator every amount above 450 is fraud (scenario 1)
    top_5_percent = np.quantile(score(pipeline, sample), 0.95)
    caught = (score(pipeline, sample.assign(amount=600.0)) >= top_5_percent).mean()
    assert caught >= 0.95, f"only {caught:.1%} of 600-payments are in the top 5 % of scores"
