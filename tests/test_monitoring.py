import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from scipy import stats  # noqa: E402
from sklearn.metrics import average_precision_score, roc_auc_score  # noqa: E402

from production.monitoring import (  # noqa: E402
    PSI_EPSILON,
    chi2_test,
    drift_report,
    ks_test,
    performance_over_time,
    plot_drift_report,
    psi,
)


def make_sample(n_rows, random_state, *, shift=0.0, channel_p=(0.5, 0.3, 0.2)):
    """Transactions and model scores; ``shift`` moves amount and score by that many sd."""
    rng = np.random.default_rng(random_state)
    return pd.DataFrame(
        {
            "amount": rng.normal(shift, 1.0, n_rows),
            "hour": rng.integers(0, 24, n_rows),
            "channel": rng.choice(["web", "pos", "atm"], n_rows, p=list(channel_p)),
            "is_foreign": rng.random(n_rows) < 0.1,
            "score": 1 / (1 + np.exp(-(rng.normal(-3 + shift, 1.0, n_rows)))),
        }
    )


@pytest.fixture(autouse=True)
def no_open_figures():
    yield
    plt.close("all")


# ------------------------------------------------------------------------------ PSI


def test_psi_two_bins_by_hand():
    reference = np.arange(1, 11)  # median 5.5 splits it 5 / 5
    current = [1, 2, 3, 6, 7, 8, 9, 10, 11, 12]  # 3 at or below 5.5, 7 above

    # (0.3 - 0.5) ln(0.3 / 0.5) + (0.7 - 0.5) ln(0.7 / 0.5) = 0.2 ln(7 / 3)
    assert psi(reference, current, bins=2) == pytest.approx(0.2 * np.log(7 / 3))


def test_psi_out_of_range_values_fall_in_outer_bins_with_epsilon():
    reference = np.arange(1, 9)  # quartile edges 2.75, 4.5, 6.25
    current = [10, 20, 30, 40]  # all above the reference range: last bin

    expected = 3 * (PSI_EPSILON - 0.25) * np.log(PSI_EPSILON / 0.25) + 0.75 * np.log(1 / 0.25)
    assert psi(reference, current, bins=4) == pytest.approx(expected)
    assert psi(reference, [-5, -6], bins=4) == pytest.approx(expected)


def test_psi_categorical_by_hand_counts_unseen_categories():
    reference = pd.Series(["a", "a", "b", "b"])
    current = pd.Series(["a", "b", "b", "c"])  # "c" unseen in the reference

    expected = (0.25 - 0.5) * np.log(0.25 / 0.5) + (0.25 - PSI_EPSILON) * np.log(0.25 / PSI_EPSILON)
    assert psi(reference, current) == pytest.approx(expected)
    assert psi(reference.astype("category"), current.astype("category")) == pytest.approx(expected)


def test_psi_matches_independent_numpy_computation():
    rng = np.random.default_rng(0)
    reference = rng.normal(size=5000)
    current = rng.normal(0.3, 1.2, size=5000)

    edges = np.percentile(reference, np.linspace(0, 100, 11))
    edges[0], edges[-1] = -np.inf, np.inf
    ref_p = np.histogram(reference, edges)[0] / len(reference)
    cur_p = np.histogram(current, edges)[0] / len(current)
    expected = np.sum((cur_p - ref_p) * np.log(cur_p / ref_p))

    assert psi(reference, current) == pytest.approx(expected, rel=1e-12)


def test_psi_is_zero_for_identical_samples_and_small_for_same_distribution():
    sample = make_sample(5000, random_state=1)
    other = make_sample(5000, random_state=2)

    assert psi(sample["amount"], sample["amount"]) == 0.0
    assert psi(sample["channel"], sample["channel"]) == 0.0
    assert psi(sample["amount"], other["amount"]) < 0.01
    assert psi(sample["channel"], other["channel"]) < 0.01


def test_psi_ignores_missing_values_and_merges_tied_quantiles():
    reference = pd.Series([0.0] * 6 + [1.0, 2.0, 3.0, np.nan])  # deciles mostly 0: bins merge

    assert psi(reference, reference.dropna()) == 0.0
    assert np.isfinite(psi(reference, [0.0, 0.0, 5.0]))


