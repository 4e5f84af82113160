"""Canary analysis core: window statistics, each metric's verdicts, and the Argo-style limits."""

import math

import numpy as np
import pytest

from apps.deployments.analysis import (
    DEFAULT_METRICS,
    Comparator,
    Measurement,
    MetricSpec,
    Phase,
    PolicyError,
    Verdict,
    WindowStats,
    assess,
    assess_step,
    measure,
    measure_all,
    metrics_from_policy,
    summarise,
    summarise_by_version,
    tally,
)

# One letter per verdict keeps the measurement sequences readable: S, F, N (inconclusive: no judgement), E.
S, F, N, E = Verdict.SUCCESSFUL, Verdict.FAILED, Verdict.INCONCLUSIVE, Verdict.ERROR


def window(requests=1000, errors=0, fallbacks=0, p99=20.0, score_mean=0.2, scored=None) -> WindowStats:
    scored = requests - errors - fallbacks if scored is None else scored
    return WindowStats(
        requests=requests,
        errors=errors,
        fallbacks=fallbacks,
        latency_count=requests,
        latency_p50_ms=p99 / 2 if requests else None,
        latency_p99_ms=p99 if requests else None,
        scored=scored,
        score_sum=score_mean * scored,
    )


def spec(metric="error_rate", **overrides) -> MetricSpec:
    base = {d.name: d for d in DEFAULT_METRICS}[metric]
    return MetricSpec(**{**base.as_dict(), **overrides})


def history(metric: str, *verdicts: Verdict) -> list[Measurement]:
    return [Measurement(metric=metric, verdict=v, value=None, threshold=0.0) for v in verdicts]


# --- summarise ----------------------------------------------------------------------------------------


def test_summarise_counts_errors_fallbacks_and_model_scores():
    stats = summarise(
        latencies_ms=[5.0, 6.0, 7.0, 300.0, 8.0],
        statuses=["ok", "ok", "error", "fallback", "ok"],
        fallbacks=[False, False, False, True, False],
        scores=[0.1, 0.3, math.nan, 0.99, 0.2],
    )
    assert (stats.requests, stats.errors, stats.fallbacks) == (5, 1, 1)
    assert stats.error_rate == pytest.approx(0.2)
    assert stats.fallback_share == pytest.approx(0.2)
    # The error and the rules' fallback score are not the model's answers.
    assert stats.scored == 3
    assert stats.score_mean == pytest.approx(0.2)
    assert stats.latency_p99_ms == 300.0


def test_summarise_percentiles_are_nearest_rank_observed_latencies():
    latencies = np.arange(1, 1001, dtype=float)[::-1]  # 1000 .. 1, unsorted on purpose
    n = latencies.size
    stats = summarise(latencies, np.full(n, "ok"), np.zeros(n, bool), np.full(n, 0.5))
    assert stats.latency_p99_ms == 990.0
    assert stats.latency_p50_ms == 500.0
    assert stats.latency_count == 1000


def test_summarise_small_window_p99_is_its_worst_latency():
    stats = summarise([12.0, 3.0, 7.0], ["ok"] * 3, [False] * 3, [0.1] * 3)
    assert stats.latency_p99_ms == 12.0


def test_summarise_leaves_non_finite_latencies_out_of_percentiles_but_counts_the_request():
    stats = summarise([math.nan, 4.0, math.inf], ["error", "ok", "ok"], [False] * 3, [0.0, 0.4, 0.5])
    assert stats.requests == 3
    assert stats.latency_count == 1
    assert stats.latency_p99_ms == 4.0


def test_summarise_of_an_empty_window_has_no_rates():
    stats = summarise([], [], [], [])
    assert stats == WindowStats()
    assert stats.error_rate is None
    assert stats.fallback_share is None
    assert stats.score_mean is None
    assert stats.latency_p99_ms is None


def test_summarise_refuses_columns_of_different_lengths():
    with pytest.raises(ValueError, match="of equal length"):
        summarise([1.0, 2.0], ["ok"], [False, False], [0.1, 0.2])


