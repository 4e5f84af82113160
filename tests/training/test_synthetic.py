"""The synthetic Hafnium transactions: determinism, fraud rate, signal, velocity features, shifted periods."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from apps.training.synthetic import (
    CATEGORICAL_FEATURES,
    COLUMNS,
    EMBEDDING_COLUMNS,
    EMBEDDING_DIM,
    FEATURES,
    LABEL,
    MERCHANT_CATEGORIES,
    NUMERIC_FEATURES,
    Shift,
    generate_transactions,
)

ROOT = Path(__file__).resolve().parents[2]
HOUR_NS = 3_600 * 10**9
DAY_NS = 24 * HOUR_NS


@pytest.fixture(scope="module")
def reference():
    return generate_transactions(200_000, seed=11)


def merchant_mix(frame):
    return frame["merchant_category"].value_counts(normalize=True).reindex(MERCHANT_CATEGORIES, fill_value=0)


def total_variation(p, q):
    return 0.5 * float(np.abs(p - q).sum())


def test_same_seed_and_arguments_give_an_identical_frame():
    first = generate_transactions(20_000, seed=7, days=10, fraud_rate=0.02, shift=Shift(amount_scale=1.2))
    second = generate_transactions(20_000, seed=7, days=10, fraud_rate=0.02, shift=Shift(amount_scale=1.2))
    pd.testing.assert_frame_equal(first, second, check_exact=True)
    assert (pd.util.hash_pandas_object(first) == pd.util.hash_pandas_object(second)).all()


def test_different_seed_gives_a_different_frame():
    first = generate_transactions(5_000, seed=1)
    second = generate_transactions(5_000, seed=2)
    assert not first["amount"].equals(second["amount"])
    assert not first["event_time"].equals(second["event_time"])


def test_frame_has_the_documented_columns_and_dtypes():
    frame = generate_transactions(1_000, seed=3)
    assert list(frame.columns) == COLUMNS
    assert FEATURES == NUMERIC_FEATURES + CATEGORICAL_FEATURES
    assert set(FEATURES) | set(EMBEDDING_COLUMNS) | {
        LABEL,
        "transaction_id",
        "customer_id",
        "event_time",
    } == set(COLUMNS)
    assert len(EMBEDDING_COLUMNS) == EMBEDDING_DIM == 16
    assert str(frame["event_time"].dtype) == "datetime64[ns, UTC]"
    for column in NUMERIC_FEATURES:
        assert pd.api.types.is_numeric_dtype(frame[column]), column
    for column in CATEGORICAL_FEATURES:
        assert isinstance(frame[column].dtype, pd.CategoricalDtype), column
    assert list(frame["merchant_category"].cat.categories) == list(MERCHANT_CATEGORIES)
    assert list(frame["channel"].cat.categories) == ["pos", "ecommerce", "atm", "mobile"]
    assert set(frame[LABEL].unique()) == {0, 1}
    assert set(frame["country_mismatch"].unique()) == {0, 1}


def test_values_stay_in_their_ranges(reference):
    assert reference["transaction_id"].tolist() == list(range(1, len(reference) + 1))
    assert (reference["amount"] > 0).all()
    assert reference["hour"].between(0, 23).all()
    assert reference["ip_risk_score"].between(0, 1).all()
    assert (reference["device_age_days"] >= 0).all()
    assert (reference["device_age_days"] <= reference["customer_tenure_days"]).all()
    assert (reference["txn_count_1h"] >= 1).all()
    assert (reference["txn_count_24h"] >= reference["txn_count_1h"]).all()


@pytest.mark.parametrize(
    ("start", "first_instant"),
    [
        ("2026-01-01", "2026-01-01T00:00:00Z"),
        ("2026-03-15T13:30:00", "2026-03-15T13:30:00Z"),
        ("2026-01-01T00:00:00+02:00", "2025-12-31T22:00:00Z"),
    ],
)
def test_event_times_are_ordered_utc_instants_within_the_period_and_hour_matches(start, first_instant):
    frame = generate_transactions(20_000, seed=5, start=start, days=7)
    period_start = pd.Timestamp(first_instant)
    assert frame["event_time"].is_monotonic_increasing
    assert frame["event_time"].min() >= period_start
    assert frame["event_time"].max() < period_start + pd.Timedelta(days=7)
    assert (frame["hour"] == frame["event_time"].dt.hour).all()


def test_transactions_are_rarer_at_night(reference):
    share_by_hour = reference["hour"].value_counts(normalize=True)
    assert share_by_hour.loc[[2, 3, 4]].mean() < share_by_hour.loc[[12, 17, 18]].mean() / 5


@pytest.mark.parametrize("fraud_rate", [0.01, 0.015, 0.03])
def test_realized_fraud_rate_lands_close_to_the_target(fraud_rate):
    frame = generate_transactions(200_000, seed=21, fraud_rate=fraud_rate)
    assert frame[LABEL].mean() == pytest.approx(fraud_rate, rel=0.1)


def test_default_fraud_rate_is_realistic(reference):
    assert 0.012 < reference[LABEL].mean() < 0.018


def test_a_boosted_model_learns_the_fraud_signal_but_not_perfectly():
    frame = generate_transactions(50_000, seed=42)
    train, holdout = train_test_split(frame, test_size=0.3, random_state=0, stratify=frame[LABEL])
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=0)
    model.fit(train[FEATURES], train[LABEL])
    auc = roc_auc_score(holdout[LABEL], model.predict_proba(holdout[FEATURES])[:, 1])
    assert 0.8 < auc < 0.99


@pytest.mark.parametrize(
    ("signal", "risky", "safe"),
    [
        ("large amount for the customer", "amount_vs_customer_avg > 3", "amount_vs_customer_avg < 1"),
        ("night", "hour < 6", "hour >= 8"),
        ("country mismatch", "country_mismatch == 1", "country_mismatch == 0"),
        ("ecommerce", "channel == 'ecommerce'", "channel == 'pos'"),
        (
            "risky merchant",
            "merchant_category in ['gambling', 'digital_goods']",
            "merchant_category == 'grocery'",
        ),
        ("new device", "device_age_days < 3", "device_age_days >= 30"),
        ("new customer", "customer_tenure_days < 60", "customer_tenure_days >= 365"),
        ("risky ip", "ip_risk_score > 0.5", "ip_risk_score < 0.1"),
        ("velocity", "txn_count_1h >= 3", "txn_count_1h == 1"),
    ],
)
def test_fraud_is_more_likely_on_the_risky_side_of_each_signal(reference, signal, risky, safe):
    risky_rate = reference.query(risky)[LABEL].mean()
    safe_rate = reference.query(safe)[LABEL].mean()
    assert risky_rate > 1.5 * safe_rate, signal


def brute_force_count(event_ns, window_ns):
    """Per transaction, the same customer's transactions with time in (t - window, t], by pairwise check."""
    times = np.asarray(event_ns)
    return ((times[None, :] > times[:, None] - window_ns) & (times[None, :] <= times[:, None])).sum(axis=1)