def test_psi_rejects_bad_bins():
    with pytest.raises(ValueError, match="'bins' parameter of psi must be an int >= 2. Got 1"):
        psi([1.0, 2.0], [1.0, 2.0], bins=1)


def test_psi_rejects_mixed_kinds():
    with pytest.raises(
        TypeError, match="psi: reference .* and current .* must both be of one kind"
    ):
        psi([1.0, 2.0], ["a", "b"])


def test_psi_rejects_empty_sample():
    with pytest.raises(ValueError, match="psi: current has no non-missing values"):
        psi([1.0, 2.0], [np.nan])


# ----------------------------------------------------------------------- KS and chi2


def test_ks_test_equals_scipy():
    rng = np.random.default_rng(3)
    reference, current = rng.normal(size=500), rng.normal(0.2, 1, size=400)

    expected = stats.ks_2samp(reference, current)

    assert ks_test(reference, current) == (
        pytest.approx(expected.statistic),
        pytest.approx(expected.pvalue),
    )


def test_chi2_test_equals_scipy_with_unseen_category():
    reference = ["web"] * 50 + ["pos"] * 30 + ["atm"] * 20
    current = ["web"] * 40 + ["pos"] * 30 + ["atm"] * 20 + ["phone"] * 10

    # categories web, pos, atm, phone (phone unseen in the reference)
    expected = stats.chi2_contingency([[50, 30, 20, 0], [40, 30, 20, 10]])

    assert chi2_test(reference, current) == (
        pytest.approx(expected.statistic),
        pytest.approx(expected.pvalue),
    )


def test_chi2_test_single_category_is_no_evidence():
    assert chi2_test(["web"] * 3, ["web"] * 5) == (0.0, 1.0)


def test_ks_test_rejects_categorical():
    with pytest.raises(TypeError, match="ks_test: .* must both be numeric"):
        ks_test(["a", "b"], ["a", "b"])


def test_chi2_test_rejects_numeric():
    with pytest.raises(TypeError, match="chi2_test: .* must both be categorical"):
        chi2_test([1.0, 2.0], [1.0, 3.0])


# ---------------------------------------------------------------------- drift report


def test_drift_report_flags_shifted_features_only():
    reference = make_sample(5000, random_state=10)
    current = make_sample(5000, random_state=11, shift=0.5, channel_p=(0.4, 0.3, 0.3))

    report = drift_report(reference, current)

    assert list(report.columns) == ["feature", "kind", "psi", "statistic", "p_value", "drifted"]
    by_feature = report.set_index("feature")
    assert by_feature.loc[["amount", "hour", "score"], "kind"].eq("numeric").all()
    assert by_feature.loc[["channel", "is_foreign"], "kind"].eq("categorical").all()
    assert by_feature.loc[["amount", "score", "channel"], "drifted"].all()
    assert not by_feature.loc[["hour", "is_foreign"], "drifted"].any()
    assert by_feature.loc["amount", "psi"] > 0.2
    assert by_feature.loc["amount", "statistic"] == pytest.approx(
        stats.ks_2samp(reference["amount"], current["amount"]).statistic
    )


def test_drift_report_does_not_flag_same_distribution():
    reference = make_sample(5000, random_state=20)
    current = make_sample(5000, random_state=21)

    report = drift_report(reference, current)

    assert not report["drifted"].any()
    assert (report["psi"] < 0.01).all()
    assert report["drifted"].dtype == bool


def test_drift_report_explicit_columns_and_numeric_codes():
    reference = make_sample(500, random_state=30)
    current = make_sample(500, random_state=31)

    report = drift_report(reference, current, numeric_cols=["score"], categorical_cols=["hour"])
    inferred = drift_report(reference, current, categorical_cols=["hour"])

    assert report[["feature", "kind"]].values.tolist() == [
        ["score", "numeric"],
        ["hour", "categorical"],
    ]
    # numeric_cols=None: the numeric columns not listed as categorical
    assert inferred[["feature", "kind"]].values.tolist() == [
        ["amount", "numeric"],
        ["score", "numeric"],
        ["hour", "categorical"],
    ]
    assert report.attrs["psi_threshold"] == 0.2