def test_summarise_by_version_equals_summarise_on_each_version():
    rng = np.random.default_rng(7)
    n = 5000
    versions = rng.choice([3, 4], size=n, p=[0.9, 0.1])
    latencies = rng.gamma(2.0, 5.0, size=n)
    statuses = rng.choice(["ok", "error", "fallback"], size=n, p=[0.97, 0.01, 0.02])
    fallbacks = statuses == "fallback"
    scores = rng.random(n)
    grouped = summarise_by_version(versions, latencies, statuses, fallbacks, scores)
    assert set(grouped) == {3, 4}
    for number, stats in grouped.items():
        rows = versions == number
        assert stats == summarise(latencies[rows], statuses[rows], fallbacks[rows], scores[rows])
    assert sum(s.requests for s in grouped.values()) == n


def test_window_stats_as_dict_carries_the_rates():
    record = window(requests=200, errors=2).as_dict()
    assert record["error_rate"] == pytest.approx(0.01)
    assert record["requests"] == 200


# --- measure: each metric, each verdict ---------------------------------------------------------------


def test_default_metrics_are_the_issue_slos():
    defaults = {m.name: (m.comparator, m.threshold) for m in DEFAULT_METRICS}
    assert defaults == {
        "error_rate": (Comparator.LE, 0.001),
        "latency_p99_ms": (Comparator.LE, 100.0),
        "fallback_share": (Comparator.LE, 0.01),
        "score_shift": (Comparator.LE, 0.10),
    }


@pytest.mark.parametrize(
    ("name", "canary", "verdict", "value"),
    [
        ("error_rate", window(requests=1000, errors=1), S, 0.001),
        ("error_rate", window(requests=1000, errors=2), F, 0.002),
        ("latency_p99_ms", window(p99=100.0), S, 100.0),
        ("latency_p99_ms", window(p99=100.5), F, 100.5),
        ("fallback_share", window(requests=1000, fallbacks=10), S, 0.01),
        ("fallback_share", window(requests=1000, fallbacks=11), F, 0.011),
        ("score_shift", window(score_mean=0.21), S, 0.05),
        ("score_shift", window(score_mean=0.15), F, 0.25),
    ],
)
def test_each_metric_passes_at_its_threshold_and_fails_past_it(name, canary, verdict, value):
    result = measure(spec(name), canary, window(score_mean=0.2))
    assert result.verdict is verdict
    assert result.value == pytest.approx(value)
    assert result.threshold == spec(name).threshold
    assert result.metric == name
    assert result.canary_requests == canary.requests


@pytest.mark.parametrize("name", ["error_rate", "latency_p99_ms", "fallback_share", "score_shift"])
def test_fewer_requests_than_the_minimum_is_inconclusive_even_when_everything_fails(name):
    # 99 requests, every one an error, slow and fallback: still too few to judge.
    bad = window(requests=99, errors=99, fallbacks=99, p99=5000.0, scored=0)
    result = measure(spec(name, min_samples=100), bad, window())
    assert result.verdict is N
    assert result.value is None
    assert "minimum sample 100" in result.message


def test_exactly_the_minimum_sample_is_measured():
    result = measure(spec("error_rate", min_samples=100), window(requests=100, errors=1), window())
    assert result.verdict is F
    assert result.value == pytest.approx(0.01)


def test_score_shift_needs_the_minimum_sample_on_the_stable_side_too():
    result = measure(spec("score_shift", min_samples=50), window(), window(requests=49))
    assert result.verdict is N
    assert "stable model answers" in result.message


def test_score_shift_against_a_zero_stable_mean_is_inconclusive_not_a_division_by_zero():
    result = measure(spec("score_shift"), window(score_mean=0.1), window(score_mean=0.0))
    assert result.verdict is N
    assert measure(spec("score_shift"), window(score_mean=0.0), window(score_mean=0.0)).verdict is S


