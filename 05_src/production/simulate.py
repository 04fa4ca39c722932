"""Simulated card transactions for fraud detection: deterministic, offline, day by day.

After Le Borgne et al., *Reproducible Machine Learning for Credit Card Fraud Detection*.
Customers pay at terminals near home or, 20 % of the time, at web merchants; each day draws
Poisson(``mean_tx_per_day`` x weekday factor) transactions with log-normal amounts. Fraud
(``fraud_scenario``, highest id wins; ~0.9 % of rows): (1) amount > 450; (2) compromised
terminals, 28 days; (3) compromised customers, 14 days, amount x5; (4) from ``drift_start``,
card-testing bursts of 3-8 small online transactions, with amounts x1.3 and an online share
of 0.30. Labels are known U(1, 2 x ``label_delay_days``) days after a fraud,
``label_delay_days`` after a legitimate one. Every draw comes from ``SeedSequence(random_state,
spawn_key=(stream, key))``, so :func:`iter_days` yields exactly the rows of :func:`simulate`.
"""

import datetime as dt
import inspect
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

from production._validation import (
    Interval,
    InvalidParameterError,
    as_day,
    check_param,
    validate_params,
)
from production.config import RANDOM_STATE

__all__ = [
    "TRANSACTION_COLUMNS",
    "CUSTOMER_COLUMNS",
    "TERMINAL_COLUMNS",
    "FRAUD_SCENARIOS",
    "MERCHANT_CATEGORIES",
    "CHANNELS",
    "SimulatedData",
    "simulate",
    "simulate_profiles",
    "iter_days",
]

#: Columns of ``SimulatedData.transactions``, in order.
TRANSACTION_COLUMNS = (
    "transaction_id",
    "tx_datetime",
    "customer_id",
    "terminal_id",
    "amount",
    "merchant_category",
    "channel",
    "is_fraud",
    "fraud_scenario",
    "label_available_at",
)
#: Columns of ``SimulatedData.customers``, in order.
CUSTOMER_COLUMNS = (
    "customer_id",
    "x_location",
    "y_location",
    "mean_amount",
    "std_amount",
    "mean_tx_per_day",
    "home_region",
)
#: Columns of ``SimulatedData.terminals``, in order.
TERMINAL_COLUMNS = ("terminal_id", "x_location", "y_location", "merchant_category", "region")
#: ``fraud_scenario`` codes and their meaning.
FRAUD_SCENARIOS = {
    0: "legitimate",
    1: "high_amount",
    2: "compromised_terminal",
    3: "compromised_customer",
    4: "card_testing_burst",
}
MERCHANT_CATEGORIES = (
    "grocery",
    "restaurant",
    "fuel",
    "pharmacy",
    "entertainment",
    "electronics",
    "travel",
    "online_retail",
)
CHANNELS = ("chip", "contactless", "swipe", "online")

_CATEGORY_SHARES = np.array([0.22, 0.18, 0.12, 0.08, 0.08, 0.07, 0.05, 0.20])
_CATEGORY_AMOUNT_FACTORS = np.array([1.0, 0.8, 0.9, 0.6, 1.0, 2.5, 3.0, 1.1])
_ONLINE_CATEGORY = MERCHANT_CATEGORIES.index("online_retail")
_CHIP, _CONTACTLESS, _SWIPE, _ONLINE = range(4)
_REGIONS = ("south_west", "south_east", "north_west", "north_east")
_GRID, _RADIUS, _MAX_NEARBY, _MIN_NEARBY, _WEB_MERCHANTS = 100.0, 10.0, 50, 3, 3
_ONLINE_SHARE, _ONLINE_SHARE_DRIFT, _DRIFT_AMOUNT_FACTOR = 0.20, 0.30, 1.3
_WEEKDAY_FACTORS = np.array([0.92, 0.92, 0.95, 1.00, 1.15, 1.10, 0.96])  # Monday first
_HOUR_WEIGHTS = np.array(
    [0.15, 0.10, 0.07, 0.05, 0.05, 0.10, 0.30, 0.60, 0.90, 1.00, 1.10, 1.30]
    + [1.50, 1.30, 1.10, 1.00, 1.10, 1.30, 1.50, 1.50, 1.30, 1.00, 0.60, 0.30]
)
_HOUR_CDF = np.cumsum(_HOUR_WEIGHTS) / _HOUR_WEIGHTS.sum()
_HIGH_AMOUNT, _CONTACTLESS_LIMIT = 450.0, 100.0
_TERMINAL_RATE, _TERMINAL_DAYS = 1.6e-4, 28
_CUSTOMER_RATE, _CUSTOMER_DAYS, _CUSTOMER_SHARE, _CUSTOMER_FACTOR = 9e-4, 14, 1 / 3, 5.0
_BURST_RATE, _BURST_SIZES, _BURST_AMOUNTS, _BURST_GAP_S = 1.2e-3, (3, 8), (0.5, 10.0), 60.0
_IDS_PER_DAY, _MAX_CUSTOMERS, _DAY_S, _NS = 10**8, 10**7, 86_400, 10**9
_CUSTOMERS, _TERMINALS, _PHASES, _DAY, _BAD_TERMINALS, _BAD_CUSTOMERS, _BURSTS = range(7)
_DAY_KEY_OFFSET = 1_000  # spawn keys are >= 0; days before the start are < 0


