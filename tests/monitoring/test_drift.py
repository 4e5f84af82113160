"""The drift statistics against scipy, hand-computed cases, properties and simulations (no database)."""

import itertools
import json
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.spatial.distance import jensenshannon

from apps.monitoring import drift


def _sample(rng, kind: str, size: int, shift: float = 0.0) -> np.ndarray:
    if kind == "ties":  # a count or a flag: many equal values
        return rng.integers(0, 6, size).astype(float) + (shift > 0.25)
    if kind == "rounded":
        return np.round(rng.normal(shift, 1.0, size), 1)
    return rng.normal(shift, 1.0, size)


# --------------------------------------------------------------------------------------------- KS


def test_ks_statistic_and_exact_pvalue_equal_scipy_on_many_random_cases():
    rng = np.random.default_rng(20261202)
    for case in range(400):
        kind = ("continuous", "ties", "rounded")[case % 3]
        n, m = int(rng.integers(1, 400)), int(rng.integers(1, 400))
        reference = _sample(rng, kind, n)
        current = _sample(rng, kind, m, shift=float(rng.uniform(0, 0.6)))
        ours = drift.compare(reference, current)
        theirs = stats.ks_2samp(reference, current)
        assert ours.ks == pytest.approx(theirs.statistic, abs=1e-12), (case, n, m)
        assert ours.ks_pvalue == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-14), (case, n, m)


def test_ks_exact_pvalue_at_the_largest_exact_sizes_equals_scipy():
    rng = np.random.default_rng(7)
    for n, m in [(10_000, 10_000), (10_000, 6_001), (2_500, 10_000)]:
        reference, current = rng.normal(size=n), rng.normal(0.03, 1.0, m)
        ours = drift.compare(reference, current)
        theirs = stats.ks_2samp(reference, current)
        assert ours.ks == pytest.approx(theirs.statistic, abs=1e-12)
        assert ours.ks_pvalue == pytest.approx(theirs.pvalue, rel=1e-9)


def test_ks_statistic_is_bitwise_scipy_for_large_samples_and_the_asymptotic_pvalue_agrees():
    rng = np.random.default_rng(11)
    for kind in ("continuous", "ties", "rounded"):
        reference = _sample(rng, kind, 30_000)
        current = _sample(rng, kind, 40_000, shift=0.01)
        ours = drift.compare(reference, current)
        theirs = stats.ks_2samp(reference, current)
        assert ours.ks == theirs.statistic
        assert ours.ks_pvalue == pytest.approx(theirs.pvalue, rel=1e-2)


@pytest.mark.parametrize("z", [1.0, 1.6, 2.5, 4.0])
def test_ks_asymptotic_pvalue_against_scipy_kstwo(z):
    """Equal to scipy's kstwo.sf where scipy is fast; the Maag-Dicaire tail within 1.1% down to 1e-14."""
    n, m = 50_000, 200_000
    en = round(n * m / (n + m))
    d = z / math.sqrt(en)
    assert drift.ks_pvalue(d, n, m) == pytest.approx(float(stats.kstwo.sf(d, en)), rel=1.1e-2)
    if en * d * d < 2.2:
        assert drift.ks_pvalue(d, n, m) == float(stats.kstwo.sf(d, en))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(-3, 3) | st.floats(-2, 2, allow_nan=False), min_size=1, max_size=60),
    st.lists(st.integers(-3, 3) | st.floats(-2, 2, allow_nan=False), min_size=1, max_size=60),
)
def test_ks_equals_scipy_on_generated_samples_with_ties(reference, current):
    ours = drift.compare(np.array(reference, dtype=float), np.array(current, dtype=float))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        theirs = stats.ks_2samp(reference, current)
    assert ours.ks == pytest.approx(theirs.statistic, abs=1e-12)
    if any("Exact calculation unsuccessful" in str(warning.message) for warning in caught):
        # scipy gave up on its exact computation and fell back to the asymptotic value. Seen when D is
        # the smallest value it can take (h = 1 in units of 1/lcm(n, m)): every path leaves the band
        # at its first step, so the exact p-value is 1, which ours gives.
        n, m = len(reference), len(current)
        assert round(ours.ks * (n * m // math.gcd(n, m))) == 1
        assert ours.ks_pvalue == 1.0
    else:
        assert ours.ks_pvalue == pytest.approx(theirs.pvalue, rel=1e-9, abs=1e-14)


def test_ks_is_symmetric_in_its_arguments_and_zero_on_identical_samples():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=300), rng.normal(0.2, 1.0, 500)
    assert drift.compare(a, b).ks == drift.compare(b, a).ks
    same = drift.compare(a, a)
    assert same.ks == 0.0
    assert same.ks_pvalue == 1.0


# --------------------------------------------------------------------------------------------- PSI, JS


def test_psi_hand_computed():
    # shares 0.5/0.5 against 0.25/0.75
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert drift.psi_from_counts([50, 50], [25, 75]) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.2747, abs=1e-4)