def test_velocity_counts_match_a_brute_force_recount():
    frame = generate_transactions(3_000, seed=9, days=3, customers=25)
    event_ns = frame["event_time"].astype("int64")
    expected_1h = pd.Series(0, index=frame.index)
    expected_24h = pd.Series(0, index=frame.index)
    for _, rows in event_ns.groupby(frame["customer_id"]):
        expected_1h[rows.index] = brute_force_count(rows, HOUR_NS)
        expected_24h[rows.index] = brute_force_count(rows, DAY_NS)
    assert frame["txn_count_1h"].max() >= 3, "the frame should exercise bursts, or this test proves little"
    assert (frame["txn_count_1h"] == expected_1h).all()
    assert (frame["txn_count_24h"] == expected_24h).all()


def test_amount_vs_customer_avg_divides_by_one_fixed_average_per_customer(reference):
    implied_average = reference["amount"] / reference["amount_vs_customer_avg"]
    spread = implied_average.groupby(reference["customer_id"]).agg(lambda a: a.max() / a.min() - 1)
    assert spread.max() < 1e-9
    assert implied_average.nunique() > 100


@pytest.mark.parametrize("no_shift", [Shift(), 0.0, 0])
def test_a_zero_shift_reproduces_the_reference_frame(no_shift):
    reference = generate_transactions(10_000, seed=4)
    pd.testing.assert_frame_equal(
        generate_transactions(10_000, seed=4, shift=no_shift), reference, check_exact=True
    )


def test_a_severity_is_the_shift_of_that_severity():
    by_severity = generate_transactions(5_000, seed=4, shift=0.6)
    by_shift = generate_transactions(
        5_000, seed=4, shift=Shift(amount_scale=1.3, merchant_mix=0.6, ip_risk=0.6)
    )
    pd.testing.assert_frame_equal(by_severity, by_shift, check_exact=True)


