"""Canary analysis: window statistics from prediction logs, metric measurements, and their assessment.

Plain Python and numpy, no Django: the rollout controller reads a window of prediction-log rows per
version, calls `summarise`, then `measure_all` at each analysis interval, stores every `Measurement`
(value, threshold, verdict) and asks `assess_step` what the measurements of the current step add up to.

Semantics follow Argo Rollouts' analysis (docs/features/analysis.md, "Inconclusive Runs"; the
controller's `assessMetricStatus` and `utils/analysis` helpers), which define per metric:

- a measurement is Successful, Failed, Inconclusive or Error; Error is "the metric source could not
  be read" and does not count as a failure nor toward `count`, only toward `consecutiveErrorLimit`
  (a successful, failed or inconclusive measurement resets the consecutive errors to zero);
- the metric is Failed when failures > `failureLimit` (default 0: the first failure fails it),
  Inconclusive when inconclusives > `inconclusiveLimit` (default 0), Error when consecutive errors >
  `consecutiveErrorLimit` (default 4), checked in that order, and a completed phase is final;
- the run is the worst of its metrics once one of them is Failed, Error or Inconclusive (Argo
  terminates the other metrics then), ranked Successful < Running < Inconclusive < Error < Failed;
- a Failed or Error run aborts the rollout (weight back to zero); an Inconclusive run pauses it for a
  person to resume or abort.

Where we deliberately differ, and why:

- Argo's step passes when a metric has taken `count` measurements of any verdict (failures under the
  limit included). Here a metric passes when it has `required_successes` *successful* measurements:
  issue 9 says an inconclusive measurement (too few requests) is "never a pass", so thin traffic
  cannot walk a canary to 100%.
- Argo's `inconclusiveLimit` defaults to 0; ours to 2, because the first window after a weight change
  is often thin and one thin window should not page a person. Failure and error limits keep Argo's
  defaults (0 and 4): a failing canary is rolled back at the first failed measurement, which is what
  makes "back on stable within one analysis interval" possible.
- Inconclusive is not a verdict a metric "chooses" (Argo: neither success nor failure condition met)
  but the minimum-sample rule: fewer requests in the window than `min_samples`.
- The metric source raising (database or Redis down) is an Error measurement, per issue 9 ("counts
  toward the consecutive-error limit, not as a failure"). Past the limit the analysis is Error and,
  as in Argo, the rollout is rolled back: a canary nobody can measure is not left taking traffic.
- The score shift (relative change of the mean score, canary against stable) fails only when the two
  windows' scores also differ beyond chance (Mann-Whitney U, two-sided, p < SCORE_SHIFT_ALPHA), in
  the manner of Kayenta's judge. Fraud scores are heavy-tailed (most near 0, about 1.5% near 1): 28
  canary answers hold none of the high ones two times in three, so their mean is often 80% under the
  stable's by chance alone, and a threshold on the mean alone rolled healthy canaries back. A model
  that scores differently throughout still fails on a few dozen answers (its ranks differ).
"""

import enum
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

# The prediction-log status of an answer the model failed to give (apps.serving PredictionLog.Status).
ERROR_STATUS = "error"
# A score shift over its threshold fails only when the canary's and the stable's scores differ at
# this significance (Mann-Whitney U, two-sided); see the module's docstring.
SCORE_SHIFT_ALPHA = 0.01


class PolicyError(ValueError):
    """An analysis or step policy that cannot be run; `field` names the policy field at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class Verdict(enum.StrEnum):
    """The verdict of one measurement."""

    SUCCESSFUL = "successful"
    FAILED = "failed"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


class Phase(enum.StrEnum):
    """Where a metric, or a step's whole analysis, stands."""

    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"
    # Past the inconclusive limit: the rollout pauses for a person.
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"


