"""Synthetic Hafnium card/payment transactions with a fraud label, for a reference or a shifted period."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

LABEL = "is_fraud"

NUMERIC_FEATURES = [
    "amount",
    "amount_vs_customer_avg",
    "hour",
    "country_mismatch",
    "device_age_days",
    "customer_tenure_days",
    "ip_risk_score",
    "txn_count_1h",
    "txn_count_24h",
]
CATEGORICAL_FEATURES = ["merchant_category", "channel"]
FEATURES = NUMERIC_FEATURES + CATEGORICAL_FEATURES

# The merchant's embedding (16 numbers, as a merchant-similarity model would give): logged with each
# transaction for drift monitoring (apps/monitoring), never a model input; one column per dimension so
# that the frame stays flat (Parquet, hashing, equality).
EMBEDDING = "merchant_embedding"
EMBEDDING_DIM = 16
EMBEDDING_COLUMNS = [f"{EMBEDDING}_{i:02d}" for i in range(EMBEDDING_DIM)]

COLUMNS = [
    "transaction_id",
    "customer_id",
    "event_time",
    "amount",
    "merchant_category",
    "channel",
    "country_mismatch",
    "hour",
    "device_age_days",
    "customer_tenure_days",
    "ip_risk_score",
    "txn_count_1h",
    "txn_count_24h",
    "amount_vs_customer_avg",
    *EMBEDDING_COLUMNS,
    LABEL,
]

MERCHANT_CATEGORIES = (
    "grocery",
    "restaurants",
    "fuel",
    "fashion",
    "electronics",
    "travel",
    "digital_goods",
    "gambling",
    "health",
    "entertainment",
    "cash_withdrawal",
)
CHANNELS = ("pos", "ecommerce", "atm", "mobile")

# The reference merchant mix, and the mix a fully shifted period moves towards (more card-not-present
# spending on goods fraudsters like). Each sums to 1.
REFERENCE_MERCHANT_MIX = np.array([0.22, 0.15, 0.10, 0.09, 0.06, 0.05, 0.08, 0.02, 0.07, 0.06, 0.10])
SHIFTED_MERCHANT_MIX = np.array([0.12, 0.10, 0.06, 0.08, 0.14, 0.08, 0.20, 0.07, 0.04, 0.05, 0.06])

# P(channel | merchant category), rows in MERCHANT_CATEGORIES order, columns in CHANNELS order.
CHANNEL_GIVEN_CATEGORY = np.array(
    [
        [0.85, 0.10, 0.00, 0.05],
        [0.80, 0.10, 0.00, 0.10],
        [0.95, 0.00, 0.00, 0.05],
        [0.55, 0.35, 0.00, 0.10],
        [0.40, 0.45, 0.00, 0.15],
        [0.10, 0.65, 0.00, 0.25],
        [0.00, 0.55, 0.00, 0.45],
        [0.05, 0.50, 0.00, 0.45],
        [0.75, 0.15, 0.00, 0.10],
        [0.40, 0.35, 0.00, 0.25],
        [0.00, 0.00, 1.00, 0.00],
    ]
)

# Log-amount offset of each merchant category relative to the customer's base spend.
CATEGORY_AMOUNT_OFFSET = np.array([0.0, -0.2, 0.1, 0.4, 1.2, 1.4, -0.6, 0.6, 0.2, 0.0, 0.8])
AMOUNT_SIGMA = 0.7

# Share of transactions starting in each UTC hour of the day: quiet nights, busy afternoons.
DIURNAL_PROFILE = np.concatenate(
    [
        [0.8, 0.5, 0.4, 0.3, 0.3, 0.5, 1.2, 2.5, 3.8, 4.5, 5.0, 5.6],  # hours 0-11
        [6.2, 6.0, 5.6, 5.5, 5.8, 6.3, 6.6, 6.2, 5.3, 4.2, 2.8, 1.6],  # hours 12-23
    ]
)
NIGHT_HOURS = 6  # hours 0-5

# The latent fraud model: log-odds contributions on top of a calibrated intercept.
CATEGORY_RISK = np.array([-0.6, -0.3, -0.4, 0.2, 1.2, 0.6, 1.5, 1.6, -0.3, 0.0, 0.4])
CHANNEL_RISK = np.array([0.0, 0.9, 0.5, 0.5])
RISK_LOG_AMOUNT_RATIO = 1.0
RISK_NIGHT = 1.3
RISK_COUNTRY_MISMATCH = 1.8
RISK_NEW_DEVICE = 1.6  # device seen for less than NEW_DEVICE_DAYS
RISK_SHORT_TENURE = 1.2  # customer for less than SHORT_TENURE_DAYS
RISK_IP_SCORE = 3.8
RISK_LOG_COUNT_1H = 1.3
RISK_LOG_COUNT_24H = 0.6
# What the features cannot see (fraudster skill, luck); keeps a good model well short of AUC 1.0.
LATENT_NOISE_SD = 0.5
NEW_DEVICE_DAYS = 3
SHORT_TENURE_DAYS = 60

SECONDS_PER_HOUR = 3_600
SECONDS_PER_DAY = 86_400
MEAN_SESSION_GAP_SECONDS = 180.0
NEW_DEVICE_SHARE = 0.05
# P(card country != merchant country) by channel for an average customer, plus a travel surcharge.
ABROAD_BY_CHANNEL = np.array([0.02, 0.10, 0.04, 0.05])
ABROAD_TRAVEL_EXTRA = 0.30
TRAVEL = MERCHANT_CATEGORIES.index("travel")

# Merchants per category, their popularity (Zipf-like) and their embeddings: a category's prototype
# plus the merchant's own offset, drawn once from a fixed seed so every dataset and the simulator's
# traffic share the same merchants.
MERCHANTS_PER_CATEGORY = 40
MERCHANT_POPULARITY = 1.0 / np.arange(1, MERCHANTS_PER_CATEGORY + 1)
_EMBEDDING_RNG = np.random.default_rng(20261203)
MERCHANT_VECTORS = np.round(
    _EMBEDDING_RNG.normal(0.0, 1.0, (len(MERCHANT_CATEGORIES), 1, EMBEDDING_DIM))
    + _EMBEDDING_RNG.normal(0.0, 0.35, (len(MERCHANT_CATEGORIES), MERCHANTS_PER_CATEGORY, EMBEDDING_DIM)),
    4,
)


@dataclass(frozen=True)
class Shift:
    """How a period departs from the reference distribution; the default is no shift at all.

    amount_scale multiplies every amount (the customers' historical averages stay, so
    amount_vs_customer_avg moves too); merchant_mix in [0, 1] blends the reference merchant mix towards
    SHIFTED_MERCHANT_MIX; ip_risk in [0, 1] raises the share of transactions from risky IPs/devices.
    """

    amount_scale: float = 1.0
    merchant_mix: float = 0.0
    ip_risk: float = 0.0

    def __post_init__(self) -> None:
        if not self.amount_scale > 0:
            raise ValueError(f"amount_scale must be > 0, got {self.amount_scale}")
        if not 0.0 <= self.merchant_mix <= 1.0:
            raise ValueError(f"merchant_mix must be in [0, 1], got {self.merchant_mix}")
        if not 0.0 <= self.ip_risk <= 1.0:
            raise ValueError(f"ip_risk must be in [0, 1], got {self.ip_risk}")

    @classmethod
    def of_severity(cls, severity: float) -> Shift:
        """One knob for all three: 0 is the reference, 1 is amounts x1.5, the shifted mix, riskier IPs."""
        if not 0.0 <= severity <= 1.0:
            raise ValueError(f"shift severity must be in [0, 1], got {severity}")
        return cls(amount_scale=1.0 + 0.5 * severity, merchant_mix=severity, ip_risk=severity)

    @property
    def merchant_weights(self) -> np.ndarray:
        return (1.0 - self.merchant_mix) * REFERENCE_MERCHANT_MIX + self.merchant_mix * SHIFTED_MERCHANT_MIX

    @property
    def risky_ip_share(self) -> float:
        return 0.04 + 0.30 * self.ip_risk


def generate_transactions(
    rows: int,
    *,
    seed: int = 0,
    start: datetime | str = "2026-01-01",
    days: int = 30,
    fraud_rate: float = 0.015,
    shift: Shift | float | None = None,
    customers: int | None = None,
) -> pd.DataFrame:
    """Generate `rows` transactions over `days` days from `start` (UTC), ordered by event time.

    The same arguments give the same frame, byte for byte. `shift` is a Shift, a severity in [0, 1]
    (see Shift.of_severity) or None for the reference distribution; the random draws do not depend on
    it, so the same seed with and without a shift describes the same customers and sessions.
    `customers` defaults to about one transaction per customer per day. Each row also carries its
    merchant's embedding (EMBEDDING_COLUMNS: a merchant drawn by popularity within the row's category);
    the merchant mix of a shift moves it too.
    """
    rows, days, customers, start_ts, shift = _validated(rows, seed, start, days, fraud_rate, shift, customers)
    rng = np.random.default_rng(seed)
    span = days * SECONDS_PER_DAY

    # Customers: spending level, account age and usual device at the start of the period, how active
    # they are and how often they pay abroad.
    base_log_amount = rng.normal(3.3, 0.6, customers)
    tenure_at_start = np.floor(rng.gamma(1.2, 500.0, customers)).astype(np.int64)
    device_at_start = np.minimum(tenure_at_start, np.floor(rng.gamma(1.5, 200.0, customers)).astype(np.int64))
    activity = rng.gamma(0.8, 1.0, customers)
    abroad_propensity = rng.gamma(2.0, 0.5, customers)
    # The customer's usual spend, as known from their history before the period (reference mix).
    customer_avg = np.exp(base_log_amount + AMOUNT_SIGMA**2 / 2) * (
        REFERENCE_MERCHANT_MIX @ np.exp(CATEGORY_AMOUNT_OFFSET)
    )

    # Sessions: a customer pays once, sometimes a few times in a row minutes apart.
    sizes = rng.geometric(0.75, rows)
    sessions = int(np.searchsorted(np.cumsum(sizes), rows)) + 1
    sizes = sizes[:sessions]
    sizes[-1] = rows - sizes[:-1].sum()
    session_first_row = np.cumsum(sizes) - sizes
    session_customer = _sample(rng, activity / activity.sum(), sessions)
    session_day = rng.integers(0, days, sessions)
    session_hour = _sample(rng, DIURNAL_PROFILE / DIURNAL_PROFILE.sum(), sessions)
    clock = session_hour * SECONDS_PER_HOUR + rng.integers(0, SECONDS_PER_HOUR, sessions)
    start_clock = start_ts.hour * SECONDS_PER_HOUR + start_ts.minute * 60 + start_ts.second
    session_second = session_day * SECONDS_PER_DAY + (clock - start_clock) % SECONDS_PER_DAY

    session = np.repeat(np.arange(sessions), sizes)
    gap = 1 + np.floor(rng.exponential(MEAN_SESSION_GAP_SECONDS, rows)).astype(np.int64)
    gap[session_first_row] = 0
    elapsed = np.cumsum(gap)
    # A session running past the period's end wraps to its start, so every event stays in the period.
    second = (session_second[session] + elapsed - elapsed[session_first_row][session]) % span
    customer = session_customer[session]

    # Per transaction draws, all made whatever the shift so that shifts change values, not draws.
    u_category = rng.random(rows)
    u_channel = rng.random(rows)
    amount_noise = rng.normal(0.0, AMOUNT_SIGMA, rows)
    u_new_device = rng.random(rows)
    new_device_age = np.floor(rng.exponential(2.0, rows)).astype(np.int64)
    u_abroad = rng.random(rows)
    u_risky_ip = rng.random(rows)
    clean_ip = rng.beta(1.1, 12.0, rows)
    risky_ip = rng.beta(4.0, 3.0, rows)
    latent_noise = rng.normal(0.0, LATENT_NOISE_SD, rows)
    u_fraud = rng.random(rows)
    u_merchant = rng.random(rows)  # drawn last: the columns before the embedding did not change with it

    category = _choose(u_category, shift.merchant_weights)
    channel = (u_channel[:, None] > np.cumsum(CHANNEL_GIVEN_CATEGORY, axis=1)[category, :-1]).sum(axis=1)
    amount = np.round(
        np.exp(base_log_amount[customer] + CATEGORY_AMOUNT_OFFSET[category] + amount_noise)
        * shift.amount_scale,
        2,
    )
    amount = np.maximum(amount, 0.01)
    amount_vs_customer_avg = amount / customer_avg[customer]
    day_index = second // SECONDS_PER_DAY
    customer_tenure_days = tenure_at_start[customer] + day_index
    device_age_days = np.where(
        u_new_device < NEW_DEVICE_SHARE,
        np.minimum(new_device_age, customer_tenure_days),
        device_at_start[customer] + day_index,
    )
    abroad_base = ABROAD_BY_CHANNEL[channel] + np.where(category == TRAVEL, ABROAD_TRAVEL_EXTRA, 0.0)
    country_mismatch = u_abroad < np.minimum(abroad_base * abroad_propensity[customer], 0.9)
    ip_risk_score = np.where(u_risky_ip < shift.risky_ip_share, risky_ip, clean_ip)
    hour = ((start_clock + second) // SECONDS_PER_HOUR) % 24
    txn_count_1h, txn_count_24h = _velocity(customer, second, span, (SECONDS_PER_HOUR, SECONDS_PER_DAY))

    risk = (
        RISK_LOG_AMOUNT_RATIO * np.clip(np.log(amount_vs_customer_avg), -2.0, 4.0)
        + RISK_NIGHT * (hour < NIGHT_HOURS)
        + RISK_COUNTRY_MISMATCH * country_mismatch
        + CATEGORY_RISK[category]
        + CHANNEL_RISK[channel]
        + RISK_NEW_DEVICE * (device_age_days < NEW_DEVICE_DAYS)
        + RISK_SHORT_TENURE * (customer_tenure_days < SHORT_TENURE_DAYS)
        + RISK_IP_SCORE * ip_risk_score
        + RISK_LOG_COUNT_1H * np.log(txn_count_1h)
        + RISK_LOG_COUNT_24H * np.log(txn_count_24h)
        + latent_noise
    )
    intercept = _calibrated_intercept(risk, fraud_rate)
    is_fraud = u_fraud < _sigmoid(intercept + risk)

    merchant = _choose(u_merchant, MERCHANT_POPULARITY)
    embedding = MERCHANT_VECTORS[category, merchant]

    order = np.lexsort((customer, second))
    event_ns = start_ts.value + second[order] * 1_000_000_000
    return pd.DataFrame(
        {
            "transaction_id": np.arange(1, rows + 1, dtype=np.int64),
            "customer_id": customer[order].astype(np.int64) + 1,
            "event_time": pd.to_datetime(event_ns, unit="ns", utc=True),
            "amount": amount[order],
            "merchant_category": pd.Categorical.from_codes(category[order], categories=MERCHANT_CATEGORIES),
            "channel": pd.Categorical.from_codes(channel[order], categories=CHANNELS),
            "country_mismatch": country_mismatch[order].astype(np.int8),
            "hour": hour[order].astype(np.int8),
            "device_age_days": device_age_days[order].astype(np.int32),
            "customer_tenure_days": customer_tenure_days[order].astype(np.int32),
            "ip_risk_score": ip_risk_score[order],
            "txn_count_1h": txn_count_1h[order].astype(np.int32),
            "txn_count_24h": txn_count_24h[order].astype(np.int32),
            "amount_vs_customer_avg": amount_vs_customer_avg[order],
            **{name: embedding[order, i] for i, name in enumerate(EMBEDDING_COLUMNS)},
            LABEL: is_fraud[order].astype(np.int8),
        },
        columns=COLUMNS,
    )


# The direction an injected embedding drift moves every row (a fixed unit vector), and how far at severity 1.
EMBEDDING_DRIFT_DIRECTION = _EMBEDDING_RNG.normal(0.0, 1.0, EMBEDDING_DIM)
EMBEDDING_DRIFT_DIRECTION /= np.linalg.norm(EMBEDDING_DRIFT_DIRECTION)
EMBEDDING_DRIFT_DISTANCE = 3.0
DRIFTABLE = [*FEATURES, EMBEDDING]


def inject_drift(frame: pd.DataFrame, names, severity: float, *, seed: int = 0) -> pd.DataFrame:
    """A copy of `frame` with drift of `severity` (0..1) in the named columns only, the others untouched.

    Unlike a Shift (a coherent change of the world, which moves several features at once), this moves
    exactly the columns named, so a test knows which features a drift run must flag:
    a numeric column moves up by severity x its standard deviation (rounded for integer columns); a 0/1
    flag turns on for a share severity / 2 of the rows; a categorical column takes its rarest category
    in a share severity / 2 of the rows; EMBEDDING moves every row by severity x
    EMBEDDING_DRIFT_DISTANCE along EMBEDDING_DRIFT_DIRECTION.
    """
    unknown = [name for name in names if name not in DRIFTABLE]
    if unknown:
        raise ValueError(f"cannot drift {', '.join(unknown)}: choose among {', '.join(DRIFTABLE)}")
    if not 0.0 <= severity <= 1.0:
        raise ValueError(f"drift severity must be in [0, 1], got {severity!r}")
    rng = np.random.default_rng(seed)
    result = frame.copy()
    for name in names:
        if name == EMBEDDING:
            moved = embedding_of(frame) + severity * EMBEDDING_DRIFT_DISTANCE * EMBEDDING_DRIFT_DIRECTION
            for i, column in enumerate(EMBEDDING_COLUMNS):
                result[column] = np.round(moved[:, i], 4)
        elif name in CATEGORICAL_FEATURES:
            column = frame[name]
            rarest = column.value_counts().sort_values(kind="stable").index[0]
            chosen = rng.random(len(frame)) < severity / 2
            result[name] = column.where(~chosen, rarest)
        elif set(np.unique(frame[name])) <= {0, 1}:
            chosen = rng.random(len(frame)) < severity / 2
            result[name] = np.where(chosen, 1, frame[name]).astype(frame[name].dtype)
        else:
            values = frame[name].to_numpy()
            moved = values + severity * float(values.std())
            if np.issubdtype(values.dtype, np.integer):
                moved = np.round(moved)
            result[name] = moved.astype(values.dtype)
    return result


def embedding_of(frame: pd.DataFrame) -> np.ndarray:
    """The merchant embedding of each row, as a (rows x EMBEDDING_DIM) float array."""
    return frame[EMBEDDING_COLUMNS].to_numpy(dtype=float)


def _validated(rows, seed, start, days, fraud_rate, shift, customers):
    if isinstance(rows, bool) or not isinstance(rows, int | np.integer) or rows < 1:
        raise ValueError(f"rows must be an integer >= 1, got {rows!r}")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(days, bool) or not isinstance(days, int | np.integer) or days < 1:
        raise ValueError(f"days must be an integer >= 1, got {days!r}")
    if not 0.0 < fraud_rate < 0.5:
        raise ValueError(f"fraud_rate must be in the open interval (0, 0.5), got {fraud_rate!r}")
    if customers is None:
        customers = max(1, round(rows / days))
    elif isinstance(customers, bool) or not isinstance(customers, int | np.integer) or customers < 1:
        raise ValueError(f"customers must be an integer >= 1, got {customers!r}")
    try:
        start_ts = pd.Timestamp(start)
    except ValueError as exc:
        raise ValueError(f"start must be a datetime or an ISO date string, got {start!r}") from exc
    if pd.isna(start_ts):
        raise ValueError(f"start must be a datetime or an ISO date string, got {start!r}")
    start_ts = start_ts.tz_localize("UTC") if start_ts.tzinfo is None else start_ts.tz_convert("UTC")
    start_ts = start_ts.floor("s").as_unit("ns")
    if shift is None:
        shift = Shift()
    elif not isinstance(shift, Shift):
        shift = Shift.of_severity(float(shift))
    return int(rows), int(days), int(customers), start_ts, shift


def _sample(rng: np.random.Generator, weights: np.ndarray, size: int) -> np.ndarray:
    return _choose(rng.random(size), weights)


def _choose(u: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Index drawn from `weights` for each uniform in `u` (inverse CDF)."""
    cdf = np.cumsum(weights)
    return np.minimum(np.searchsorted(cdf / cdf[-1], u, side="right"), len(weights) - 1)


def _velocity(
    customer: np.ndarray, second: np.ndarray, span: int, windows: tuple[int, ...]
) -> list[np.ndarray]:
    """Per transaction and window w, the customer's transactions timed in (t - w, t], itself included.

    One sorted key orders transactions by customer then time, with customers spaced further apart than
    any window, so a single searchsorted counts within a customer without crossing into the next.
    """
    stride = span + max(windows) + 1
    key = customer.astype(np.int64) * stride + second
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    upper = np.searchsorted(sorted_key, sorted_key, side="right")
    counts = []
    for window in windows:
        lower = np.searchsorted(sorted_key, sorted_key - window, side="right")
        count = np.empty_like(upper)
        count[order] = upper - lower
        counts.append(count)
    return counts


def _sigmoid(x: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def _calibrated_intercept(risk: np.ndarray, fraud_rate: float) -> float:
    """Intercept whose mean fraud probability over these transactions is fraud_rate (bisection)."""
    low, high = -40.0, 40.0
    for _ in range(60):
        middle = (low + high) / 2
        if _sigmoid(middle + risk).mean() < fraud_rate:
            low = middle
        else:
            high = middle
        if high - low < 1e-7:
            break
    return (low + high) / 2
