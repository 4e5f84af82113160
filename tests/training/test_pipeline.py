"""The training core: pipeline, split, metrics and their intervals, curves, gate, reference profile."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import ks_2samp
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

from apps.training.pipeline import (
    MAX_CURVE_POINTS,
    assign_bins,
    build_pipeline,
    evaluate,
    feature_schema,
    quality_gate,
    reference_profile,
    split,
    train,
)
from apps.training.synthetic import (
    CATEGORICAL_FEATURES,
    FEATURES,
    LABEL,
    MERCHANT_CATEGORIES,
    NUMERIC_FEATURES,
    generate_transactions,
)

BOOTSTRAP = 100


@pytest.fixture(scope="module")
def transactions():
    return generate_transactions(30_000, seed=3)


@pytest.fixture(scope="module")
def result(transactions):
    return train(transactions, seed=0, bootstrap=BOOTSTRAP)


@pytest.fixture(scope="module")
def small_runs(transactions):
    """Two runs with the same seed on a smaller frame, against a minimum no model reaches."""
    frame = transactions.head(8_000)
    return [train(frame, seed=0, min_auc=0.999, bootstrap=50) for _ in range(2)]


@pytest.fixture(scope="module")
def holdout(transactions):
    return split(transactions, seed=0)[1]


def scored_frame(kind, rows=20_000, seed=5):
    """Labels with scores that separate them imperfectly: continuous, or rounded so that many tie."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.05).astype(np.int8)
    scores = 1 / (1 + np.exp(-rng.normal(-2.5 + 1.5 * y, 1.0)))
    if kind == "tied":
        scores = scores.round(2)
    return y, scores


def as_strings(frame):
    return frame.astype({name: object for name in CATEGORICAL_FEATURES})


def test_the_merchant_embedding_is_logged_data_not_a_model_input(result, transactions):
    from apps.training.synthetic import EMBEDDING_COLUMNS

    assert set(EMBEDDING_COLUMNS) <= set(transactions.columns)
    assert list(result.pipeline.feature_names_in_) == FEATURES
    assert not set(EMBEDDING_COLUMNS) & set(result.profile["features"])


def test_trained_model_separates_fraud_on_the_holdout(result):
    assert result.metrics["roc_auc"] > 0.8
    assert result.gate_passed
    assert result.metrics["n"] == result.holdout_rows == 7_500
    assert result.train_rows == 22_500