# Argo's analysisStatusOrder, best to worst, for the phases a step can end in.
_WORSENESS = {Phase.SUCCESSFUL: 0, Phase.RUNNING: 1, Phase.INCONCLUSIVE: 2, Phase.ERROR: 3, Phase.FAILED: 4}
_ENDING = (Phase.FAILED, Phase.ERROR, Phase.INCONCLUSIVE)


class Comparator(enum.StrEnum):
    """How a measured value is held against its threshold: the value passes when `value <op> threshold`."""

    LE = "<="
    LT = "<"
    GE = ">="
    GT = ">"

    def holds(self, value: float, threshold: float) -> bool:
        if self is Comparator.LE:
            return value <= threshold
        if self is Comparator.LT:
            return value < threshold
        if self is Comparator.GE:
            return value >= threshold
        return value > threshold


# --- window statistics ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WindowStats:
    """What one version did in one window of prediction logs.

    `scored`, `score_sum` and `score_mean` cover the model's own answers only: errors have no model
    score and fallback answers carry the rules' score, which says nothing about the model.
    Latency percentiles are nearest-rank (an observed latency, never an interpolation).
    """

    requests: int = 0
    errors: int = 0
    fallbacks: int = 0
    latency_count: int = 0
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    scored: int = 0
    score_sum: float = 0.0
    # The model's own answers' scores, when the reader has them (the score shift's chance check).
    scores: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def error_rate(self) -> float | None:
        return self.errors / self.requests if self.requests else None

    @property
    def fallback_share(self) -> float | None:
        return self.fallbacks / self.requests if self.requests else None

    @property
    def score_mean(self) -> float | None:
        return self.score_sum / self.scored if self.scored else None

    def as_dict(self) -> dict:
        """A JSON-ready record (for the rollout's stored windows and charts)."""
        return {
            **{name: value for name, value in asdict(self).items() if name != "scores"},
            "error_rate": self.error_rate,
            "fallback_share": self.fallback_share,
            "score_mean": self.score_mean,
        }


def _nearest_rank_index(size: int, quantile: float) -> int:
    return max(math.ceil(quantile * size), 1) - 1


def _columns(latencies_ms, statuses, fallbacks, scores) -> tuple[np.ndarray, ...]:
    latencies = np.asarray(latencies_ms, dtype=np.float64)
    status = np.asarray(statuses)
    fallback = np.asarray(fallbacks, dtype=bool)
    score = np.asarray(scores, dtype=np.float64)
    shapes = {latencies.shape, status.shape, fallback.shape, score.shape}
    if len(shapes) != 1 or latencies.ndim != 1:
        raise ValueError(
            "the prediction-log columns must be one-dimensional and of equal length, got shapes "
            f"{latencies.shape}, {status.shape}, {fallback.shape}, {score.shape}"
        )
    return latencies, status == ERROR_STATUS, fallback, score


def _window(latencies: np.ndarray, error: np.ndarray, fallback: np.ndarray, score: np.ndarray) -> WindowStats:
    if latencies.size == 0:
        return WindowStats()
    finite = latencies[np.isfinite(latencies)]
    p50 = p99 = None
    if finite.size:
        ranks = sorted({_nearest_rank_index(finite.size, 0.50), _nearest_rank_index(finite.size, 0.99)})
        # One partial sort places both order statistics.
        placed = np.partition(finite, ranks)
        p50 = float(placed[_nearest_rank_index(finite.size, 0.50)])
        p99 = float(placed[_nearest_rank_index(finite.size, 0.99)])
    model_answer = ~error & ~fallback & np.isfinite(score)
    return WindowStats(
        requests=int(latencies.size),
        errors=int(np.count_nonzero(error)),
        fallbacks=int(np.count_nonzero(fallback)),
        latency_count=int(finite.size),
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        scored=int(np.count_nonzero(model_answer)),
        score_sum=float(score[model_answer].sum()),
        scores=score[model_answer],
    )