def test_score_shift_counts_only_the_models_answers():
    # Half the canary's answers are fallbacks with the rules' score: the model's own mean is what shifts.
    n = 400
    canary = summarise(
        np.full(n, 10.0),
        np.array(["ok", "fallback"] * (n // 2)),
        np.array([False, True] * (n // 2)),
        np.array([0.2, 0.9] * (n // 2)),
    )
    assert measure(spec("score_shift"), canary, window(score_mean=0.2)).value == pytest.approx(0.0)


def fraud_like_scores(rng, n: int, *, scale: float = 1.0, high_share: float = 0.015) -> np.ndarray:
    """Scores shaped like a fraud model's: most near 0, a few (the fraud-like transactions) near 1."""
    high = rng.random(n) < high_share
    return np.where(high, rng.uniform(0.6, 1.0, n), rng.beta(1.2, 300.0, n)) * scale


def with_scores(scores: np.ndarray) -> WindowStats:
    n = scores.size
    return WindowStats(
        requests=n,
        latency_count=n,
        latency_p50_ms=1.0,
        latency_p99_ms=2.0,
        scored=n,
        score_sum=float(scores.sum()),
        scores=scores,
    )


def test_a_score_shift_by_chance_in_a_small_canary_passes():
    # 28 canary answers from the stable's own distribution, none of them one of the rare high scores
    # (two canaries in three look like this): the mean is far under the stable's, by chance alone.
    rng = np.random.default_rng(5)
    stable = fraud_like_scores(rng, 566)
    canary = fraud_like_scores(rng, 28, high_share=0.0)
    result = measure(spec("score_shift", min_samples=25), with_scores(canary), with_scores(stable))
    assert result.value > 0.5  # the point value is over the 10% threshold...
    assert result.verdict is S  # ...but the two samples do not differ beyond chance
    assert "not met; within chance: Mann-Whitney p" in result.message


def test_a_model_that_scores_differently_throughout_fails_on_a_small_canary():
    # A version trained on another world scores every transaction lower: its ranks give it away.
    rng = np.random.default_rng(5)
    stable = fraud_like_scores(rng, 566)
    canary = fraud_like_scores(rng, 28, scale=0.2)
    result = measure(spec("score_shift", min_samples=25), with_scores(canary), with_scores(stable))
    assert result.verdict is F
    assert result.value > 0.1
    assert "scores differ: Mann-Whitney p" in result.message


def test_a_score_shift_within_the_threshold_passes_without_the_chance_check():
    rng = np.random.default_rng(6)
    stable = fraud_like_scores(rng, 5000)
    result = measure(spec("score_shift"), with_scores(stable * 1.05), with_scores(stable))
    assert result.verdict is S
    assert result.value == pytest.approx(0.05)
    assert result.message == "0.05 <= 0.1"


def test_window_scores_stay_out_of_the_stored_record():
    record = with_scores(np.array([0.1, 0.3])).as_dict()
    assert "scores" not in record
    assert record["score_mean"] == pytest.approx(0.2)


def test_a_metric_source_that_raised_is_an_error_measurement():
    result = measure(spec("error_rate"), ConnectionError("redis down"), ConnectionError("redis down"))
    assert result.verdict is E
    assert result.value is None
    assert "ConnectionError: redis down" in result.message


def test_measure_all_turns_a_failing_reader_into_one_error_per_metric():
    def reader():
        raise TimeoutError("database timed out")

    results = measure_all(DEFAULT_METRICS, reader)
    assert [r.metric for r in results] == [m.name for m in DEFAULT_METRICS]
    assert {r.verdict for r in results} == {E}
    assert all("database timed out" in r.message for r in results)


def test_measure_all_reads_the_windows_once_and_measures_every_metric():
    calls = []

    def reader():
        calls.append(1)
        return window(requests=1000, errors=5), window()

    results = {r.metric: r.verdict for r in measure_all(DEFAULT_METRICS, reader)}
    assert calls == [1]
    assert results == {"error_rate": F, "latency_p99_ms": S, "fallback_share": S, "score_shift": S}


def test_comparators_hold_both_ways():
    ge = spec("error_rate", comparator=">=", threshold=0.5)
    assert ge.comparator is Comparator.GE
    assert measure(ge, window(requests=100, errors=50), window()).verdict is S
    assert measure(ge, window(requests=100, errors=49), window()).verdict is F
    lt = spec("latency_p99_ms", comparator="<", threshold=100.0)
    assert measure(lt, window(p99=100.0), window()).verdict is F
    gt = spec("latency_p99_ms", comparator=">", threshold=1.0)
    assert measure(gt, window(p99=1.5), window()).verdict is S


# --- policy validation --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "accuracy"}, "name: unknown metric 'accuracy'"),
        ({"name": ["error_rate"]}, "name: unknown metric ['error_rate']"),
        ({"comparator": "=="}, "error_rate.comparator: '==' is not one of"),
        ({"threshold": -0.1}, "error_rate.threshold: must be >= 0"),
        ({"threshold": math.nan}, "error_rate.threshold: must be a finite number"),
        ({"threshold": "0.1"}, "error_rate.threshold: must be a finite number"),
        ({"min_samples": 0}, "error_rate.min_samples: must be a whole number >= 1"),
        ({"min_samples": True}, "error_rate.min_samples: must be a whole number >= 1"),
        ({"required_successes": 0}, "error_rate.required_successes: must be a whole number >= 1"),
        ({"failure_limit": -1}, "error_rate.failure_limit: must be a whole number >= 0"),
        ({"inconclusive_limit": 1.5}, "error_rate.inconclusive_limit: must be a whole number >= 0"),
        ({"consecutive_error_limit": -2}, "error_rate.consecutive_error_limit: must be a whole number >= 0"),
    ],
)
def test_invalid_metric_specs_are_refused_naming_the_field(overrides, message):
    with pytest.raises(PolicyError) as refused:
        spec("error_rate", **overrides)
    assert message in str(refused.value)


def test_metric_specs_round_trip_through_policy_json():
    data = [m.as_dict() for m in DEFAULT_METRICS]
    assert metrics_from_policy(data) == list(DEFAULT_METRICS)
    assert metrics_from_policy(None) == list(DEFAULT_METRICS)


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ([], "metrics", "at least one metric"),
        ({"name": "error_rate"}, "metrics", "must be a list"),
        ("error_rate", "metrics", "must be a list"),
        ([42], "metrics", "each metric is an object"),
        ([{"comparator": "<=", "threshold": 1}], "name", "needs a name"),
        ([{"name": "error_rate", "threshold": 1}], "error_rate.comparator", "required"),
        ([{"name": "error_rate", "comparator": "<=", "threshold": 1, "window": 5}], "error_rate", "window"),
        (
            [{"name": "error_rate", "comparator": "<=", "threshold": 0.1}] * 2,
            "metrics",
            "'error_rate' is listed twice",
        ),
    ],
)
def test_invalid_metric_policies_are_refused_with_a_clear_message(data, field, message):
    with pytest.raises(PolicyError) as refused:
        metrics_from_policy(data)
    assert refused.value.field == field
    assert message in refused.value.message


# --- assess: one metric's limits ----------------------------------------------------------------------


def test_no_measurement_yet_is_running():
    assert assess(spec(), []) is Phase.RUNNING


def test_a_metric_passes_with_its_required_successful_measurements():
    three = spec(required_successes=3)
    assert assess(three, history("error_rate", S, S)) is Phase.RUNNING
    assert assess(three, history("error_rate", S, S, S)) is Phase.SUCCESSFUL


def test_first_failure_fails_the_metric_with_the_default_failure_limit():
    assert spec().failure_limit == 0
    result = tally(spec(required_successes=3), history("error_rate", S, F))
    assert result.phase is Phase.FAILED
    assert "failed (1) > failure limit (0)" in result.reason


def test_failures_up_to_the_failure_limit_are_tolerated():
    lenient = spec(failure_limit=1, required_successes=3)
    assert assess(lenient, history("error_rate", F, S, S)) is Phase.RUNNING
    assert assess(lenient, history("error_rate", F, S, S, S)) is Phase.SUCCESSFUL
    assert assess(lenient, history("error_rate", F, S, F)) is Phase.FAILED


def test_inconclusive_never_counts_as_a_pass():
    one = spec(required_successes=1, inconclusive_limit=5)
    assert assess(one, history("error_rate", N, N, N, N, N)) is Phase.RUNNING


def test_inconclusive_past_its_limit_makes_the_metric_inconclusive():
    two = spec(inconclusive_limit=2)
    assert assess(two, history("error_rate", N, N)) is Phase.RUNNING
    result = tally(two, history("error_rate", N, N, N))
    assert result.phase is Phase.INCONCLUSIVE
    assert "inconclusive (3) > inconclusive limit (2)" in result.reason


def test_errors_count_toward_the_consecutive_error_limit_not_as_failures():
    four = spec(consecutive_error_limit=4)
    result = tally(four, history("error_rate", E, E, E, E))
    assert result.phase is Phase.RUNNING
    assert (result.failed, result.errors, result.consecutive_errors) == (0, 4, 4)
    result = tally(four, history("error_rate", E, E, E, E, E))
    assert result.phase is Phase.ERROR
    assert "consecutive errors (5) > consecutive error limit (4)" in result.reason


def test_a_measurement_between_errors_resets_the_consecutive_count():
    four = spec(consecutive_error_limit=4, required_successes=2)
    result = tally(four, history("error_rate", E, E, E, E, S, E, E, E, E))
    assert result.phase is Phase.RUNNING
    assert (result.errors, result.consecutive_errors) == (8, 4)


def test_a_completed_phase_is_final():
    # As in Argo: once Error (or Failed, or passed) the later measurements change nothing.
    assert assess(spec(consecutive_error_limit=1), history("error_rate", E, E, S, S)) is Phase.ERROR
    assert assess(spec(required_successes=1), history("error_rate", S, F)) is Phase.SUCCESSFUL


def test_assess_reads_only_its_own_metric_from_a_mixed_history():
    mixed = history("latency_p99_ms", F) + history("error_rate", S)
    assert assess(spec("error_rate"), mixed) is Phase.SUCCESSFUL
    assert assess(spec("latency_p99_ms"), mixed) is Phase.FAILED


def test_measurements_rebuilt_from_stored_rows_are_assessed_like_fresh_ones():
    stored = [m.as_dict() for m in history("error_rate", N, N, N)]
    assert {row["verdict"] for row in stored} == {"inconclusive"}
    rebuilt = [Measurement(**row) for row in stored]
    assert assess(spec(), rebuilt) is Phase.INCONCLUSIVE


def test_assess_is_deterministic_and_leaves_its_input_alone():
    measurements = history("error_rate", N, E, S)
    copy = list(measurements)
    first = tally(spec(), measurements)
    assert tally(spec(), measurements) == first
    assert measurements == copy


# --- assess_step: the metrics together ----------------------------------------------------------------


def step_history(**verdicts) -> list[Measurement]:
    result = []
    for name, sequence in verdicts.items():
        result += history(name, *sequence)
    return result


def test_a_step_passes_when_every_metric_has_passed():
    specs = [spec("error_rate"), spec("latency_p99_ms")]
    result = assess_step(specs, step_history(error_rate=[S], latency_p99_ms=[S]))
    assert result.phase is Phase.SUCCESSFUL
    assert set(result.metrics) == {"error_rate", "latency_p99_ms"}


def test_a_step_waits_for_the_metrics_still_running():
    specs = [spec("error_rate"), spec("latency_p99_ms", required_successes=2)]
    result = assess_step(specs, step_history(error_rate=[S], latency_p99_ms=[S]))
    assert result.phase is Phase.RUNNING
    assert result.reason == "waiting for: latency_p99_ms"


@pytest.mark.parametrize(
    ("verdicts", "phase"),
    [
        ({"error_rate": [F], "latency_p99_ms": [N, N, N]}, Phase.FAILED),
        ({"error_rate": [E] * 5, "latency_p99_ms": [N, N, N]}, Phase.ERROR),
        ({"error_rate": [F], "latency_p99_ms": [E] * 5}, Phase.FAILED),
        ({"error_rate": [S], "latency_p99_ms": [N, N, N]}, Phase.INCONCLUSIVE),
        ({"error_rate": [], "latency_p99_ms": [F]}, Phase.FAILED),
    ],
)
def test_a_step_ends_with_the_worst_ended_metric(verdicts, phase):
    specs = [spec("error_rate"), spec("latency_p99_ms")]
    assert assess_step(specs, step_history(**verdicts)).phase is phase


def test_a_step_without_metrics_is_refused():
    with pytest.raises(PolicyError, match="at least one metric"):
        assess_step([], [])


def test_thin_traffic_windows_end_the_step_inconclusive():
    # The canary gets 20 requests per window: never a pass, never a failure, and after the third
    # window (inconclusive limit 2) the step is inconclusive.
    specs = list(DEFAULT_METRICS)
    measurements = []
    phases = []
    for _ in range(3):
        measurements += measure_all(specs, lambda: (window(requests=20, errors=20), window()))
        phases.append(assess_step(specs, measurements).phase)
    assert phases == [Phase.RUNNING, Phase.RUNNING, Phase.INCONCLUSIVE]
    assert {m.verdict for m in measurements} == {N}


def test_a_metric_source_down_for_five_intervals_ends_the_step_in_error():
    def down():
        raise ConnectionError("connection refused")

    specs = list(DEFAULT_METRICS)
    measurements = []
    phases = []
    for _ in range(5):
        measurements += measure_all(specs, down)
        phases.append(assess_step(specs, measurements).phase)
    assert phases == [Phase.RUNNING] * 4 + [Phase.ERROR]
    assert all(t.failed == 0 for t in assess_step(specs, measurements).metrics.values())