def test_drift_report_names_missing_columns():
    reference = make_sample(100, random_state=0)

    with pytest.raises(ValueError, match=r"column\(s\) \['score'\] not found in current"):
        drift_report(reference, reference.drop(columns="score"))
    with pytest.raises(ValueError, match=r"column\(s\) \['amt'\] not found in reference"):
        drift_report(reference, reference, numeric_cols=["amt"])


def test_drift_report_rejects_column_listed_twice():
    reference = make_sample(100, random_state=0)

    with pytest.raises(ValueError, match=r"\['hour'\] are both numeric and categorical"):
        drift_report(reference, reference, numeric_cols=["hour"], categorical_cols=["hour"])


def test_drift_report_rejects_non_numeric_numeric_cols():
    reference = make_sample(100, random_state=0)

    with pytest.raises(TypeError, match=r"\['channel'\] in numeric_cols are not numeric"):
        drift_report(reference, reference, numeric_cols=["channel"])


def test_drift_report_rejects_non_dataframe():
    with pytest.raises(TypeError, match="drift_report: current must be a pandas DataFrame"):
        drift_report(make_sample(10, random_state=0), [1, 2])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"psi_threshold": -0.1}, "'psi_threshold' parameter of drift_report"),
        ({"p_value_threshold": 1.5}, "'p_value_threshold' parameter of drift_report"),
    ],
)
def test_drift_report_rejects_bad_thresholds(kwargs, message):
    sample = make_sample(10, random_state=0)

    with pytest.raises(ValueError, match=message):
        drift_report(sample, sample, **kwargs)


def test_drift_report_names_empty_column():
    reference = make_sample(100, random_state=0)

    with pytest.raises(
        ValueError, match="drift_report: column 'amount': current has no non-missing"
    ):
        drift_report(reference, reference.assign(amount=np.nan))


def test_plot_drift_report_draws_psi_bars_and_threshold():
    report = drift_report(
        make_sample(1000, random_state=0), make_sample(1000, random_state=1, shift=0.5)
    )
    report.attrs["psi_threshold"] = 0.15

    fig = plot_drift_report(report)

    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    assert len(ax.patches) == len(report)
    assert [line.get_xdata()[0] for line in ax.get_lines()] == [0.15]
    assert plt.get_fignums() == []


def test_plot_drift_report_rejects_other_input():
    with pytest.raises(TypeError, match="report must be a pandas DataFrame"):
        plot_drift_report({"psi": [0.1]})
    with pytest.raises(ValueError, match=r"column\(s\) \['drifted'\] not found in report"):
        plot_drift_report(pd.DataFrame({"feature": ["a"], "psi": [0.1]}))


# -------------------------------------------------------------- performance over time


@pytest.fixture
def scored():
    """Eight transactions over three days (the middle one empty); labels arrive later."""
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(
                [
                    "2026-03-01 09:00",
                    "2026-03-01 10:00",
                    "2026-03-01 11:00",
                    "2026-03-01 12:00",
                    "2026-03-01 13:00",
                    "2026-03-03 09:00",
                    "2026-03-03 10:00",
                    "2026-03-03 11:00",
                ]
            ),
            "is_fraud": [1, 0, 1, 0, np.nan, 0, 0, 1],
            "score": [0.9, 0.2, 0.4, 0.6, 0.7, 0.1, 0.3, 0.8],
            "label_ts": pd.to_datetime(
                [
                    "2026-03-05",
                    "2026-03-02",
                    "2026-03-20",
                    "2026-03-02",
                    None,
                    "2026-03-04",
                    "2026-03-04",
                    "2026-03-30",
                ]
            ),
        }
    )


def test_performance_over_time_all_known_labels(scored):
    result = performance_over_time(scored, time_col="ts", label_col="is_fraud", score_col="score")

    assert list(result.columns) == [
        "period",
        "n",
        "n_labelled",
        "positives",
        "flagged",
        "average_precision",
        "roc_auc",
        "precision",
        "recall",
    ]
    assert result["period"].tolist() == list(pd.date_range("2026-03-01", periods=3, freq="D"))
    assert result["n"].tolist() == [5, 0, 3]
    assert result["n_labelled"].tolist() == [4, 0, 3]
    assert result["positives"].tolist() == [2, 0, 1]
    assert result["flagged"].tolist() == [3, 0, 1]
    day1 = result.iloc[0]
    labels, scores = [1, 0, 1, 0], [0.9, 0.2, 0.4, 0.6]
    assert day1["average_precision"] == pytest.approx(average_precision_score(labels, scores))
    assert day1["roc_auc"] == pytest.approx(roc_auc_score(labels, scores))
    assert day1["precision"] == pytest.approx(1 / 2)  # 0.9 (fraud) and 0.6 (not) flagged
    assert day1["recall"] == pytest.approx(1 / 2)
    assert result.iloc[1][["average_precision", "roc_auc", "precision", "recall"]].isna().all()