def summarise(latencies_ms, statuses, fallbacks, scores) -> WindowStats:
    """Statistics of one version's window from its prediction-log columns (equal-length arrays).

    `statuses` holds the log's status texts (`"error"` marks a failed answer), `fallbacks` the fallback
    flags, `scores` the scores (NaN or anything for errors: ignored). Latencies that are not finite
    are left out of the percentiles but the request still counts.
    """
    return _window(*_columns(latencies_ms, statuses, fallbacks, scores))


def _versions_present(version: np.ndarray) -> np.ndarray:
    # Version numbers are small non-negative integers: a bincount finds them in one pass where
    # np.unique would sort the whole window.
    if version.dtype.kind in "iu" and version.size and version.min() >= 0 and version.max() < 10_000_000:
        return np.flatnonzero(np.bincount(version))
    return np.unique(version)


def summarise_by_version(versions, latencies_ms, statuses, fallbacks, scores) -> dict[int, WindowStats]:
    """`summarise` for each version found in a window holding several (the canary's and the stable's)."""
    version = np.asarray(versions)
    columns = _columns(latencies_ms, statuses, fallbacks, scores)
    if version.shape != columns[0].shape:
        raise ValueError(f"versions has shape {version.shape}, the other columns {columns[0].shape}")
    result = {}
    for number in _versions_present(version):
        rows = version == number
        result[int(number)] = _window(*(column[rows] for column in columns))
    return result


