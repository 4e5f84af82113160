"""A production model's ranking quality: realised AUC from feedback labels, estimated AUC while they lag.

Plain numpy, no Django (the drift runs feed arrays in).

Realised AUC
    roc_auc of the window's labelled transactions (scores as logged, labels from feedback), with the
    95% percentile-bootstrap interval of `apps.training.pipeline.evaluate` (the same computation as the
    holdout AUC the version was registered with, so the two compare like for like). It counts only with
    enough labels (`min_labels`) and frauds among them (`min_positives`): at 20 frauds the interval is
    about +-0.05 wide, as wide as the retrain threshold.

Estimated AUC (labels lag: a card fraud is reported days or weeks later)
    If the scores are calibrated (P(fraud | s) = s), each transaction is a fraud with weight s and
    genuine with weight 1 - s, and the expected AUC is
        E[AUC] = sum_{i, j} s_i (1 - s_j) [s_i > s_j] + 1/2 [s_i = s_j]  /  (sum_i s_i) (sum_j (1 - s_j))
    (the confidence-based estimate of NannyML's CBPE). It moves with the score distribution only: a
    concept drift that leaves the scores where they were is invisible to it, and a drift that
    breaks the calibration biases it, so it is shown marked "estimated" and never triggers an action.
    It is computed from a fine score histogram (SCORE_BINS bins on the logit scale, where fraud scores
    spread out), which the window's chunks sum exactly; within a bin the scores count as tied.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SCORE_BINS = 1000
_LOGIT_LIMIT = 12.0
# Inner edges of the score histogram: equal steps of the logit from -12 to 12 (scores 6e-6 .. 1 - 6e-6).
SCORE_EDGES = 1.0 / (1.0 + np.exp(-np.linspace(-_LOGIT_LIMIT, _LOGIT_LIMIT, SCORE_BINS - 1)))


def score_histogram(scores) -> tuple[np.ndarray, np.ndarray]:
    """(count, sum of scores) per histogram bin of finite scores; both add across chunks."""
    scores = np.asarray(scores, dtype=float)
    scores = scores[np.isfinite(scores)]
    index = np.searchsorted(SCORE_EDGES, scores, side="left")
    counts = np.bincount(index, minlength=SCORE_BINS).astype(np.int64)
    sums = np.bincount(index, weights=scores, minlength=SCORE_BINS)
    return counts, sums


def expected_auc(counts, sums) -> float:
    """E[AUC] of calibrated scores from their histogram (see module); NaN without both kinds of weight."""
    counts = np.asarray(counts, dtype=float)
    positives = np.asarray(sums, dtype=float)  # sum of s per bin: the expected frauds
    negatives = counts - positives
    total_positive, total_negative = positives.sum(), negatives.sum()
    if total_positive <= 0 or total_negative <= 0:
        return math.nan
    above = np.cumsum(positives[::-1])[::-1] - positives  # expected frauds in higher bins
    return float((negatives * (above + positives / 2)).sum() / (total_positive * total_negative))


@dataclass(frozen=True)
class Quality:
    """The window's AUC against the version's holdout AUC; `kind` "realised", "estimated" or "none"."""

    kind: str
    auc: float | None
    interval: tuple[float | None, float | None]
    holdout_auc: float | None
    drop: float | None  # (holdout - auc) / holdout; positive when worse
    labels: int
    positives: int
    reason: str

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "auc": self.auc,
            "interval": list(self.interval),
            "holdout_auc": self.holdout_auc,
            "drop": self.drop,
            "labels": self.labels,
            "positives": self.positives,
            "reason": self.reason,
        }


def relative_drop(holdout_auc: float | None, auc: float | None) -> float | None:
    if holdout_auc is None or auc is None or holdout_auc <= 0 or math.isnan(auc):
        return None
    return (holdout_auc - auc) / holdout_auc


def window_quality(
    *,
    scores,
    labels,
    holdout_auc: float | None,
    histogram: tuple[np.ndarray, np.ndarray] | None,
    min_labels: int,
    min_positives: int,
    bootstrap: int = 200,
    seed: int = 0,
) -> Quality:
    """Realised AUC when the labels suffice, else the estimate from the window's score histogram."""
    from apps.training.pipeline import evaluate

    scores = np.asarray(scores, dtype=float)
    labels = np.asarray(labels, dtype=float)
    keep = np.isfinite(scores)
    scores, labels = scores[keep], labels[keep]
    positives = int(labels.sum())
    negatives = int(labels.size - positives)
    if labels.size >= min_labels and positives >= min_positives and negatives > 0:
        evaluation = evaluate(labels, np.clip(scores, 0.0, 1.0), bootstrap=bootstrap, seed=seed)
        auc = evaluation["metrics"]["roc_auc"]
        low, high = evaluation["confidence_intervals"].get("roc_auc", [None, None])
        drop = relative_drop(holdout_auc, auc)
        return Quality(
            kind="realised",
            auc=auc,
            interval=(low, high),
            holdout_auc=holdout_auc,
            drop=drop,
            labels=int(labels.size),
            positives=positives,
            reason=f"{labels.size} labelled transactions, {positives} frauds",
        )
    lacking = (
        f"{labels.size} labelled transactions ({positives} frauds); {min_labels} and {min_positives} "
        "frauds needed for the realised AUC"
    )
    estimate = expected_auc(*histogram) if histogram is not None else math.nan
    if math.isnan(estimate):
        return Quality("none", None, (None, None), holdout_auc, None, int(labels.size), positives, lacking)
    return Quality(
        kind="estimated",
        auc=estimate,
        interval=(None, None),
        holdout_auc=holdout_auc,
        drop=relative_drop(holdout_auc, estimate),
        labels=int(labels.size),
        positives=positives,
        reason=lacking + "; estimated from the scores, assuming they are calibrated",
    )