def test_performance_over_time_uses_labels_known_as_of(scored):
    result = performance_over_time(
        scored,
        time_col="ts",
        label_col="is_fraud",
        score_col="score",
        label_available_col="label_ts",
        as_of="2026-03-06",
        threshold=0.5,
    )

    # day 1: the 2026-03-20 chargeback is not known yet; day 3: the fraud is not known yet
    assert result["n"].tolist() == [5, 0, 3]
    assert result["n_labelled"].tolist() == [3, 0, 2]
    assert result["positives"].tolist() == [1, 0, 0]
    day3 = result.iloc[2]
    assert np.isnan(day3["average_precision"])  # no known positive
    assert np.isnan(day3["roc_auc"])  # one class only
    assert np.isnan(day3["recall"])
    assert np.isnan(day3["precision"])  # nothing flagged among labelled rows
    later = performance_over_time(
        scored,
        time_col="ts",
        label_col="is_fraud",
        score_col="score",
        label_available_col="label_ts",
    )
    assert later["n_labelled"].tolist() == [4, 0, 3]


def test_performance_over_time_monthly(scored):
    result = performance_over_time(
        scored, time_col="ts", label_col="is_fraud", score_col="score", freq="MS"
    )

    assert result["period"].tolist() == [pd.Timestamp("2026-03-01")]
    assert result["n"].tolist() == [8]
    assert result["positives"].tolist() == [3]


def test_performance_over_time_names_missing_columns(scored):
    with pytest.raises(ValueError, match=r"\['proba'\] not found in frame"):
        performance_over_time(scored, time_col="ts", label_col="is_fraud", score_col="proba")


def test_performance_over_time_needs_datetime(scored):
    with pytest.raises(TypeError, match="column 'ts' of frame must be datetime64"):
        performance_over_time(
            scored.assign(ts=scored["ts"].astype(str)),
            time_col="ts",
            label_col="is_fraud",
            score_col="score",
        )


def test_performance_over_time_needs_numeric_scores(scored):
    with pytest.raises(TypeError, match="score column 'score' must be numeric"):
        performance_over_time(
            scored.assign(score="high"), time_col="ts", label_col="is_fraud", score_col="score"
        )


def test_performance_over_time_as_of_needs_availability(scored):
    with pytest.raises(ValueError, match="as_of needs label_available_col"):
        performance_over_time(
            scored, time_col="ts", label_col="is_fraud", score_col="score", as_of="2026-03-06"
        )


def test_performance_over_time_rejects_non_binary_labels(scored):
    with pytest.raises(ValueError, match="'is_fraud' must hold 0/1"):
        performance_over_time(
            scored.assign(is_fraud=2), time_col="ts", label_col="is_fraud", score_col="score"
        )


def test_performance_over_time_rejects_non_dataframe():
    with pytest.raises(TypeError, match="frame must be a pandas DataFrame"):
        performance_over_time([], time_col="ts", label_col="y", score_col="s")


def test_drift_report_rejects_bad_column_lists():
    with pytest.raises(ValueError, match="numeric_cols"):
        drift_report(make_sample(20, 0), make_sample(20, 1), numeric_cols=[1, 2])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"as_of": "not a date"}, "as_of"),
        ({"freq": 7}, "freq"),
        ({"threshold": "high"}, "threshold"),
    ],
)
def test_performance_over_time_rejects_bad_parameters(scored, kwargs, match):
    with pytest.raises(ValueError, match=match):
        performance_over_time(
            scored,
            time_col="ts",
            label_col="is_fraud",
            score_col="score",
            label_available_col="label_ts",
            **kwargs,
        )