def test_holdout_metrics_match_sklearn(result, holdout):
    scores = result.pipeline.predict_proba(holdout[FEATURES])[:, 1]
    y = holdout[LABEL].to_numpy()

    assert result.metrics["roc_auc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert result.metrics["pr_auc"] == pytest.approx(average_precision_score(y, scores), abs=1e-12)
    assert result.metrics["brier"] == pytest.approx(brier_score_loss(y, scores), abs=1e-12)
    assert result.metrics["log_loss"] == pytest.approx(log_loss(y, scores), abs=1e-12)
    assert result.metrics["positive_rate"] == pytest.approx(y.mean())


@pytest.mark.parametrize("kind", ["continuous", "tied"])
def test_ranking_metrics_match_sklearn_with_and_without_ties(kind):
    y, scores = scored_frame(kind)

    metrics = evaluate(y, scores, bootstrap=0)["metrics"]

    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert metrics["pr_auc"] == pytest.approx(average_precision_score(y, scores), abs=1e-12)
    assert metrics["brier"] == pytest.approx(brier_score_loss(y, scores), abs=1e-12)


@pytest.mark.parametrize("kind", ["continuous", "tied"])
def test_ks_is_the_two_sample_ks_statistic_of_fraud_and_legit_scores(kind):
    y, scores = scored_frame(kind)

    ks = evaluate(y, scores, bootstrap=0)["metrics"]["ks"]

    assert ks == pytest.approx(ks_2samp(scores[y == 1], scores[y == 0]).statistic, abs=1e-9)


def test_a_reversed_scorer_mirrors_auc_and_keeps_ks():
    y, scores = scored_frame("continuous")

    forward = evaluate(y, scores, bootstrap=0)["metrics"]
    reversed_ = evaluate(y, 1 - scores, bootstrap=0)["metrics"]

    assert reversed_["roc_auc"] == pytest.approx(1 - forward["roc_auc"], abs=1e-12)
    assert reversed_["ks"] == pytest.approx(forward["ks"], abs=1e-12)


def test_bootstrap_intervals_bracket_the_point_estimates(result):
    assert set(result.confidence_intervals) == {"roc_auc", "pr_auc", "brier", "ks"}
    for name, (low, high) in result.confidence_intervals.items():
        assert low < result.metrics[name] < high, name


def test_bootstrap_intervals_narrow_as_the_holdout_grows():
    y, scores = scored_frame("continuous", rows=40_000)
    small = evaluate(y[:4_000], scores[:4_000], bootstrap=BOOTSTRAP)["confidence_intervals"]
    large = evaluate(y, scores, bootstrap=BOOTSTRAP)["confidence_intervals"]

    for name in ("roc_auc", "pr_auc", "brier", "ks"):
        small_width = small[name][1] - small[name][0]
        large_width = large[name][1] - large[name][0]
        # Width shrinks like 1/sqrt(n): ten times the rows, about a third of the width.
        assert 0.2 < large_width / small_width < 0.5, name


def test_curves_are_bounded_monotone_and_json_serialisable():
    y, scores = scored_frame("continuous", rows=30_000)

    curves = evaluate(y, scores, bootstrap=0)["curves"]

    json.dumps(curves, allow_nan=False)
    roc, pr = curves["roc"], curves["pr"]
    assert 10 < len(roc["fpr"]) == len(roc["tpr"]) <= MAX_CURVE_POINTS
    assert 10 < len(pr["recall"]) == len(pr["precision"]) <= MAX_CURVE_POINTS
    assert (roc["fpr"][0], roc["tpr"][0], roc["fpr"][-1], roc["tpr"][-1]) == (0.0, 0.0, 1.0, 1.0)
    assert np.all(np.diff(roc["fpr"]) >= 0)
    assert np.all(np.diff(roc["tpr"]) >= 0)
    assert np.all(np.diff(pr["recall"]) >= 0)
    assert pr["recall"][-1] == 1.0
    assert pr["precision"][-1] == pytest.approx(y.mean())


def test_calibration_table_covers_every_row(result):
    calibration = result.curves["calibration"]

    assert sum(calibration["count"]) == result.metrics["n"]
    assert (
        len(calibration["mean_predicted"])
        == len(calibration["fraction_positive"])
        == len(calibration["count"])
    )
    assert np.all(np.diff(calibration["mean_predicted"]) > 0)
    # A decent model is roughly calibrated: frauds observed match frauds predicted, overall.
    counts = np.array(calibration["count"])
    predicted = np.dot(counts, calibration["mean_predicted"])
    observed = np.dot(counts, calibration["fraction_positive"])
    assert observed == pytest.approx(result.metrics["positive_rate"] * result.metrics["n"])
    assert predicted == pytest.approx(observed, rel=0.25)


def test_perfect_scorer_gets_full_marks():
    y = np.array([0] * 90 + [1] * 10)
    scores = np.where(y == 1, 0.9, 0.1) + np.linspace(0, 0.05, 100)

    metrics = evaluate(y, scores, bootstrap=0)["metrics"]

    assert metrics["roc_auc"] == 1.0
    assert metrics["pr_auc"] == 1.0
    assert metrics["ks"] == 1.0


def test_constant_scorer_is_no_better_than_chance():
    y = np.array([0] * 90 + [1] * 10)

    evaluation = evaluate(y, np.full(100, 0.3), bootstrap=20)

    assert evaluation["metrics"]["roc_auc"] == 0.5
    assert evaluation["metrics"]["ks"] == 0.0
    assert evaluation["metrics"]["pr_auc"] == pytest.approx(0.1)
    assert evaluation["confidence_intervals"]["roc_auc"] == [0.5, 0.5]
    assert evaluation["curves"]["calibration"]["count"] == [100]


@pytest.mark.parametrize(
    ("labels", "scores", "message"),
    [
        ([0, 0, 0], [0.1, 0.2, 0.3], "both frauds and non-frauds"),
        ([0, 1, 2], [0.1, 0.2, 0.3], "labels must be 0 or 1"),
        ([0, 1, 1], [0.1, 0.2, 1.3], "probabilities"),
        ([0, 1], [0.1, 0.2, 0.3], "2 labels but 3 scores"),
    ],
)
def test_evaluate_rejects_what_it_cannot_measure(labels, scores, message):
    with pytest.raises(ValueError, match=message):
        evaluate(labels, scores)


@pytest.mark.parametrize(
    ("auc", "passed", "reason"),
    [
        (0.912, True, "roc_auc 0.9120 >= 0.75"),
        (0.75, True, "roc_auc 0.7500 >= 0.75"),
        (0.612, False, "roc_auc 0.6120 < 0.75 (minimum)"),
    ],
)
def test_quality_gate_compares_roc_auc_with_the_minimum(auc, passed, reason):
    assert quality_gate({"roc_auc": auc, "pr_auc": 0.99}, min_auc=0.75) == (passed, reason)


def test_quality_gate_fails_a_model_without_roc_auc():
    assert quality_gate({"pr_auc": 0.99}, min_auc=0.75) == (False, "roc_auc missing")


def test_training_fails_the_gate_below_the_minimum(small_runs):
    weak, _ = small_runs

    assert not weak.gate_passed
    assert weak.gate_reason.startswith("roc_auc 0.")
    assert weak.gate_reason.endswith("< 0.999 (minimum)")


def test_split_is_stratified_and_disjoint(transactions):
    train_df, holdout_df = split(transactions, holdout_fraction=0.2, seed=1)

    assert len(holdout_df) == 6_000
    assert len(train_df) + len(holdout_df) == len(transactions)
    assert not set(train_df["transaction_id"]) & set(holdout_df["transaction_id"])
    assert holdout_df[LABEL].sum() == pytest.approx(0.2 * transactions[LABEL].sum(), abs=1)


def test_profile_bins_hold_every_reference_value(result):
    profile = result.profile
    for name, entry in [*profile["features"].items(), ("score", profile["score"])]:
        if entry["kind"] != "numeric":
            continue
        assert entry["count"] == profile["rows"] == result.train_rows, name
        assert sum(entry["bin_counts"]) == entry["count"], name
        assert len(entry["bin_counts"]) == len(entry["bin_edges"]) + 1, name
        assert np.all(np.diff(entry["bin_edges"]) > 0), name
        assert entry["min"] <= entry["quantiles"]["p01"] <= entry["quantiles"]["p99"] <= entry["max"], name


def test_profile_end_bins_catch_production_values_outside_the_reference_range(result):
    entry = result.profile["features"]["amount"]
    beyond = [entry["min"] - 1.0, entry["max"] * 10]

    assert assign_bins(beyond, entry["bin_edges"]).tolist() == [0, len(entry["bin_edges"])]


def test_profile_keeps_a_rare_flag_in_its_own_bin(result, transactions):
    # country_mismatch is mostly 0: its deciles collapse, yet 0s and 1s must stay apart so that a rise
    # in foreign transactions shows up as drift.
    entry = result.profile["features"]["country_mismatch"]
    train_df = split(transactions, seed=0)[0]

    assert sorted(c for c in entry["bin_counts"] if c) == sorted(
        train_df["country_mismatch"].value_counts().tolist()
    )


def test_profile_sample_is_sorted_bounded_and_drawn_from_the_data(result, transactions):
    profile = result.profile
    for name in NUMERIC_FEATURES:
        sample = profile["features"][name]["sample"]
        assert len(sample) == 1_000, name
        assert sample == sorted(sample), name
        assert np.isin(sample, transactions[name].to_numpy(dtype=float)).all(), name
    assert profile["score"]["sample"] == sorted(profile["score"]["sample"])


def test_profile_sample_keeps_everything_when_the_reference_is_small():
    frame = generate_transactions(300, seed=1)

    profile = reference_profile(frame[FEATURES], np.linspace(0, 1, 300), sample_size=1_000)

    assert profile["features"]["amount"]["sample"] == sorted(frame["amount"].tolist())


def test_profile_counts_every_category(result):
    profile = result.profile
    merchants = profile["features"]["merchant_category"]

    assert set(merchants["categories"]) == set(MERCHANT_CATEGORIES)
    for name in CATEGORICAL_FEATURES:
        entry = profile["features"][name]
        assert entry["kind"] == "categorical"
        assert sum(entry["categories"].values()) == entry["count"] == profile["rows"], name


def test_profile_is_strict_json(result):
    text = json.dumps(result.profile, allow_nan=False)

    assert json.loads(text) == result.profile
    assert result.profile["version"] == 1
    assert set(result.profile["features"]) == set(FEATURES)


def test_pipeline_scores_plain_strings_and_unseen_categories(result, holdout):
    features = holdout[FEATURES].head(50)
    strings = as_strings(features)
    strings.iloc[0, strings.columns.get_loc("merchant_category")] = "crypto_exchange"
    strings.iloc[1, strings.columns.get_loc("channel")] = "kiosk"

    from_categoricals = result.pipeline.predict_proba(features)[:, 1]
    from_strings = result.pipeline.predict_proba(strings)[:, 1]

    assert np.all((from_strings >= 0) & (from_strings <= 1))
    np.testing.assert_array_equal(from_strings[2:], from_categoricals[2:])


def test_pipeline_trained_on_strings_matches_pipeline_trained_on_categoricals(transactions):
    frame = transactions.head(5_000)

    on_categoricals = build_pipeline(max_iter=30).fit(frame[FEATURES], frame[LABEL])
    on_strings = build_pipeline(max_iter=30).fit(as_strings(frame[FEATURES]), frame[LABEL])

    np.testing.assert_array_equal(
        on_categoricals.predict_proba(frame[FEATURES])[:, 1],
        on_strings.predict_proba(frame[FEATURES].astype({"channel": "str"}))[:, 1],
    )


def test_training_is_deterministic(small_runs):
    first, again = small_runs

    assert again.metrics == first.metrics
    assert again.confidence_intervals == first.confidence_intervals
    assert again.profile == first.profile
    assert again.params == first.params


def test_params_describe_the_run_in_plain_json(result):
    params = result.params

    assert json.loads(json.dumps(params, allow_nan=False)) == params
    assert params["model"] == "HistGradientBoostingClassifier"
    assert params["random_state"] == params["seed"] == 0
    assert params["rows"] == 30_000
    assert (params["train_rows"], params["holdout_rows"]) == (result.train_rows, result.holdout_rows)
    assert 1 <= params["n_iter"] <= params["max_iter"]


def test_input_example_is_five_holdout_rows_with_string_categories(result, holdout):
    example = result.input_example

    assert list(example.columns) == FEATURES
    assert len(example) == 5
    for name in CATEGORICAL_FEATURES:
        assert not isinstance(example[name].dtype, pd.CategoricalDtype), name
        assert example[name].map(type).eq(str).all(), name
    pd.testing.assert_frame_equal(
        example[NUMERIC_FEATURES], holdout[NUMERIC_FEATURES].head(5).reset_index(drop=True)
    )


def test_feature_schema_types_every_feature_in_order(transactions):
    schema = feature_schema(transactions)

    assert [column["name"] for column in schema] == FEATURES
    types = {column["name"]: column["dtype"] for column in schema}
    assert types["amount"] == types["ip_risk_score"] == "double"
    assert types["hour"] == types["txn_count_24h"] == types["country_mismatch"] == "long"
    assert types["merchant_category"] == types["channel"] == "string"
    assert feature_schema(as_strings(transactions))[-1] == {"name": "channel", "dtype": "string"}