# --- metrics ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """One analysis metric as policy data.

    `name` picks how the value is computed (one of `METRICS`); the value passes when
    `value <comparator> threshold`. A window with fewer than `min_samples` requests (for score shift:
    model answers, on both sides) is inconclusive. The limits are Argo's: the metric fails when its
    failed measurements exceed `failure_limit`, pauses the rollout when inconclusive ones exceed
    `inconclusive_limit`, and errors when consecutive source errors exceed `consecutive_error_limit`.
    It passes the step with `required_successes` successful measurements.
    """

    name: str
    comparator: Comparator
    threshold: float
    min_samples: int = 100
    failure_limit: int = 0
    inconclusive_limit: int = 2
    consecutive_error_limit: int = 4
    required_successes: int = 1

    def __post_init__(self):
        # Accept the comparator as its text (policy JSON) and keep the enum.
        try:
            object.__setattr__(self, "comparator", Comparator(self.comparator))
        except ValueError:
            choices = ", ".join(c.value for c in Comparator)
            raise PolicyError(
                f"{self.name}.comparator", f"{self.comparator!r} is not one of {choices}"
            ) from None
        validate_metric_spec(self)

    def as_dict(self) -> dict:
        return {**asdict(self), "comparator": self.comparator.value}

    @classmethod
    def from_dict(cls, data: Mapping) -> "MetricSpec":
        if not isinstance(data, Mapping):
            raise PolicyError("metrics", f"each metric is an object, got {type(data).__name__}")
        name = data.get("name", "?")
        unknown = set(data) - {f.name for f in cls.__dataclass_fields__.values()}
        if unknown:
            raise PolicyError(str(name), f"unknown fields: {', '.join(sorted(map(str, unknown)))}")
        if "name" not in data:
            raise PolicyError("name", "each metric needs a name")
        for required in ("comparator", "threshold"):
            if required not in data:
                raise PolicyError(f"{name}.{required}", "this field is required")
        return cls(**data)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_metric_spec(spec: MetricSpec) -> None:
    """Raise PolicyError naming the field when a metric cannot be measured as written."""
    if not isinstance(spec.name, str) or spec.name not in METRICS:
        raise PolicyError("name", f"unknown metric {spec.name!r}; known: {', '.join(sorted(METRICS))}")
    threshold = spec.threshold
    if not isinstance(threshold, int | float) or isinstance(threshold, bool) or not math.isfinite(threshold):
        raise PolicyError(f"{spec.name}.threshold", f"must be a finite number, got {threshold!r}")
    if threshold < 0:
        raise PolicyError(f"{spec.name}.threshold", f"must be >= 0 (rates, milliseconds), got {threshold}")
    if not _is_int(spec.min_samples) or spec.min_samples < 1:
        raise PolicyError(
            f"{spec.name}.min_samples", f"must be a whole number >= 1, got {spec.min_samples!r}"
        )
    if not _is_int(spec.required_successes) or spec.required_successes < 1:
        raise PolicyError(
            f"{spec.name}.required_successes", f"must be a whole number >= 1, got {spec.required_successes!r}"
        )
    for limit in ("failure_limit", "inconclusive_limit", "consecutive_error_limit"):
        value = getattr(spec, limit)
        if not _is_int(value) or value < 0:
            raise PolicyError(f"{spec.name}.{limit}", f"must be a whole number >= 0, got {value!r}")


@dataclass(frozen=True)
class Measurement:
    """One metric measured once: what was seen, against what, and the verdict."""

    metric: str
    verdict: Verdict
    value: float | None
    threshold: float
    comparator: str = "<="
    message: str = ""
    canary_requests: int = 0
    stable_requests: int = 0

    def __post_init__(self):
        # Rebuilt from a stored row, the verdict arrives as its text.
        object.__setattr__(self, "verdict", Verdict(self.verdict))

    def as_dict(self) -> dict:
        return {**asdict(self), "verdict": self.verdict.value}


class _Thin(Exception):
    """The window holds too little to measure (an inconclusive measurement)."""


def _need(count: int, minimum: int, what: str) -> None:
    if count < minimum:
        raise _Thin(f"{count} {what} < minimum sample {minimum}")


def _error_rate(spec: MetricSpec, canary: WindowStats, stable: WindowStats) -> float:
    _need(canary.requests, spec.min_samples, "canary requests")
    return canary.errors / canary.requests


def _latency_p99(spec: MetricSpec, canary: WindowStats, stable: WindowStats) -> float:
    _need(canary.latency_count, spec.min_samples, "canary latencies")
    return canary.latency_p99_ms


def _fallback_share(spec: MetricSpec, canary: WindowStats, stable: WindowStats) -> float:
    _need(canary.requests, spec.min_samples, "canary requests")
    return canary.fallbacks / canary.requests


@dataclass(frozen=True)
class Judged:
    """A metric's value with the metric's own verdict (`passed`) and a note for the message."""

    value: float
    passed: bool
    note: str


def _score_shift(spec: MetricSpec, canary: WindowStats, stable: WindowStats) -> float | Judged:
    """|mean_canary - mean_stable| / |mean_stable|: the seed's "prediction shift".

    Past the threshold it fails only when the scores of the two windows differ beyond chance
    (Mann-Whitney U p < SCORE_SHIFT_ALPHA); windows without their scores are judged on the value alone.
    """
    _need(canary.scored, spec.min_samples, "canary model answers")
    _need(stable.scored, spec.min_samples, "stable model answers")
    shift = abs(canary.score_mean - stable.score_mean)
    if stable.score_mean == 0:
        if shift == 0:
            return 0.0
        raise _Thin("the stable mean score is 0: a relative shift is undefined")
    shift /= abs(stable.score_mean)
    if spec.comparator.holds(shift, spec.threshold) or canary.scores is None or stable.scores is None:
        return shift
    from scipy.stats import mannwhitneyu  # scipy is heavy and needed here only

    p = float(mannwhitneyu(canary.scores, stable.scores, method="asymptotic").pvalue)
    if p < SCORE_SHIFT_ALPHA:
        return Judged(shift, False, f"scores differ: Mann-Whitney p = {p:.2g} < {SCORE_SHIFT_ALPHA:g}")
    return Judged(shift, True, f"within chance: Mann-Whitney p = {p:.2g} >= {SCORE_SHIFT_ALPHA:g}")


# How each metric's value is computed from the canary's and the stable's windows (a Judged value
# carries the metric's own verdict; a plain value is held against the threshold).
METRICS: dict[str, Callable[[MetricSpec, WindowStats, WindowStats], float | Judged]] = {
    "error_rate": _error_rate,
    "latency_p99_ms": _latency_p99,
    "fallback_share": _fallback_share,
    "score_shift": _score_shift,
}

# Issue 9 item 4: the seed's SLOs (error rate <= 0.1 %, p99 <= 100 ms), fallback share, score shift <= 10 %.
DEFAULT_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("error_rate", Comparator.LE, 0.001),
    MetricSpec("latency_p99_ms", Comparator.LE, 100.0),
    MetricSpec("fallback_share", Comparator.LE, 0.01),
    MetricSpec("score_shift", Comparator.LE, 0.10),
)


def metrics_from_policy(data: Sequence[Mapping] | None) -> list[MetricSpec]:
    """The metric specs of a rollout policy's JSON (None: the defaults), each validated, names unique."""
    if data is None:
        return list(DEFAULT_METRICS)
    if isinstance(data, str | bytes | Mapping) or not isinstance(data, Sequence):
        raise PolicyError("metrics", "must be a list of metric objects")
    if not data:
        raise PolicyError(
            "metrics", "at least one metric is needed: a canary nobody measures is not analysed"
        )
    specs = [MetricSpec.from_dict(item) for item in data]
    seen = set()
    for spec in specs:
        if spec.name in seen:
            raise PolicyError("metrics", f"metric {spec.name!r} is listed twice")
        seen.add(spec.name)
    return specs


