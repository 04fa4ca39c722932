"""Simulated card transactions for fraud detection: deterministic, offline, day by day.

The course's only data source. Inspired by the simulator of the handbook
*Reproducible Machine Learning for Credit Card Fraud Detection* (Le Borgne et al.):
customer and terminal profiles on a 100 x 100 grid, customers paying at terminals
near home, and fraud scenarios that per-row rules do not catch. Extended with
merchant categories, channels, daily and weekly rhythms, delayed labels and a
drift scenario.

Generative assumptions
----------------------
Profiles (drawn once from their own seed):

* Customers and terminals sit uniformly at random on a 100 x 100 grid; ``region``
  and ``home_region`` are the grid quadrant (``north_west``, ``north_east``,
  ``south_west``, ``south_east``; north is ``y_location >= 50``).
* A customer's ``mean_amount`` ~ U(5, 100), ``std_amount`` = ``mean_amount`` x U(0.2, 0.5),
  ``mean_tx_per_day`` ~ U(0, 4) (so ~2 transactions per customer per day on average).
* A terminal's ``merchant_category`` is drawn with shares grocery 22 %, restaurant 18 %,
  fuel 12 %, pharmacy 8 %, entertainment 8 %, electronics 7 %, travel 5 %,
  online_retail 20 %. ``online_retail`` terminals are web merchants.
* Each customer shops physically at the (up to 50) nearest non-online terminals
  within a radius of 10 grid units of home, and at least at the 3 nearest ones
  (fallback when the radius holds fewer); online at 3 web merchants drawn at random.

Transactions of day ``d`` (from the seed of day ``d`` only):

* A customer makes Poisson(``mean_tx_per_day`` x weekday factor) transactions; the
  weekday factors (Mon..Sun 0.92, 0.92, 0.95, 1.00, 1.15, 1.10, 0.96) average 1:
  Fridays and Saturdays are busiest.
* The hour follows a fixed daily profile (few transactions between 0 and 6 h, peaks
  at lunch and in the early evening), the second is uniform within the hour.
* A transaction is online with probability 0.20 (at one of the customer's web
  merchants), otherwise at a nearby physical terminal chosen uniformly.
* The amount is log-normal with the customer's ``mean_amount`` and ``std_amount``,
  times a merchant-category factor (pharmacy 0.6, restaurant 0.8, fuel 0.9,
  grocery and entertainment 1.0, online_retail 1.1, electronics 2.5, travel 3),
  rounded to cents (at least 0.01).
* Channel: ``online`` at web merchants; at physical terminals contactless 50 %,
  chip 40 %, swipe 10 %, except that contactless is capped at 100 (above it: chip).

Fraud scenarios (``fraud_scenario``; when several apply the highest id wins):

1. *High amount*: any other transaction above 450 is fraud (the trivial rule;
   0.05-0.2 % of transactions; scenarios 2 and 3 give ~0.4 % each).
2. *Compromised terminal*: terminals are compromised at a steady rate of
   1.6e-4 per terminal per day (a fractional daily quota that accumulates); all
   transactions of a terminal compromised on day ``c`` are fraud on days ``c .. c+27``.
3. *Compromised customer*: customers are compromised at 9e-4 per customer per day;
   on days ``c .. c+13`` each of their transactions is, with probability 1/3, fraud
   with its amount multiplied by 5.
4. *Card-testing bursts* (only from ``drift_start`` on): 1.2e-3 bursts per customer
   per day; a burst is 3-8 small (U(0.5, 10)) online transactions of one customer
   at one web merchant (any terminal if there is none), about a minute apart, at
   any hour.

Compromises are also drawn for the 27 days before the start, so the fraud rate
is steady from day 0. The overall fraud rate is about 1 % without drift.

Labels and drift:

* A fraud label becomes known ``label_available_at`` = ``tx_datetime`` + U(1,
  2 x ``label_delay_days``) days (chargeback); a legitimate one is final after
  exactly ``label_delay_days`` days.
* From ``drift_start`` on, the amounts of the regular traffic (legitimate and
  scenarios 1-3) are multiplied by 1.3, so scenario 1 grows too; the online share
  rises from 0.20 to 0.30 and scenario 4 appears. Days before ``drift_start``
  are identical, row for row, to a run without drift.

Determinism: everything derives from ``np.random.SeedSequence(random_state,
spawn_key=(stream, key))``: one stream for profiles, and per day one stream for the
day's transactions, one for terminal and one for customer compromises, one for
card-testing bursts. Day ``d`` therefore needs only the profiles and the seeds of
days ``d-27 .. d``, so :func:`iter_days` yields exactly the rows of :func:`simulate`.

``transaction_id`` = ``day * 10**8 + rank`` of the transaction within its day
(``day`` counted from ``start_date``, ``rank`` from 0 in time order): unique,
increasing with ``tx_datetime`` and computable day by day.
"""

