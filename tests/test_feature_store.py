"""The online feature store: online = offline features, retries, clock outliers, overflow."""

import numpy as np
import pandas as pd
import pytest

from production.db import get_engine, write_table
from production.feature_store import OnlineFeatureStore, read_transactions
from production.features import FEATURE_COLUMNS, compute_model_features
from production.simulate import simulate


@pytest.fixture(scope="module")
def transactions():
    """Ten days, 80 customers, 30 terminals (~150 transactions a day)."""
    return simulate(n_customers=80, n_terminals=30, n_days=10, random_state=0).transactions


@pytest.fixture(scope="module")
def features(transactions):
    return compute_model_features(transactions)


@pytest.fixture
def engine(tmp_path, transactions):
    engine = get_engine(f"sqlite:///{(tmp_path / 'store.db').as_posix()}")
    write_table(transactions, "transactions", engine=engine)
    return engine


def _mismatches(online: list[dict], offline: pd.DataFrame) -> list:
    def same(a, b):
        if isinstance(a, str) or isinstance(b, str):
            return a == b
        return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=0.0, equal_nan=True))

    return [
        (i, column)
        for i, record in enumerate(online)
        for column in FEATURE_COLUMNS
        if not same(record[column], offline.iloc[i][column])
    ]


def test_streaming_store_with_label_feedback_equals_offline(transactions, features):
    """Transactions recorded unlabelled, labels fed back as they arrive: equal to offline."""
    start = pd.Timestamp("2026-01-06")
    stream = transactions[transactions["tx_datetime"] >= start]
    store = OnlineFeatureStore()
    store.add_history(transactions[transactions["tx_datetime"] < start])
    pending = stream.sort_values("label_available_at")
    fed, online = 0, []
    for row in stream.to_dict(orient="records"):
        arrived = pending.iloc[fed:]
        arrived = arrived[arrived["label_available_at"] <= row["tx_datetime"]]
        if len(arrived):
            store.add_labels(arrived)
            fed += len(arrived)
        online.append(store.lookup(row))
        assert store.record(row)
    assert fed > 0 and len(online) > 100
    assert not _mismatches(online, features.loc[stream.index])


def test_store_ignores_retries_and_forgets_old_history(transactions):
    store = OnlineFeatureStore()
    store.add_history(transactions)
    n, row = store.n_rows, transactions.iloc[-1].to_dict()
    assert not store.record(row)  # same transaction_id: a retried request
    later = {**row, "transaction_id": None, "tx_datetime": row["tx_datetime"] + pd.Timedelta("40D")}
    assert store.record(later) and store.n_rows == n + 1
    store.add_history(transactions.head(0))  # prunes
    assert store.n_rows == 1


def test_one_far_future_transaction_does_not_empty_the_store(transactions):
    store = OnlineFeatureStore()
    store.add_history(transactions)
    n, row = store.n_rows, transactions.iloc[-1].to_dict()
    future = {**row, "transaction_id": 10**9, "tx_datetime": pd.Timestamp("2262-01-01")}
    assert store.lookup(future)["customer_tx_count_30d"] == 0
    assert not store.record(future)
    store.add_history(pd.DataFrame([future]))  # refused there too, then a prune
    assert store.n_rows == n
    assert store.lookup(row) == pytest.approx(store.lookup(row), nan_ok=True)
    with pytest.raises(ValueError, match="tx_datetime"):
        store.lookup({**row, "tx_datetime": "9999-01-01"})


def test_two_huge_amounts_do_not_break_a_customer(transactions):
    store = OnlineFeatureStore()
    row = transactions.iloc[0].to_dict()
    for i in range(2):
        store.record(
            {
                **row,
                "transaction_id": i,
                "amount": 1e308,
                "tx_datetime": row["tx_datetime"] + pd.Timedelta(minutes=i),
            }
        )
    later = {**row, "tx_datetime": row["tx_datetime"] + pd.Timedelta(hours=1)}
    features = store.lookup(later)
    assert features["customer_amount_mean_1d"] == pytest.approx(1e308)


def test_store_names_missing_columns():
    with pytest.raises(ValueError, match="amount"):
        OnlineFeatureStore().add_history(pd.DataFrame({"tx_datetime": [], "customer_id": []}))
    with pytest.raises(ValueError, match="label_available_at"):
        OnlineFeatureStore().add_labels(pd.DataFrame({"terminal_id": [1]}))


def test_store_loads_recent_history_from_the_database(engine, transactions):
    store = OnlineFeatureStore.from_database(engine=engine)
    assert store.n_rows == len(transactions)  # ten days fit in the 31-day horizon
    assert OnlineFeatureStore.from_database(table="missing_table", engine=engine).n_rows == 0


def test_read_transactions_reads_a_time_range_in_order(engine):
    rows = read_transactions("2026-01-03", "2026-01-04", engine=engine)
    assert rows["tx_datetime"].is_monotonic_increasing and len(rows) > 50
    assert rows["tx_datetime"].between("2026-01-03", "2026-01-04", inclusive="left").all()
    with pytest.raises(ValueError, match="no_such_table"):
        read_transactions("2026-01-03", "2026-01-04", table="no_such_table", engine=engine)
    with pytest.raises(ValueError, match="'table' parameter"):
        read_transactions("2026-01-03", "2026-01-04", table="x; drop", engine=engine)