def measure(
    spec: MetricSpec, canary: WindowStats | BaseException, stable: WindowStats | BaseException
) -> Measurement:
    """Measure one metric on a window: a `Measurement` with verdict successful, failed, inconclusive or error.

    Pass the exception the metric source raised in place of the windows to record an error measurement.
    """
    base = {"metric": spec.name, "threshold": float(spec.threshold), "comparator": spec.comparator.value}
    for window in (canary, stable):
        if isinstance(window, BaseException):
            return Measurement(
                **base,
                verdict=Verdict.ERROR,
                value=None,
                message=f"metric source failed: {type(window).__name__}: {window}"[:500],
            )
    counts = {"canary_requests": canary.requests, "stable_requests": stable.requests}
    try:
        result = METRICS[spec.name](spec, canary, stable)
    except _Thin as thin:
        return Measurement(**base, **counts, verdict=Verdict.INCONCLUSIVE, value=None, message=str(thin))
    judged = result if isinstance(result, Judged) else None
    value = float(judged.value if judged else result)
    if not math.isfinite(value):
        return Measurement(**base, **counts, verdict=Verdict.ERROR, value=None, message=f"value is {value}")
    holds = spec.comparator.holds(value, spec.threshold)
    passed = judged.passed if judged else holds
    verdict = Verdict.SUCCESSFUL if passed else Verdict.FAILED
    message = f"{value:.6g} {spec.comparator.value} {spec.threshold:g}" + ("" if holds else ": not met")
    if judged:
        message += f"; {judged.note}"
    return Measurement(**base, **counts, verdict=verdict, value=value, message=message)


def measure_all(
    specs: Iterable[MetricSpec], read_windows: Callable[[], tuple[WindowStats, WindowStats]]
) -> list[Measurement]:
    """Read the (canary, stable) windows once and measure every metric on them.

    Whatever the reader raises (database or Redis down, a timeout) becomes an error measurement of
    every metric: it counts toward the consecutive-error limit, never as a failure.
    """
    try:
        canary, stable = read_windows()
    except Exception as exc:  # any failure of the source is an error measurement, by design
        canary = stable = exc
    return [measure(spec, canary, stable) for spec in specs]


# --- assessment -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tally:
    """A metric's measurements counted in order, and the phase they put it in."""

    phase: Phase
    successful: int = 0
    failed: int = 0
    inconclusive: int = 0
    errors: int = 0
    consecutive_errors: int = 0
    reason: str = ""