def test_psi_epsilon_is_applied_to_both_sides_of_an_empty_bin():
    eps = drift.PSI_EPSILON
    # the current window leaves bin 0 empty, and the reference leaves bin 2 empty
    expected = (eps - 0.5) * math.log(eps / 0.5) + (0.5 - 0.5) * 0 + (0.5 - eps) * math.log(0.5 / eps)
    assert drift.psi_from_counts([10, 10, 0], [0, 10, 10]) == pytest.approx(expected, rel=1e-12)
    assert math.isfinite(drift.psi_from_counts([10, 0], [0, 10]))


def test_js_equals_scipy_jensenshannon_base_2_squared():
    rng = np.random.default_rng(5)
    for _ in range(200):
        size = int(rng.integers(2, 15))
        p = rng.integers(0, 50, size) * (rng.random(size) > 0.2)
        q = rng.integers(0, 50, size) * (rng.random(size) > 0.2)
        p[0] += 1
        q[-1] += 1
        assert drift.js_from_counts(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-12)
    assert drift.js_from_counts([1, 0], [0, 1]) == pytest.approx(1.0)


counts = st.lists(st.integers(min_value=0, max_value=1000), min_size=2, max_size=12)


@settings(max_examples=300, deadline=None)
@given(counts, counts)
def test_psi_and_js_properties(p, q):
    size = min(len(p), len(q))
    p, q = p[:size], q[:size]
    if sum(p) == 0 or sum(q) == 0:
        assert math.isnan(drift.psi_from_counts(p, q))
        return
    psi, js = drift.psi_from_counts(p, q), drift.js_from_counts(p, q)
    assert psi >= 0
    assert 0 <= js <= 1
    assert psi == pytest.approx(drift.psi_from_counts(q, p), rel=1e-9, abs=1e-12)
    assert js == pytest.approx(drift.js_from_counts(q, p), rel=1e-9, abs=1e-12)
    assert drift.psi_from_counts(p, p) == 0
    assert drift.js_from_counts(p, p) == pytest.approx(0, abs=1e-12)


def test_bins_are_reference_quantiles_right_closed_with_open_outer_bins():
    reference = drift.ReferenceBins.from_sample(np.arange(1.0, 11.0), bins=5)  # quintiles 2.8, 4.6, 6.4, 8.2
    np.testing.assert_allclose(reference.edges, [2.8, 4.6, 6.4, 8.2])
    np.testing.assert_array_equal(reference.reference_counts, [2, 2, 2, 2, 2])
    # -100 and 2.8 (on the edge) fall in bin 0, 1e9 in the open last bin, NaN is left out
    np.testing.assert_array_equal(reference.counts([-100.0, 2.8, 2.81, 5.0, 1e9, np.nan]), [2, 1, 1, 0, 1])


def test_bins_agree_with_the_training_reference_profile():
    from apps.training.pipeline import _numeric_profile, assign_bins

    rng = np.random.default_rng(2)
    values = np.concatenate([rng.gamma(2.0, 3.0, 5000), rng.integers(0, 3, 2000)])
    profile = _numeric_profile(values, 10, 100, rng)
    ours = drift.ReferenceBins.from_sample(values, bins=10)
    np.testing.assert_allclose(ours.edges, profile["bin_edges"], rtol=0, atol=0)
    np.testing.assert_array_equal(ours.reference_counts, profile["bin_counts"])
    current = rng.gamma(2.0, 3.5, 3000)
    from_profile = drift.ReferenceBins.from_profile(profile["bin_edges"], profile["bin_counts"])
    np.testing.assert_array_equal(
        from_profile.counts(current),
        np.bincount(assign_bins(current, profile["bin_edges"]), minlength=ours.bins),
    )
    assert from_profile.compare(from_profile.summarise(current)).ks is None  # KS needs the column
    assert (
        from_profile.compare(from_profile.summarise(current)).psi == ours.compare(ours.summarise(current)).psi
    )