def test_amount_scale_shift_raises_the_mean_amount_by_that_factor(reference):
    another_reference = generate_transactions(200_000, seed=12)
    shifted = generate_transactions(200_000, seed=12, shift=Shift(amount_scale=1.5))
    assert another_reference["amount"].mean() / reference["amount"].mean() == pytest.approx(1.0, abs=0.05)
    assert shifted["amount"].mean() / reference["amount"].mean() == pytest.approx(1.5, abs=0.08)
    assert shifted["amount_vs_customer_avg"].median() / reference["amount_vs_customer_avg"].median() > 1.4


def test_merchant_mix_shift_moves_the_category_distribution(reference):
    another_reference = generate_transactions(200_000, seed=12)
    shifted = generate_transactions(200_000, seed=12, shift=Shift(merchant_mix=1.0))
    assert total_variation(merchant_mix(another_reference), merchant_mix(reference)) < 0.02
    assert total_variation(merchant_mix(shifted), merchant_mix(reference)) > 0.2
    assert merchant_mix(shifted)["digital_goods"] > 2 * merchant_mix(reference)["digital_goods"]


def test_ip_risk_shift_raises_the_ip_risk_scores(reference):
    shifted = generate_transactions(200_000, seed=12, shift=Shift(ip_risk=1.0))
    assert (shifted["ip_risk_score"] > 0.5).mean() > 3 * (reference["ip_risk_score"] > 0.5).mean()


def test_a_shifted_period_still_lands_on_the_target_fraud_rate():
    shifted = generate_transactions(200_000, seed=13, shift=1.0)
    assert shifted[LABEL].mean() == pytest.approx(0.015, rel=0.1)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"rows": 0}, "rows must be an integer >= 1"),
        ({"rows": -5}, "rows must be an integer >= 1"),
        ({"rows": 2.5}, "rows must be an integer >= 1"),
        ({"fraud_rate": 0.0}, r"fraud_rate must be in the open interval \(0, 0.5\)"),
        ({"fraud_rate": 0.5}, r"fraud_rate must be in the open interval \(0, 0.5\)"),
        ({"fraud_rate": -0.01}, r"fraud_rate must be in the open interval \(0, 0.5\)"),
        ({"days": 0}, "days must be an integer >= 1"),
        ({"customers": 0}, "customers must be an integer >= 1"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"start": "not a date"}, "start must be a datetime or an ISO date string"),
        ({"shift": 1.5}, r"shift severity must be in \[0, 1\]"),
    ],
)
def test_invalid_arguments_raise_value_error(arguments, message):
    with pytest.raises(ValueError, match=message):
        generate_transactions(**{"rows": 100, **arguments})


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"amount_scale": 0.0}, "amount_scale must be > 0"),
        ({"merchant_mix": 1.1}, r"merchant_mix must be in \[0, 1\]"),
        ({"ip_risk": -0.1}, r"ip_risk must be in \[0, 1\]"),
    ],
)
def test_invalid_shift_raises_value_error(arguments, message):
    with pytest.raises(ValueError, match=message):
        Shift(**arguments)


def test_the_generator_imports_no_django():
    code = "import sys, apps.training.synthetic; sys.exit('django' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=False).returncode == 0


def test_merchant_embedding_follows_the_merchant_mix_and_leaves_the_other_columns_unchanged():
    from apps.training.synthetic import MERCHANT_VECTORS, embedding_of

    frame = generate_transactions(20_000, seed=6)
    shifted = generate_transactions(20_000, seed=6, shift=Shift(merchant_mix=1.0))
    vectors = embedding_of(frame)
    assert vectors.shape == (20_000, EMBEDDING_DIM)
    # every row's embedding is one of its own category's merchants
    category = frame["merchant_category"].cat.codes.to_numpy()
    known = MERCHANT_VECTORS[category]  # rows x merchants x dims
    assert (np.abs(known - vectors[:, None, :]).max(axis=2) == 0).any(axis=1).all()
    # the merchant mix moves the embedding's centroid; a period without shift keeps it
    again = embedding_of(generate_transactions(20_000, seed=7))
    assert np.linalg.norm(embedding_of(shifted).mean(0) - vectors.mean(0)) > 3 * np.linalg.norm(
        again.mean(0) - vectors.mean(0)
    )