from __future__ import annotations

import datetime as dt
import numbers
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa

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
_CATEGORY_SHARES = np.array([0.22, 0.18, 0.12, 0.08, 0.08, 0.07, 0.05, 0.20])
_CATEGORY_AMOUNT_FACTORS = np.array([1.0, 0.8, 0.9, 0.6, 1.0, 2.5, 3.0, 1.1])
_ONLINE_CATEGORY = MERCHANT_CATEGORIES.index("online_retail")

CHANNELS = ("chip", "contactless", "swipe", "online")
_CHIP, _CONTACTLESS, _SWIPE, _ONLINE = range(4)
_CONTACTLESS_LIMIT = 100.0

_REGIONS = ("south_west", "south_east", "north_west", "north_east")
_GRID_SIZE = 100.0
_RADIUS = 10.0
_MAX_NEARBY_TERMINALS = 50
_MIN_NEARBY_TERMINALS = 3
_WEB_MERCHANTS_PER_CUSTOMER = 3

_ONLINE_SHARE = 0.20
_ONLINE_SHARE_DRIFT = 0.30
_DRIFT_AMOUNT_FACTOR = 1.3
_WEEKDAY_FACTORS = np.array([0.92, 0.92, 0.95, 1.00, 1.15, 1.10, 0.96])  # Monday first
_HOUR_WEIGHTS = np.array(
    [0.15, 0.10, 0.07, 0.05, 0.05, 0.10, 0.30, 0.60, 0.90, 1.00, 1.10, 1.30]
    + [1.50, 1.30, 1.10, 1.00, 1.10, 1.30, 1.50, 1.50, 1.30, 1.00, 0.60, 0.30]
)
_HOUR_CDF = np.cumsum(_HOUR_WEIGHTS) / _HOUR_WEIGHTS.sum()

_HIGH_AMOUNT_THRESHOLD = 450.0
_TERMINAL_COMPROMISE_RATE = 1.6e-4
_TERMINAL_COMPROMISE_DAYS = 28
_CUSTOMER_COMPROMISE_RATE = 9e-4
_CUSTOMER_COMPROMISE_DAYS = 14
_CUSTOMER_FRAUD_SHARE = 1 / 3
_CUSTOMER_FRAUD_AMOUNT_FACTOR = 5.0
_BURST_RATE = 1.2e-3
_BURST_SIZES = (3, 8)
_BURST_AMOUNTS = (0.5, 10.0)
_BURST_GAP_S = 60.0

_IDS_PER_DAY = 10**8
_MAX_CUSTOMERS = 10**7  # keeps a day below _IDS_PER_DAY transactions
_DAY_S = 86_400
_NS = 10**9

# Seed streams: SeedSequence(random_state, spawn_key=(stream, key)).
_STREAM_CUSTOMERS, _STREAM_TERMINALS, _STREAM_PHASES = 0, 1, 2
_STREAM_DAY, _STREAM_TERMINAL_COMPROMISE, _STREAM_CUSTOMER_COMPROMISE, _STREAM_BURSTS = 3, 4, 5, 6
_DAY_KEY_OFFSET = 1_000  # spawn keys must be >= 0; days before the start are negative


@dataclass(frozen=True, repr=False)
class SimulatedData:
    """The result of :func:`simulate`.

    Attributes
    ----------
    customers : pandas.DataFrame
        One row per customer, columns :data:`CUSTOMER_COLUMNS`.
    terminals : pandas.DataFrame
        One row per terminal, columns :data:`TERMINAL_COLUMNS`.
    transactions : pandas.DataFrame
        Columns :data:`TRANSACTION_COLUMNS`, sorted by ``tx_datetime``, index ``0..n-1``.
    params : dict
        The parameters that produced the data (log them with the run).
    """

    customers: pd.DataFrame
    terminals: pd.DataFrame
    transactions: pd.DataFrame
    params: dict = field(default_factory=dict)

    def __repr__(self) -> str:
        return (
            f"SimulatedData(customers={len(self.customers)}, terminals={len(self.terminals)}, "
            f"transactions={len(self.transactions)}, params={self.params})"
        )