# --------------------------------------------------------------------------------------------- merging


def test_chunk_summaries_added_give_exactly_the_whole_window():
    rng = np.random.default_rng(9)
    sample = np.round(rng.normal(size=50_000), 2)
    reference = drift.ReferenceBins.from_sample(sample, bins=10)
    window = np.round(rng.normal(0.05, 1.1, 200_003), 2)
    window[rng.choice(window.size, 100, replace=False)] = np.nan
    whole = reference.summarise(window)
    cuts = [0, 1, 17, 50_000, 50_000, 123_457, window.size]  # uneven, one chunk empty
    parts = [reference.summarise(window[a:b]) for a, b in itertools.pairwise(cuts)]
    merged = parts[0]
    for part in parts[1:]:
        merged = merged + part
    np.testing.assert_array_equal(merged.counts, whole.counts)
    np.testing.assert_array_equal(merged.ks_le, whole.ks_le)
    np.testing.assert_array_equal(merged.ks_lt, whole.ks_lt)
    assert (merged.n, merged.missing) == (whole.n, whole.missing) == (window.size - 100, 100)
    assert reference.compare(merged) == reference.compare(whole)
    result = reference.compare(merged)
    theirs = stats.ks_2samp(sample, window[np.isfinite(window)])
    assert result.ks == theirs.statistic


def test_summaries_of_different_references_do_not_add():
    a = drift.ReferenceBins.from_sample(np.arange(100.0), bins=10)
    b = drift.ReferenceBins.from_sample(np.arange(10.0), bins=4)
    with pytest.raises(ValueError, match="different references"):
        a.summarise([1.0]) + b.summarise([1.0])


# --------------------------------------------------------------------------------------------- sample size


def test_null_psi_matches_the_formula_by_simulation():
    """Mean PSI of same-distribution samples against (B - 1)(1/n + 1/m).

    Under the null PSI * nm/(n+m) is about chi-square(B - 1), whose standard deviation is sqrt(2 (B - 1)):
    over R repetitions the mean's relative standard error is sqrt(2 / (B - 1)) / sqrt(R), 2.1% for B = 10
    and R = 500. Terms of order 1/n^2 add well under 1% at these sizes. A 10% tolerance is about 5
    standard errors: a wrong formula (a factor B instead of B - 1 is already 11% off) fails it.
    """
    rng = np.random.default_rng(42)
    for n, m in [(2000, 2000), (20_000, 1000)]:
        psis = []
        for _ in range(500):
            reference = drift.ReferenceBins.from_sample(rng.normal(size=n), bins=10)
            psis.append(
                drift.psi_from_counts(reference.reference_counts, reference.counts(rng.normal(size=m)))
            )
        expected = drift.psi_null(n, m, 10)
        assert np.mean(psis) == pytest.approx(expected, rel=0.10), (n, m, np.mean(psis), expected)


def test_minimum_window_follows_the_null_psi_quantile():
    thresholds = drift.Thresholds()
    need = thresholds.min_rows_for_psi(100_000, 10)
    # chi2.ppf(0.99, 9) = 21.67: 21.67 (1e-5 + 1/m) <= 0.1  =>  m >= 217.5
    assert need == 218
    assert (
        stats.chi2.ppf(0.99, 9) * (1e-5 + 1 / need) <= 0.1 < stats.chi2.ppf(0.99, 9) * (1e-5 + 1 / (need - 1))
    )
    assert thresholds.min_rows_for_psi(200, 10) is None  # a 200-row reference can never judge PSI 0.1
    assert drift.Thresholds(min_rows_psi=1000).min_rows_for_psi(100_000, 10) == 1000