@dataclass(frozen=True, repr=False)
class SimulatedData:
    """What :func:`simulate` returns; ``params`` are the parameters (log them with the run)."""

    customers: pd.DataFrame
    terminals: pd.DataFrame
    transactions: pd.DataFrame
    params: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        sizes = [f"{k}={len(getattr(self, k))}" for k in ("customers", "terminals", "transactions")]
        return f"SimulatedData({', '.join(sizes)}, params={self.params})"


@dataclass(frozen=True)
class _Config:
    """Validated parameters; ``start`` is a datetime64[D], ``drift_day`` a day number."""

    n_customers: int
    n_terminals: int
    n_days: int
    start: np.datetime64
    drift_day: int
    label_delay_days: int
    random_state: int

    def params(self) -> dict:
        """Return the parameters as plain Python values."""
        drift = None if self.drift_day == self.n_days else str(self.start + self.drift_day)
        return {
            "n_customers": self.n_customers,
            "n_terminals": self.n_terminals,
            "n_days": self.n_days,
            "start_date": str(self.start),
            "drift_start": drift,
            "label_delay_days": self.label_delay_days,
            "random_state": self.random_state,
        }


@dataclass(frozen=True)
class _Profiles:
    """Customer and terminal profiles plus the arrays the daily generator needs."""

    customers: pd.DataFrame
    terminals: pd.DataFrame
    nearby: np.ndarray  # (n_customers, k) physical terminal ids, nearest first
    nearby_count: np.ndarray  # how many leading entries of `nearby` are usable
    web_merchants: np.ndarray  # (n_customers, 3) online terminal ids, or empty
    terminal_category: np.ndarray
    online_terminals: np.ndarray
    phases: np.ndarray  # of the terminal and customer compromise quotas


_COUNTS = {
    "n_customers": Interval(int, 1, _MAX_CUSTOMERS),
    "n_terminals": Interval(int, 1),
    "n_days": Interval(int, 1),
    "label_delay_days": Interval(int, 1),
    "random_state": Interval(int, 0),
}


def _config(
    where, n_customers, n_terminals, n_days, start_date, drift_start, label_delay_days, random_state
) -> _Config:
    """Check the dates (``validate_params`` checks the counts); no drift is drift_day = n_days."""
    start, drift_day = np.datetime64(as_day(start_date, "start_date", where).date(), "D"), n_days
    if drift_start is not None:
        drift_day = (as_day(drift_start, "drift_start", where) - pd.Timestamp(start)).days
        if not 0 <= drift_day < n_days:
            raise InvalidParameterError(
                f"The 'drift_start' parameter of {where} must be None or a date in "
                f"[{start}, {start + n_days - 1}]. Got {drift_start!r} instead."
            )
    counts = (n_customers, n_terminals, n_days)
    return _Config(*map(int, counts), start, drift_day, int(label_delay_days), int(random_state))