@dataclass(frozen=True)
class _Config:
    """Validated parameters."""

    n_customers: int
    n_terminals: int
    n_days: int
    start: np.datetime64  # datetime64[D]
    drift_day: int | None
    label_delay_days: int
    random_state: int

    def params(self) -> dict:
        """Return the parameters as plain Python values."""
        drift = None if self.drift_day is None else str(self.start + self.drift_day)
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
    log_mu: np.ndarray
    log_sigma: np.ndarray
    tx_rate: np.ndarray
    nearby: np.ndarray  # (n_customers, k) physical terminal ids, nearest first
    nearby_count: np.ndarray  # how many leading entries of `nearby` are usable
    web_merchants: np.ndarray  # (n_customers, 3) online terminal ids, or empty
    terminal_category: np.ndarray
    online_terminals: np.ndarray
    terminal_phase: float
    customer_phase: float


# --------------------------------------------------------------------------- validation


def _check_int(value, name, caller, low, high=None):
    """Return ``value`` as int if it is an int in ``[low, high]``, else raise."""
    expected = f"an int >= {low}" if high is None else f"an int in the range [{low}, {high}]"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"The '{name}' parameter of {caller} must be {expected}. Got {value!r} instead."
        )
    if value < low or (high is not None and value > high):
        raise ValueError(
            f"The '{name}' parameter of {caller} must be {expected}. Got {value!r} instead."
        )
    return int(value)


def _check_date(value, name, caller):
    """Return ``value`` as ``datetime64[D]`` if it is a date or 'YYYY-MM-DD' string, else raise."""
    expected = "a date: a 'YYYY-MM-DD' string, datetime.date or midnight pandas.Timestamp"
    if not isinstance(value, str | dt.date | np.datetime64):
        raise TypeError(
            f"The '{name}' parameter of {caller} must be {expected}. Got {value!r} instead."
        )
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError):
        stamp = None
    if stamp is None or pd.isna(stamp) or stamp.tzinfo is not None or stamp != stamp.normalize():
        raise ValueError(
            f"The '{name}' parameter of {caller} must be {expected} (naive, no time of day). "
            f"Got {value!r} instead."
        )
    return np.datetime64(stamp.date(), "D")


def _validate(
    caller,
    n_customers,
    n_terminals,
    n_days,
    start_date,
    drift_start,
    label_delay_days,
    random_state,
):
    """Check every parameter and return a :class:`_Config`."""
    n_customers = _check_int(n_customers, "n_customers", caller, 1, _MAX_CUSTOMERS)
    n_terminals = _check_int(n_terminals, "n_terminals", caller, 1)
    n_days = _check_int(n_days, "n_days", caller, 1)
    start = _check_date(start_date, "start_date", caller)
    label_delay_days = _check_int(label_delay_days, "label_delay_days", caller, 1)
    random_state = _check_int(random_state, "random_state", caller, 0)
    drift_day = None
    if drift_start is not None:
        drift = _check_date(drift_start, "drift_start", caller)
        drift_day = int((drift - start).astype(int))
        if not 0 <= drift_day < n_days:
            raise ValueError(
                f"The 'drift_start' parameter of {caller} must be None or a date inside the "
                f"simulated period [{start}, {start + n_days - 1}] (start_date .. start_date + "
                f"n_days - 1). Got {drift_start!r} instead."
            )
    return _Config(
        n_customers, n_terminals, n_days, start, drift_day, label_delay_days, random_state
    )


# --------------------------------------------------------------------------- randomness


def _rng(random_state: int, stream: int, key: int = 0) -> np.random.Generator:
    """Return the generator of one (stream, key) child of ``SeedSequence(random_state)``."""
    seq = np.random.SeedSequence(random_state, spawn_key=(stream, key))
    return np.random.Generator(np.random.PCG64(seq))