def test_a_small_window_is_not_enough_data_never_an_alert_even_when_shifted():
    rng = np.random.default_rng(1)
    reference = rng.normal(size=100_000)
    small = drift.compare(reference, rng.normal(3.0, 1.0, 150))
    assert small.psi > 1
    assert small.verdict == drift.NOT_ENOUGH_DATA
    assert "218 needed" in small.reason
    assert drift.compare(reference, rng.normal(3.0, 1.0, 5000)).verdict == drift.DRIFT


def test_verdict_tiers_follow_the_psi_thresholds():
    rng = np.random.default_rng(4)
    reference = drift.ReferenceBins.from_sample(rng.normal(size=100_000), bins=10)
    thresholds = drift.Thresholds(psi_watch=0.1, psi_drift=0.2)
    results = {
        shift: reference.compare(reference.summarise(rng.normal(shift, 1.0, 50_000)), thresholds=thresholds)
        for shift in (0.0, 0.4, 0.55)
    }
    assert [results[s].verdict for s in (0.0, 0.4, 0.55)] == [drift.NO_DRIFT, drift.WATCH, drift.DRIFT]
    assert 0.1 <= results[0.4].psi < 0.2 <= results[0.55].psi
    stricter = drift.Thresholds(psi_watch=0.05, psi_drift=0.1)
    assert reference.compare(
        reference.summarise(rng.normal(0.4, 1.0, 50_000)), thresholds=stricter
    ).verdict == (drift.DRIFT)


def test_a_significant_ks_with_a_large_effect_raises_watch_below_the_psi_line():
    # a shape change the deciles barely see: values moved within their bins
    rng = np.random.default_rng(8)
    base = rng.uniform(0, 1, 100_000)
    reference = drift.ReferenceBins.from_sample(base, bins=2)
    current = np.where(
        rng.uniform(size=60_000) < 0.5, rng.uniform(0.35, 0.5, 60_000), rng.uniform(0.5, 0.65, 60_000)
    )
    result = reference.compare(reference.summarise(current))
    assert result.psi < 0.1
    assert result.ks > 0.1
    assert result.ks_pvalue < 1e-10
    assert result.verdict == drift.WATCH
    assert "KS significant" in result.reason


def test_persistence_k_of_the_last_m_windows():
    D, W, N, X = drift.DRIFT, drift.WATCH, drift.NO_DRIFT, drift.NOT_ENOUGH_DATA
    assert drift.persistent([D, D, D], k=3, m=5)
    assert not drift.persistent([D, D, N, N, N], k=3, m=5)
    assert not drift.persistent([D, D, D, N, N, N, N, N], k=3, m=5)  # the old drifts left the window
    assert drift.persistent([D, X, D, X, X, N, D], k=3, m=5)  # quiet windows neither count nor reset
    assert not drift.persistent([W, W, W], k=3, m=5)
    assert drift.persistent([W, W, D], k=3, m=5, level=drift.WATCH)
    with pytest.raises(ValueError, match="1 <= k <= m"):
        drift.persistent([D], k=4, m=3)


# --------------------------------------------------------------------------------------------- tables


def test_benjamini_hochberg_equals_scipy_and_keeps_missing_entries():
    rng = np.random.default_rng(6)
    pvalues = [*rng.uniform(0, 0.1, 15), 1e-9, 0.5, 1.0]
    ours = drift.benjamini_hochberg([pvalues[0], None, *pvalues[1:], math.nan])
    expected = stats.false_discovery_control(pvalues, method="bh")
    assert ours[1] is None
    assert ours[-1] is None
    np.testing.assert_allclose([q for q in ours if q is not None], expected, rtol=1e-12)
    # by hand: m = 3, sorted 0.01, 0.02, 0.04 -> 0.03, 0.03, 0.04
    np.testing.assert_allclose(drift.benjamini_hochberg([0.04, 0.01, 0.02]), [0.04, 0.03, 0.03])