def _rng(cfg: _Config, stream: int, day: int = -_DAY_KEY_OFFSET) -> np.random.Generator:
    """Return the generator of ``stream`` for ``day`` (key 0, the default, for profiles)."""
    seq = np.random.SeedSequence(cfg.random_state, spawn_key=(stream, day + _DAY_KEY_OFFSET))
    return np.random.Generator(np.random.PCG64(seq))


def _str_array(categories, codes) -> pd.api.extensions.ExtensionArray:
    """Return ``categories[codes]`` as pandas' default ``str`` array, built by pyarrow."""
    values = pa.array(list(categories), type=pa.large_string()).take(pa.array(codes))
    return pd.array(values, dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def _regions(xy: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """Return the quadrant of each point (see ``_REGIONS``)."""
    east, north = (xy >= _GRID / 2).astype(np.int64).T
    return _str_array(_REGIONS, east + 2 * north)


def _build_profiles(cfg: _Config) -> _Profiles:
    """Draw customer and terminal profiles from their own seeds."""
    rng_c, nc = _rng(cfg, _CUSTOMERS), cfg.n_customers
    cxy = rng_c.uniform(0, _GRID, size=(nc, 2))
    mean_amount = rng_c.uniform(5, 100, size=nc)
    std_amount = mean_amount * rng_c.uniform(0.2, 0.5, size=nc)
    tx_rate = rng_c.uniform(0, 4, size=nc)
    web_u = rng_c.random(size=(nc, _WEB_MERCHANTS))
    rng_t, nt = _rng(cfg, _TERMINALS), cfg.n_terminals
    txy = rng_t.uniform(0, _GRID, size=(nt, 2))
    shares = np.cumsum(_CATEGORY_SHARES) / _CATEGORY_SHARES.sum()
    category = np.searchsorted(shares, rng_t.random(nt), side="right").astype(np.int64)

    online = np.flatnonzero(category == _ONLINE_CATEGORY)
    physical = np.flatnonzero(category != _ONLINE_CATEGORY)
    nearby, nearby_count = np.zeros((nc, 0), dtype=np.int64), np.zeros(nc, dtype=np.int64)
    if physical.size:
        from scipy.spatial import cKDTree  # 0.4 s to import: not for every user of the module

        k = min(_MAX_NEARBY, physical.size)
        dist, idx = cKDTree(txy[physical]).query(cxy, k=k)
        dist, idx = dist.reshape(nc, k), idx.reshape(nc, k)
        nearby = physical[idx]
        nearby_count = ((dist <= _RADIUS) | (np.arange(k) < _MIN_NEARBY)).sum(axis=1)
    web = online[(web_u * online.size).astype(np.int64)] if online.size else web_u[:, :0]

    customers = pd.DataFrame(
        {
            "customer_id": np.arange(nc, dtype=np.int64),
            "x_location": cxy[:, 0],
            "y_location": cxy[:, 1],
            "mean_amount": mean_amount,
            "std_amount": std_amount,
            "mean_tx_per_day": tx_rate,
            "home_region": _regions(cxy),
        }
    )
    terminals = pd.DataFrame(
        {
            "terminal_id": np.arange(nt, dtype=np.int64),
            "x_location": txy[:, 0],
            "y_location": txy[:, 1],
            "merchant_category": _str_array(MERCHANT_CATEGORIES, category),
            "region": _regions(txy),
        }
    )
    return _Profiles(
        customers,
        terminals,
        nearby.astype(np.int64),
        nearby_count.astype(np.int64),
        web.astype(np.int64),
        category,
        online,
        _rng(cfg, _PHASES).random(2),
    )


def _compromised(cfg: _Config, prof: _Profiles, stream: int, day: int) -> np.ndarray:
    """Return the terminal or customer ids (by ``stream``) compromised on days up to ``day``."""
    terminals = stream == _BAD_TERMINALS
    n_items = cfg.n_terminals if terminals else cfg.n_customers
    rate = (_TERMINAL_RATE if terminals else _CUSTOMER_RATE) * n_items
    phase = prof.phases[0 if terminals else 1]
    chosen = []
    for past in range(day - (_TERMINAL_DAYS if terminals else _CUSTOMER_DAYS) + 1, day + 1):
        k = min(int(np.floor(rate * (past + 1) + phase) - np.floor(rate * past + phase)), n_items)
        if k:
            chosen.append(_rng(cfg, stream, past).choice(n_items, size=k, replace=False))
    return np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def _legit_counts(cfg: _Config, prof: _Profiles, rng: np.random.Generator, day: int):
    """Draw each customer's number of transactions on ``day`` (first draw of the day)."""
    weekday = int((cfg.start + day).astype("datetime64[D]").astype(object).weekday())
    return rng.poisson(prof.customers["mean_tx_per_day"].to_numpy() * _WEEKDAY_FACTORS[weekday])


def _burst_sizes(cfg: _Config, rng: np.random.Generator):
    """Draw the sizes of the day's card-testing bursts (first draw of the burst stream)."""
    n_bursts = rng.poisson(_BURST_RATE * cfg.n_customers)
    return rng.integers(_BURST_SIZES[0], _BURST_SIZES[1] + 1, size=n_bursts)


def _day_row_count(cfg: _Config, prof: _Profiles, day: int) -> int:
    """Return how many transactions ``day`` has, without generating them."""
    n = int(_legit_counts(cfg, prof, _rng(cfg, _DAY, day), day).sum())
    if day >= cfg.drift_day:
        n += int(_burst_sizes(cfg, _rng(cfg, _BURSTS, day)).sum())
    return n


def _label_delay_s(cfg: _Config, is_fraud: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Return label delays in seconds: U(1, 2*L) days for fraud, exactly L days otherwise."""
    low, high = _DAY_S, 2 * cfg.label_delay_days * _DAY_S
    fraud_delay = np.rint(low + u * (high - low)).astype(np.int64)
    return np.where(is_fraud, fraud_delay, cfg.label_delay_days * _DAY_S)


def _terminals_used(prof: _Profiles, cust, u_online, u_terminal, share):
    """Return (terminal, is_online): a web merchant or a nearby physical terminal."""
    if prof.online_terminals.size == 0:
        share = 0.0
    elif prof.nearby.shape[1] == 0:
        share = 1.0
    is_online = u_online < share
    terminal = np.empty(cust.size, dtype=np.int64)
    on, off = np.flatnonzero(is_online), np.flatnonzero(~is_online)
    web_pick = (u_terminal[on] * _WEB_MERCHANTS).astype(np.int64)
    terminal[on] = prof.web_merchants[cust[on], web_pick] if on.size else 0
    near_pick = (u_terminal[off] * prof.nearby_count[cust[off]]).astype(np.int64)
    terminal[off] = prof.nearby[cust[off], near_pick] if off.size else 0
    return terminal, is_online


def _regular_day(cfg: _Config, prof: _Profiles, day: int) -> dict:
    """Draw the day's regular traffic (legitimate and scenarios 1-3) as arrays."""
    rng = _rng(cfg, _DAY, day)
    cust = np.repeat(np.arange(cfg.n_customers, dtype=np.int64), _legit_counts(cfg, prof, rng, day))
    n = cust.size
    secs = np.searchsorted(_HOUR_CDF, rng.random(n), side="right") * 3600
    secs = secs + rng.integers(0, 3600, size=n)
    u_online, u_terminal, u_channel, u_fraud, u_delay = rng.random((5, n))
    z = rng.standard_normal(n)
    share = _ONLINE_SHARE_DRIFT if day >= cfg.drift_day else _ONLINE_SHARE
    terminal, is_online = _terminals_used(prof, cust, u_online, u_terminal, share)
    category = prof.terminal_category[terminal]
    mean, std = prof.customers["mean_amount"].to_numpy(), prof.customers["std_amount"].to_numpy()
    log_sigma2 = np.log1p((std / mean) ** 2)  # log-normal with that mean and std
    log_mu, log_sigma = np.log(mean) - log_sigma2 / 2, np.sqrt(log_sigma2)
    amount = np.exp(log_mu[cust] + log_sigma[cust] * z)
    amount *= _CATEGORY_AMOUNT_FACTORS[category]
    if day >= cfg.drift_day:
        amount *= _DRIFT_AMOUNT_FACTOR
    is_s2 = np.isin(terminal, _compromised(cfg, prof, _BAD_TERMINALS, day))
    bad_customer = np.isin(cust, _compromised(cfg, prof, _BAD_CUSTOMERS, day))
    is_s3 = bad_customer & (u_fraud < _CUSTOMER_SHARE)
    amount[is_s3] *= _CUSTOMER_FACTOR
    amount = np.maximum(np.round(amount, 2), 0.01)
    scenario = np.where(amount > _HIGH_AMOUNT, 1, 0).astype(np.int8)
    scenario[is_s2], scenario[is_s3] = 2, 3
    channel = np.where(u_channel < 0.5, _CONTACTLESS, np.where(u_channel < 0.9, _CHIP, _SWIPE))
    channel[(channel == _CONTACTLESS) & (amount > _CONTACTLESS_LIMIT)] = _CHIP
    channel[is_online] = _ONLINE
    return {
        "customer": cust,
        "terminal": terminal,
        "secs": secs,
        "amount": amount,
        "channel": channel,
        "scenario": scenario,
        "delay": _label_delay_s(cfg, scenario > 0, u_delay),
    }


def _bursts(cfg: _Config, prof: _Profiles, day: int) -> dict:
    """Draw the day's card-testing bursts (scenario 4) from their own stream."""
    rng = _rng(cfg, _BURSTS, day)
    sizes = _burst_sizes(cfg, rng)
    n_bursts, total = sizes.size, int(sizes.sum())
    customer = rng.integers(0, cfg.n_customers, size=n_bursts)
    pool = prof.online_terminals if prof.online_terminals.size else np.arange(cfg.n_terminals)
    terminal = pool[rng.integers(0, pool.size, size=n_bursts)]
    start = rng.integers(0, _DAY_S - 3600, size=n_bursts)
    gaps = np.rint(rng.exponential(_BURST_GAP_S, size=total)).astype(np.int64) + 1
    first = np.cumsum(sizes) - sizes  # position of each burst's first transaction
    gaps[first] = 0
    steps = np.cumsum(gaps)
    within = steps - np.repeat(steps[first], sizes)
    return {
        "customer": np.repeat(customer, sizes).astype(np.int64),
        "terminal": np.repeat(terminal, sizes).astype(np.int64),
        "secs": np.minimum(np.repeat(start, sizes) + within, _DAY_S - 1),
        "amount": np.round(rng.uniform(*_BURST_AMOUNTS, size=total), 2),
        "channel": np.full(total, _ONLINE),
        "scenario": np.full(total, 4, dtype=np.int8),
        "delay": _label_delay_s(cfg, np.ones(total, dtype=bool), rng.random(total)),
    }


def _generate_day(cfg: _Config, prof: _Profiles, day: int, offset: int) -> pd.DataFrame:
    """Return the transactions of ``day`` with index ``offset .. offset+n-1``."""
    rows = _regular_day(cfg, prof, day)
    if day >= cfg.drift_day:
        bursts = _bursts(cfg, prof, day)
        rows = {key: np.concatenate([rows[key], bursts[key]]) for key in rows}
    order = np.argsort(rows["secs"], kind="stable")
    rows = {key: values[order] for key, values in rows.items()}
    n = order.size
    tx_ns = (cfg.start + day).astype("datetime64[ns]").astype(np.int64) + rows["secs"] * _NS
    category = prof.terminal_category[rows["terminal"]]
    frame = {
        "transaction_id": day * _IDS_PER_DAY + np.arange(n, dtype=np.int64),
        "tx_datetime": tx_ns.astype("datetime64[ns]"),
        "customer_id": rows["customer"],
        "terminal_id": rows["terminal"],
        "amount": rows["amount"],
        "merchant_category": _str_array(MERCHANT_CATEGORIES, category),
        "channel": _str_array(CHANNELS, rows["channel"]),
        "is_fraud": (rows["scenario"] > 0).astype(np.int8),
        "fraud_scenario": rows["scenario"],
        "label_available_at": (tx_ns + rows["delay"] * _NS).astype("datetime64[ns]"),
    }
    return pd.DataFrame(frame, index=pd.RangeIndex(offset, offset + n))


def _iter_days(cfg: _Config, prof: _Profiles, start_day: int, end_day: int):
    """Yield days ``start_day .. end_day-1`` with a global running index."""
    offset = sum(_day_row_count(cfg, prof, d) for d in range(start_day))
    for day in range(start_day, end_day):
        frame = _generate_day(cfg, prof, day, offset)
        offset += len(frame)
        yield frame


@validate_params(**{k: _COUNTS[k] for k in ("n_customers", "n_terminals", "random_state")})
def simulate_profiles(
    n_customers: int = 1000, n_terminals: int = 300, random_state: int = RANDOM_STATE
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return the profiles :func:`simulate` would use (parameters as there), for :func:`iter_days`.

    Returns
    -------
    customers, terminals : pandas.DataFrame
        Equal to ``simulate(...).customers`` and ``simulate(...).terminals``.
    """
    cfg = _config(
        "simulate_profiles", n_customers, n_terminals, 1, "2026-01-01", None, 1, random_state
    )
    prof = _build_profiles(cfg)
    return prof.customers, prof.terminals


def iter_days(
    *, start_day: int = 0, end_day: int | None = None, **params
) -> Iterator[pd.DataFrame]:
    """Return an iterator over the transactions of :func:`simulate`, one day at a time.

    ``pd.concat(list(iter_days(**params)))`` equals ``simulate(**params).transactions``.

    Parameters
    ----------
    start_day : int, default=0
        First day to yield, counted from ``start_date``; in ``[0, n_days - 1]``.
    end_day : int or None, default=None
        Day to stop before, in ``[start_day + 1, n_days]``; None means ``n_days``.
    **params
        The parameters of :func:`simulate`, by name (``n_customers``, ..., ``random_state``).

    Returns
    -------
    iterator of pandas.DataFrame
        One frame per day (possibly empty); bad parameters raise at the call.
    """
    bound = inspect.signature(simulate).bind(**params)  # TypeError naming an unknown one
    bound.apply_defaults()
    for name, constraint in _COUNTS.items():
        check_param(bound.arguments[name], constraint, name, "iter_days")
    cfg = _config("iter_days", *bound.arguments.values())
    check_param(start_day, Interval(int, 0, cfg.n_days - 1), "start_day", "iter_days")
    end_day = cfg.n_days if end_day is None else end_day
    check_param(end_day, Interval(int, start_day + 1, cfg.n_days), "end_day", "iter_days")
    return _iter_days(cfg, _build_profiles(cfg), int(start_day), int(end_day))


@validate_params(**_COUNTS)
def simulate(
    n_customers: int = 1000,
    n_terminals: int = 300,
    n_days: int = 60,
    start_date: str | dt.date = "2026-01-01",
    drift_start: str | dt.date | None = None,
    label_delay_days: int = 7,
    random_state: int = RANDOM_STATE,
) -> SimulatedData:
    """Simulate card transactions with fraud, deterministically (see the module docstring).

    The defaults give ~120k transactions, ~0.9 % fraud, in about a second.

    Parameters
    ----------
    n_customers, n_terminals, n_days : int, default=1000, 300, 60
        Customers (at most 10 million), terminals and days simulated, each ``>= 1``.
    start_date : str or datetime.date, default="2026-01-01"
        First simulated day; times are naive UTC.
    drift_start : str, datetime.date or None, default=None
        First day with drift, in ``[start_date, start_date + n_days - 1]``; None: no drift.
    label_delay_days : int, default=7
        Days after which a legitimate label is final, ``>= 1``.
    random_state : int, default=RANDOM_STATE
        Seed, ``>= 0``.

    Returns
    -------
    SimulatedData
        Customers, terminals and transactions (:data:`TRANSACTION_COLUMNS`).

    Raises
    ------
    InvalidParameterError
        Naming a parameter of the wrong type or value.
    """
    args = (n_customers, n_terminals, n_days, start_date, drift_start, label_delay_days)
    cfg = _config("simulate", *args, random_state)
    prof = _build_profiles(cfg)
    days = list(_iter_days(cfg, prof, 0, cfg.n_days))
    transactions = pd.concat(days) if len(days) > 1 else days[0]
    return SimulatedData(prof.customers, prof.terminals, transactions, cfg.params())