def tally(spec: MetricSpec, history: Iterable[Measurement]) -> Tally:
    """Count `spec`'s measurements in `history` (oldest first; other metrics' are skipped).

    The phase is decided as the measurements arrive and a completed phase is final, as in Argo
    (`assessMetricStatus` returns a completed phase unchanged): a later success does not undo an
    Error reached by consecutive errors, and measurements after a pass are not counted.
    """
    counts = {Verdict.SUCCESSFUL: 0, Verdict.FAILED: 0, Verdict.INCONCLUSIVE: 0, Verdict.ERROR: 0}
    consecutive = 0

    def result(phase: Phase, reason: str = "") -> Tally:
        return Tally(
            phase=phase,
            successful=counts[Verdict.SUCCESSFUL],
            failed=counts[Verdict.FAILED],
            inconclusive=counts[Verdict.INCONCLUSIVE],
            errors=counts[Verdict.ERROR],
            consecutive_errors=consecutive,
            reason=reason,
        )

    for measurement in history:
        if measurement.metric != spec.name:
            continue
        verdict = Verdict(measurement.verdict)
        counts[verdict] += 1
        consecutive = consecutive + 1 if verdict is Verdict.ERROR else 0
        name = spec.name
        if counts[Verdict.FAILED] > spec.failure_limit:
            return result(
                Phase.FAILED,
                f"{name}: failed ({counts[Verdict.FAILED]}) > failure limit ({spec.failure_limit})",
            )
        if counts[Verdict.INCONCLUSIVE] > spec.inconclusive_limit:
            return result(
                Phase.INCONCLUSIVE,
                f"{name}: inconclusive ({counts[Verdict.INCONCLUSIVE]}) > inconclusive limit "
                f"({spec.inconclusive_limit})",
            )
        if consecutive > spec.consecutive_error_limit:
            return result(
                Phase.ERROR,
                f"{name}: consecutive errors ({consecutive}) > consecutive error limit "
                f"({spec.consecutive_error_limit})",
            )
        if counts[Verdict.SUCCESSFUL] >= spec.required_successes:
            return result(
                Phase.SUCCESSFUL,
                f"{name}: {counts[Verdict.SUCCESSFUL]} successful of {spec.required_successes}",
            )
    return result(Phase.RUNNING)


def assess(spec: MetricSpec, history: Iterable[Measurement]) -> Phase:
    """The phase of one metric given its measurements so far (oldest first)."""
    return tally(spec, history).phase


@dataclass(frozen=True)
class StepAssessment:
    """What a step's measurements add up to: the step's phase, why, and each metric's tally."""

    phase: Phase
    reason: str
    metrics: dict[str, Tally] = field(default_factory=dict)


def assess_step(specs: Sequence[MetricSpec], history: Iterable[Measurement]) -> StepAssessment:
    """The phase of a step's analysis from all its measurements (oldest first).

    As in Argo: as soon as one metric is Failed, Error or Inconclusive the step takes the worst of
    those (Failed > Error > Inconclusive); it is Successful when every metric is; else Running.
    """
    if not specs:
        raise PolicyError("metrics", "at least one metric is needed to assess a step")
    history = list(history)
    tallies = {spec.name: tally(spec, history) for spec in specs}
    ended = [t for t in tallies.values() if t.phase in _ENDING]
    if ended:
        worst = max(ended, key=lambda t: _WORSENESS[t.phase])
        reasons = "; ".join(t.reason for t in ended if t.phase is worst.phase)
        return StepAssessment(phase=worst.phase, reason=reasons, metrics=tallies)
    waiting = [name for name, t in tallies.items() if t.phase is not Phase.SUCCESSFUL]
    if not waiting:
        return StepAssessment(phase=Phase.SUCCESSFUL, reason="every metric passed", metrics=tallies)
    return StepAssessment(phase=Phase.RUNNING, reason=f"waiting for: {', '.join(waiting)}", metrics=tallies)