def test_compare_table_flags_exactly_the_two_drifted_features():
    rng = np.random.default_rng(10)
    names = [f"f{i:02d}" for i in range(20)]
    reference = {name: rng.normal(size=20_000) for name in names}
    current = {name: rng.normal(size=10_000) for name in names}
    current["f03"] = rng.normal(0.6, 1.0, 10_000)
    current["f17"] = rng.normal(0.0, 1.8, 10_000)
    reference["merchant_category"] = rng.choice(["food", "fuel", "travel"], 20_000, p=[0.5, 0.3, 0.2])
    current["merchant_category"] = rng.choice(["food", "fuel", "travel"], 10_000, p=[0.5, 0.3, 0.2])
    results = drift.compare_table(reference, current, bins=10)
    flagged = sorted(name for name, result in results.items() if result.verdict == drift.DRIFT)
    assert flagged == ["f03", "f17"]
    assert results["merchant_category"].kind == "categorical"
    assert all(results[name].verdict == drift.NO_DRIFT for name in results if name not in flagged)
    raw = [results[name].ks_pvalue for name in names]
    np.testing.assert_allclose(
        [results[name].pvalue_adjusted for name in names],
        stats.false_discovery_control([*raw, results["merchant_category"].chi2_pvalue])[:20],
    )
    with pytest.raises(ValueError, match="no current data for: f03"):
        drift.compare_table(reference, {k: v for k, v in current.items() if k != "f03"})


def test_categorical_chi_square_psi_and_unseen_categories():
    reference = ["a"] * 500 + ["b"] * 300 + ["c"] * 200 + [None] * 7
    current = ["a"] * 250 + ["b"] * 300 + ["c"] * 100 + ["new1"] * 30 + ["new2"] * 20 + [float("nan")] * 3
    result = drift.compare_categorical(reference, current)
    built = drift.CategoryBins.from_sample(reference)
    assert built.categories == ("a", "b", "c")
    assert built.labels == ("a", "b", "c", drift.UNSEEN)
    np.testing.assert_array_equal(built.counts(current), [250, 300, 100, 50])  # unseen ones share one bin
    table = np.array([[500, 300, 200, 0], [250, 300, 100, 50]])
    chi2, p, _, _ = stats.chi2_contingency(table, correction=False)
    assert result.chi2 == pytest.approx(chi2, rel=1e-12)
    assert result.chi2_pvalue == pytest.approx(p, rel=1e-9, abs=1e-300)
    assert result.psi == pytest.approx(drift.psi_from_counts([500, 300, 200, 0], [250, 300, 100, 50]))
    assert result.js == pytest.approx(jensenshannon([500, 300, 200, 0], [250, 300, 100, 50], base=2) ** 2)
    assert result.missing_current == 3
    assert result.verdict == drift.DRIFT
    same = drift.compare_categorical(reference, ["a"] * 500 + ["b"] * 300 + ["c"] * 200)
    assert same.psi == 0
    assert same.chi2 == 0
    assert same.verdict == drift.NO_DRIFT
    assert drift.CategoryBins.from_profile({"a": 500, "b": 300, "c": 200}).counts(["c", "zz"]).tolist() == [
        0,
        0,
        1,
        1,
    ]


# ----------------------------------------------------------------------------------- scores, embeddings


def test_prediction_shift_relative_changes_and_sample_size():
    rng = np.random.default_rng(12)
    reference = rng.beta(1, 9, 50_000)
    threshold = float(np.quantile(reference, 0.95))
    same = drift.prediction_shift(reference, rng.beta(1, 9, 20_000), decline_threshold=threshold)
    assert same.verdict == "no shift"
    assert abs(same.mean_change) < 0.02
    moved = drift.prediction_shift(reference, rng.beta(1.3, 9, 20_000), decline_threshold=threshold)
    assert moved.verdict == "shift"
    assert moved.mean_change == pytest.approx(moved.mean_current / moved.mean_reference - 1)
    assert moved.decline_rate_change == pytest.approx(
        moved.decline_rate_current / moved.decline_rate_reference - 1
    )
    assert moved.decline_rate_change > 0.3
    assert (
        drift.prediction_shift(reference, reference[:100], decline_threshold=threshold).verdict
        == drift.NOT_ENOUGH_DATA
    )
    # 600 rows at a 5% decline rate: 30 expected declines, judged; at 0.5% it is only noted
    rare = drift.prediction_shift(
        reference, reference[:600] * 1.0, decline_threshold=float(np.quantile(reference, 0.995))
    )
    assert "too few expected declines" in rare.reason
    assert drift.relative_change(0.0, 0.0) == 0
    assert drift.relative_change(0.0, 0.1) == math.inf