def _day_rng(random_state: int, stream: int, day: int) -> np.random.Generator:
    """Return the generator of ``stream`` for ``day`` (days before the start allowed)."""
    return _rng(random_state, stream, day + _DAY_KEY_OFFSET)


def _str_array(categories, codes) -> pd.api.extensions.ExtensionArray:
    """Return ``categories[codes]`` as pandas' default ``str`` array, built by pyarrow."""
    values = pa.array(list(categories), type=pa.large_string()).take(pa.array(codes))
    return pd.array(values, dtype=pd.StringDtype("pyarrow", na_value=np.nan))


def _region_codes(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Return the quadrant index of each point (see ``_REGIONS``)."""
    half = _GRID_SIZE / 2
    return (x >= half).astype(np.int64) + 2 * (y >= half).astype(np.int64)


# --------------------------------------------------------------------------- profiles


def _build_profiles(cfg: _Config) -> _Profiles:
    """Draw customer and terminal profiles from their own seeds."""
    from scipy.spatial import cKDTree

    rng_c = _rng(cfg.random_state, _STREAM_CUSTOMERS)
    nc = cfg.n_customers
    cxy = rng_c.uniform(0, _GRID_SIZE, size=(nc, 2))
    mean_amount = rng_c.uniform(5, 100, size=nc)
    std_amount = mean_amount * rng_c.uniform(0.2, 0.5, size=nc)
    tx_rate = rng_c.uniform(0, 4, size=nc)
    web_u = rng_c.random(size=(nc, _WEB_MERCHANTS_PER_CUSTOMER))

    rng_t = _rng(cfg.random_state, _STREAM_TERMINALS)
    nt = cfg.n_terminals
    txy = rng_t.uniform(0, _GRID_SIZE, size=(nt, 2))
    category = np.searchsorted(
        np.cumsum(_CATEGORY_SHARES) / _CATEGORY_SHARES.sum(), rng_t.random(nt), side="right"
    ).astype(np.int64)

    online = np.flatnonzero(category == _ONLINE_CATEGORY)
    physical = np.flatnonzero(category != _ONLINE_CATEGORY)
    if physical.size:
        k = min(_MAX_NEARBY_TERMINALS, physical.size)
        dist, idx = cKDTree(txy[physical]).query(cxy, k=k)
        dist, idx = dist.reshape(nc, k), idx.reshape(nc, k)
        usable = (dist <= _RADIUS) | (np.arange(k) < _MIN_NEARBY_TERMINALS)
        nearby = physical[idx]
        nearby_count = usable.sum(axis=1)  # a prefix: distances are sorted
    else:
        nearby = np.zeros((nc, 0), dtype=np.int64)
        nearby_count = np.zeros(nc, dtype=np.int64)
    web = online[(web_u * online.size).astype(np.int64)] if online.size else web_u[:, :0]

    rng_p = _rng(cfg.random_state, _STREAM_PHASES)
    terminal_phase, customer_phase = rng_p.random(2)

    # log-normal with the customer's mean and standard deviation
    log_sigma2 = np.log1p((std_amount / mean_amount) ** 2)
    customers = pd.DataFrame(
        {
            "customer_id": np.arange(nc, dtype=np.int64),
            "x_location": cxy[:, 0],
            "y_location": cxy[:, 1],
            "mean_amount": mean_amount,
            "std_amount": std_amount,
            "mean_tx_per_day": tx_rate,
            "home_region": _str_array(_REGIONS, _region_codes(cxy[:, 0], cxy[:, 1])),
        }
    )
    terminals = pd.DataFrame(
        {
            "terminal_id": np.arange(nt, dtype=np.int64),
            "x_location": txy[:, 0],
            "y_location": txy[:, 1],
            "merchant_category": _str_array(MERCHANT_CATEGORIES, category),
            "region": _str_array(_REGIONS, _region_codes(txy[:, 0], txy[:, 1])),
        }
    )
    return _Profiles(
        customers=customers,
        terminals=terminals,
        log_mu=np.log(mean_amount) - log_sigma2 / 2,
        log_sigma=np.sqrt(log_sigma2),
        tx_rate=tx_rate,
        nearby=nearby.astype(np.int64),
        nearby_count=nearby_count.astype(np.int64),
        web_merchants=web.astype(np.int64),
        terminal_category=category,
        online_terminals=online,
        terminal_phase=float(terminal_phase),
        customer_phase=float(customer_phase),
    )


# --------------------------------------------------------------------------- compromises


def _daily_quota(rate: float, day: int, phase: float) -> int:
    """Return how many items are compromised on ``day`` at ``rate`` per day (quota accumulates)."""
    return int(np.floor(rate * (day + 1) + phase) - np.floor(rate * day + phase))


def _compromised(cfg, stream, n_items, rate_per_item, phase, window, day) -> np.ndarray:
    """Return the ids compromised on any of days ``day-window+1 .. day``."""
    rate = rate_per_item * n_items
    chosen = []
    for past in range(day - window + 1, day + 1):
        k = min(_daily_quota(rate, past, phase), n_items)
        if k:
            rng = _day_rng(cfg.random_state, stream, past)
            chosen.append(rng.choice(n_items, size=k, replace=False))
    return np.unique(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


# --------------------------------------------------------------------------- one day


def _legit_counts(cfg: _Config, prof: _Profiles, rng: np.random.Generator, day: int):
    """Draw the number of transactions of each customer on ``day`` (first draw of the day)."""
    weekday = int((cfg.start + day).astype("datetime64[D]").astype(object).weekday())
    return rng.poisson(prof.tx_rate * _WEEKDAY_FACTORS[weekday])


def _burst_sizes(cfg: _Config, rng: np.random.Generator):
    """Draw the sizes of the day's card-testing bursts (first draw of the burst stream)."""
    n_bursts = rng.poisson(_BURST_RATE * cfg.n_customers)
    return rng.integers(_BURST_SIZES[0], _BURST_SIZES[1] + 1, size=n_bursts)


def _day_row_count(cfg: _Config, prof: _Profiles, day: int) -> int:
    """Return how many transactions ``day`` has, without generating them."""
    n = int(_legit_counts(cfg, prof, _day_rng(cfg.random_state, _STREAM_DAY, day), day).sum())
    if cfg.drift_day is not None and day >= cfg.drift_day:
        n += int(_burst_sizes(cfg, _day_rng(cfg.random_state, _STREAM_BURSTS, day)).sum())
    return n


def _label_delay_s(cfg: _Config, is_fraud: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Return label delays in seconds: U(1, 2*L) days for fraud, exactly L days otherwise."""
    low, high = _DAY_S, 2 * cfg.label_delay_days * _DAY_S
    fraud_delay = np.rint(low + u * (high - low)).astype(np.int64)
    return np.where(is_fraud, fraud_delay, cfg.label_delay_days * _DAY_S)


def _generate_day(cfg: _Config, prof: _Profiles, day: int, offset: int) -> pd.DataFrame:
    """Return the transactions of ``day`` with index ``offset .. offset+n-1``."""
    drifted = cfg.drift_day is not None and day >= cfg.drift_day
    rng = _day_rng(cfg.random_state, _STREAM_DAY, day)
    counts = _legit_counts(cfg, prof, rng, day)
    cust = np.repeat(np.arange(cfg.n_customers, dtype=np.int64), counts)
    n = cust.size
    hour = np.searchsorted(_HOUR_CDF, rng.random(n), side="right")
    secs = hour * 3600 + rng.integers(0, 3600, size=n)
    u_online, u_terminal, u_channel, u_fraud, u_delay = rng.random((5, n))
    z = rng.standard_normal(n)

    # where: online at a web merchant or at a nearby physical terminal
    share = _ONLINE_SHARE_DRIFT if drifted else _ONLINE_SHARE
    if prof.online_terminals.size == 0:
        share = 0.0
    elif prof.nearby.shape[1] == 0:
        share = 1.0
    is_online = u_online < share
    terminal = np.empty(n, dtype=np.int64)
    on, off = np.flatnonzero(is_online), np.flatnonzero(~is_online)
    web_pick = (u_terminal[on] * _WEB_MERCHANTS_PER_CUSTOMER).astype(np.int64)
    terminal[on] = prof.web_merchants[cust[on], web_pick] if on.size else 0
    c_off = cust[off]
    near_pick = (u_terminal[off] * prof.nearby_count[c_off]).astype(np.int64)
    terminal[off] = prof.nearby[c_off, near_pick] if off.size else 0
    category = prof.terminal_category[terminal]

    # how much, and the frauds that reuse legitimate traffic
    amount = np.exp(prof.log_mu[cust] + prof.log_sigma[cust] * z)
    amount *= _CATEGORY_AMOUNT_FACTORS[category]
    if drifted:
        amount *= _DRIFT_AMOUNT_FACTOR
    bad_terminals = _compromised(
        cfg,
        _STREAM_TERMINAL_COMPROMISE,
        cfg.n_terminals,
        _TERMINAL_COMPROMISE_RATE,
        prof.terminal_phase,
        _TERMINAL_COMPROMISE_DAYS,
        day,
    )
    bad_customers = _compromised(
        cfg,
        _STREAM_CUSTOMER_COMPROMISE,
        cfg.n_customers,
        _CUSTOMER_COMPROMISE_RATE,
        prof.customer_phase,
        _CUSTOMER_COMPROMISE_DAYS,
        day,
    )
    is_s2 = np.isin(terminal, bad_terminals)
    is_s3 = np.isin(cust, bad_customers) & (u_fraud < _CUSTOMER_FRAUD_SHARE)
    amount[is_s3] *= _CUSTOMER_FRAUD_AMOUNT_FACTOR
    amount = np.maximum(np.round(amount, 2), 0.01)
    scenario = np.where(amount > _HIGH_AMOUNT_THRESHOLD, 1, 0).astype(np.int8)
    scenario[is_s2] = 2
    scenario[is_s3] = 3

    channel = np.where(u_channel < 0.5, _CONTACTLESS, np.where(u_channel < 0.9, _CHIP, _SWIPE))
    channel[(channel == _CONTACTLESS) & (amount > _CONTACTLESS_LIMIT)] = _CHIP
    channel[is_online] = _ONLINE
    delay = _label_delay_s(cfg, scenario > 0, u_delay)

    if drifted:
        b = _bursts(cfg, prof, day)
        cust, terminal, secs, amount = (
            np.concatenate([cust, b["customer"]]),
            np.concatenate([terminal, b["terminal"]]),
            np.concatenate([secs, b["secs"]]),
            np.concatenate([amount, b["amount"]]),
        )
        category = prof.terminal_category[terminal]
        channel = np.concatenate([channel, np.full(b["secs"].size, _ONLINE)])
        scenario = np.concatenate([scenario, np.full(b["secs"].size, 4, dtype=np.int8)])
        delay = np.concatenate([delay, b["delay"]])

    order = np.argsort(secs, kind="stable")
    n = order.size
    tx_ns = (cfg.start + day).astype("datetime64[ns]").astype(np.int64) + secs[order] * _NS
    frame = pd.DataFrame(
        {
            "transaction_id": day * _IDS_PER_DAY + np.arange(n, dtype=np.int64),
            "tx_datetime": tx_ns.astype("datetime64[ns]"),
            "customer_id": cust[order],
            "terminal_id": terminal[order],
            "amount": amount[order],
            "merchant_category": _str_array(MERCHANT_CATEGORIES, category[order]),
            "channel": _str_array(CHANNELS, channel[order]),
            "is_fraud": (scenario[order] > 0).astype(np.int8),
            "fraud_scenario": scenario[order],
            "label_available_at": (tx_ns + delay[order] * _NS).astype("datetime64[ns]"),
        },
        index=pd.RangeIndex(offset, offset + n),
    )
    return frame


def _bursts(cfg: _Config, prof: _Profiles, day: int) -> dict:
    """Draw the day's card-testing bursts (scenario 4) from their own stream."""
    rng = _day_rng(cfg.random_state, _STREAM_BURSTS, day)
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
    secs = np.minimum(np.repeat(start, sizes) + within, _DAY_S - 1)
    amount = np.round(rng.uniform(*_BURST_AMOUNTS, size=total), 2)
    delay = _label_delay_s(cfg, np.ones(total, dtype=bool), rng.random(total))
    return {
        "customer": np.repeat(customer, sizes).astype(np.int64),
        "terminal": np.repeat(terminal, sizes).astype(np.int64),
        "secs": secs,
        "amount": amount,
        "delay": delay,
    }


# --------------------------------------------------------------------------- public API


def simulate_profiles(
    n_customers: int = 1000,
    n_terminals: int = 300,
    random_state: int = RANDOM_STATE,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Return only the customer and terminal profiles :func:`simulate` would use.

    Handy with :func:`iter_days`, which yields transactions only. Profiles do not
    depend on the period, drift or label delay.

    Parameters
    ----------
    n_customers : int, default=1000
        Number of customers, in ``[1, 10_000_000]``.
    n_terminals : int, default=300
        Number of terminals, ``>= 1``.
    random_state : int, default=RANDOM_STATE
        Seed, ``>= 0``.

    Returns
    -------
    customers, terminals : pandas.DataFrame
        Equal to ``simulate(...).customers`` and ``simulate(...).terminals``.

    Raises
    ------
    TypeError, ValueError
        If a parameter has the wrong type or value; the message names it.

    Examples
    --------
    >>> customers, terminals = simulate_profiles(n_customers=10, n_terminals=5)
    >>> len(customers), len(terminals)
    (10, 5)
    """
    cfg = _validate(
        "simulate_profiles", n_customers, n_terminals, 1, "2026-01-01", None, 1, random_state
    )
    prof = _build_profiles(cfg)
    return prof.customers, prof.terminals


def iter_days(
    n_customers: int = 1000,
    n_terminals: int = 300,
    n_days: int = 60,
    start_date: str | dt.date = "2026-01-01",
    drift_start: str | dt.date | None = None,
    label_delay_days: int = 7,
    random_state: int = RANDOM_STATE,
    start_day: int = 0,
    end_day: int | None = None,
) -> Iterator[pd.DataFrame]:
    """Return an iterator over the transactions of :func:`simulate`, one day at a time.

    Memory stays at one day of transactions, so data sets of tens of millions of
    rows can be written day by day. ``pd.concat(list(iter_days(**params)))`` equals
    ``simulate(**params).transactions``, index included (the index continues across
    days; for ``start_day > 0`` the earlier days are counted, not generated).

    Parameters
    ----------
    n_customers, n_terminals, n_days, start_date, drift_start, label_delay_days, random_state
        As in :func:`simulate`.
    start_day : int, default=0
        First day to yield, counted from ``start_date``; in ``[0, n_days - 1]``.
    end_day : int or None, default=None
        Day to stop before (exclusive), in ``[start_day + 1, n_days]``; ``None`` means ``n_days``.

    Returns
    -------
    iterator of pandas.DataFrame
        One frame per day, columns :data:`TRANSACTION_COLUMNS`, sorted by
        ``tx_datetime``. A day may be empty for tiny populations.

    Raises
    ------
    TypeError, ValueError
        If a parameter has the wrong type or value; the message names it. Raised
        by the call itself, before any day is generated.

    Examples
    --------
    >>> sizes = [len(day) for day in iter_days(n_customers=50, n_days=3)]
    >>> len(sizes)
    3
    """
    cfg = _validate(
        "iter_days",
        n_customers,
        n_terminals,
        n_days,
        start_date,
        drift_start,
        label_delay_days,
        random_state,
    )
    start_day = _check_int(start_day, "start_day", "iter_days", 0, cfg.n_days - 1)
    if end_day is None:
        end_day = cfg.n_days
    end_day = _check_int(end_day, "end_day", "iter_days", start_day + 1, cfg.n_days)
    return _iter_days(cfg, _build_profiles(cfg), start_day, end_day)


def _iter_days(cfg: _Config, prof: _Profiles, start_day: int, end_day: int):
    """Yield days ``start_day .. end_day-1`` with a global running index."""
    offset = sum(_day_row_count(cfg, prof, d) for d in range(start_day))
    for day in range(start_day, end_day):
        frame = _generate_day(cfg, prof, day, offset)
        offset += len(frame)
        yield frame


def simulate(
    n_customers: int = 1000,
    n_terminals: int = 300,
    n_days: int = 60,
    start_date: str | dt.date = "2026-01-01",
    drift_start: str | dt.date | None = None,
    label_delay_days: int = 7,
    random_state: int = RANDOM_STATE,
) -> SimulatedData:
    """Simulate card transactions with fraud, deterministically.

    The defaults give ~120k transactions (1000 customers x ~2 per day x 60 days)
    with ~1 % fraud, in well under a second. Generative assumptions, in short (the
    module docstring has the numbers):

    1. Customers and terminals lie uniformly on a 100 x 100 grid; a customer has a
       log-normal spending profile (``mean_amount``, ``std_amount``) and a
       Poisson rate ``mean_tx_per_day`` ~ U(0, 4).
    2. Customers pay at physical terminals within radius 10 of home (at least the 3
       nearest) or, 20 % of the time, online at 3 fixed web merchants.
    3. More transactions on Fridays and Saturdays, few at night.
    4. Merchant categories scale amounts (travel x3, electronics x2.5, pharmacy x0.6);
       contactless only up to 100; online_retail is always channel ``online``.
    5. Fraud: (1) amount > 450; (2) compromised terminals: all transactions for 28
       days; (3) compromised customers: 1/3 of transactions for 14 days, amount x5;
       (4) after ``drift_start``: bursts of 3-8 small online transactions.
    6. Fraud labels arrive after U(1, 2 x ``label_delay_days``) days; legitimate
       labels are final after ``label_delay_days``.
    7. From ``drift_start`` on: legitimate amounts x1.3, online share 0.20 -> 0.30,
       scenario 4. Earlier days are identical to a run without drift.

    Parameters
    ----------
    n_customers : int, default=1000
        Number of customers, in ``[1, 10_000_000]``.
    n_terminals : int, default=300
        Number of terminals, ``>= 1``.
    n_days : int, default=60
        Number of simulated days, ``>= 1``.
    start_date : str or datetime.date, default="2026-01-01"
        First simulated day, ``'YYYY-MM-DD'``. Times are naive UTC.
    drift_start : str, datetime.date or None, default=None
        First day with drift, inside ``[start_date, start_date + n_days - 1]``;
        ``None`` for no drift.
    label_delay_days : int, default=7
        Days after which a legitimate label is final, ``>= 1``; fraud labels take
        U(1, 2 x ``label_delay_days``) days.
    random_state : int, default=RANDOM_STATE
        Seed, ``>= 0``. Same parameters, same data.

    Returns
    -------
    SimulatedData
        ``customers`` (:data:`CUSTOMER_COLUMNS`: ``customer_id`` int64, locations,
        ``mean_amount``, ``std_amount``, ``mean_tx_per_day`` float64, ``home_region``
        str), ``terminals`` (:data:`TERMINAL_COLUMNS`: ``terminal_id`` int64,
        locations, ``merchant_category`` and ``region`` str), ``transactions``
        sorted by ``tx_datetime`` with index ``0..n-1`` and columns:

        - ``transaction_id`` int64: ``day * 10**8 + rank within the day``;
        - ``tx_datetime`` datetime64[ns], naive UTC, second resolution;
        - ``customer_id``, ``terminal_id`` int64;
        - ``amount`` float64, cents, > 0;
        - ``merchant_category`` str, one of :data:`MERCHANT_CATEGORIES`;
        - ``channel`` str, one of :data:`CHANNELS`;
        - ``is_fraud`` int8, 0/1;
        - ``fraud_scenario`` int8, a key of :data:`FRAUD_SCENARIOS` (0 = legitimate);
        - ``label_available_at`` datetime64[ns], always after ``tx_datetime``.

        and ``params``, the parameters as a dict.

    Raises
    ------
    TypeError
        If a parameter has the wrong type, e.g. ``n_days=2.5``.
    ValueError
        If a parameter is out of range or ``drift_start`` is outside the period.

    See Also
    --------
    iter_days : the same transactions, one day at a time.

    Examples
    --------
    >>> data = simulate(n_customers=100, n_terminals=30, n_days=7)
    >>> list(data.transactions.columns) == list(TRANSACTION_COLUMNS)
    True
    >>> bool(data.transactions["transaction_id"].is_monotonic_increasing)
    True
    """
    cfg = _validate(
        "simulate",
        n_customers,
        n_terminals,
        n_days,
        start_date,
        drift_start,
        label_delay_days,
        random_state,
    )
    prof = _build_profiles(cfg)
    days = list(_iter_days(cfg, prof, 0, cfg.n_days))
    transactions = pd.concat(days) if len(days) > 1 else days[0]
    return SimulatedData(
        customers=prof.customers,
        terminals=prof.terminals,
        transactions=transactions,
        params=cfg.params(),
    )