def test_embedding_drift_projections_and_centroid_distance():
    rng = np.random.default_rng(13)
    mixing = rng.normal(size=(16, 16))
    reference = rng.normal(size=(20_000, 16)) @ mixing
    built = drift.EmbeddingReference.from_sample(reference, components=3, bins=10)
    assert built.components.shape == (3, 16)
    assert list(built.explained_variance_ratio) == sorted(built.explained_variance_ratio, reverse=True)
    same = built.compare(built.summarise(rng.normal(size=(10_000, 16)) @ mixing))
    assert same.verdict == drift.NO_DRIFT
    assert abs(same.distance_shift) < 0.02
    # move the data along the first principal component by one of its standard deviations
    moved = rng.normal(size=(10_000, 16)) @ mixing + built.components[0] * math.sqrt(
        built.explained_variance_ratio[0] * np.trace(np.cov(reference.T))
    )
    result = built.compare(built.summarise(moved))
    assert result.verdict == drift.DRIFT
    assert result.components[0].verdict == drift.DRIFT
    assert result.components[0].kind == "pc1"
    assert result.components[0].pvalue == result.components[0].ks_pvalue < 1e-10
    assert result.components[0].psi > result.components[1].psi
    # spread the data out: the centroid distance grows
    spread = built.compare(built.summarise(1.5 * (rng.normal(size=(10_000, 16)) @ mixing)))
    assert spread.distance_shift == pytest.approx(0.5, abs=0.03)
    assert spread.distance.verdict == drift.DRIFT
    halves = built.compare(built.summarise(moved[:3000]) + built.summarise(moved[3000:]))
    assert halves.components == result.components  # counts add exactly
    assert halves.distance == result.distance
    assert halves.distance_mean_current == pytest.approx(
        result.distance_mean_current, rel=1e-12
    )  # a float sum
    table = drift.compare_table({"merchant_embedding": reference}, {"merchant_embedding": moved})
    assert table["merchant_embedding"].verdict == drift.DRIFT


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="no finite values"):
        drift.compare([np.nan, np.inf], [1.0])
    with pytest.raises(ValueError, match="bins must be >= 2"):
        drift.compare([1.0, 2.0], [1.0], bins=1)
    with pytest.raises(ValueError, match="numeric column"):
        drift.compare(np.array(["a", "b"]), ["a"])
    with pytest.raises(ValueError, match="2-D"):
        drift.EmbeddingReference.from_sample(np.ones(5))
    empty = drift.compare(np.arange(1000.0), [])
    assert empty.verdict == drift.NOT_ENOUGH_DATA
    assert empty.ks is None
    assert math.isnan(empty.psi)


@pytest.mark.parametrize("rows", [0, 1, 7, 999, 5000, 20_000])
def test_both_summary_paths_count_what_a_direct_search_counts(rows):
    """A chunk smaller than the reference is searched in it, a larger one the other way: same integers."""
    rng = np.random.default_rng(rows)
    for decimals in (1, 8):  # many ties, then almost none
        reference = drift.ReferenceBins.from_sample(np.round(rng.normal(size=5000), decimals))
        chunk = np.round(rng.normal(0.1, 1.3, rows), decimals)
        summary = reference.summarise(chunk)
        ordered = np.sort(chunk)
        np.testing.assert_array_equal(summary.ks_le, np.searchsorted(ordered, reference.values, side="right"))
        np.testing.assert_array_equal(summary.ks_lt, np.searchsorted(ordered, reference.values, side="left"))


def test_summaries_travel_as_json_and_come_back_equal():
    rng = np.random.default_rng(21)
    numeric = drift.ReferenceBins.from_sample(rng.normal(size=3000))
    categories = drift.CategoryBins.from_sample(rng.choice(["a", "b"], 3000))
    embedding = drift.EmbeddingReference.from_sample(rng.normal(size=(3000, 4)), components=2)
    for built, chunk in [
        (numeric, rng.normal(size=500)),
        (categories, rng.choice(["a", "b", "c"], 500)),
        (embedding, rng.normal(size=(500, 4))),
    ]:
        summary = built.summarise(chunk)
        carried = type(summary).from_dict(json.loads(json.dumps(summary.to_dict())))
        assert built.compare(carried) == built.compare(summary)
