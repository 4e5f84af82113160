"""Realised and estimated AUC (apps/monitoring/quality.py): against sklearn and hand-computed cases."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from apps.monitoring import quality


def test_expected_auc_of_calibrated_scores_matches_the_auc_of_labels_drawn_from_them():
    rng = np.random.default_rng(1)
    scores = 1 / (1 + np.exp(-rng.normal(-3.0, 1.5, 200_000)))
    labels = rng.random(scores.size) < scores  # calibrated by construction
    estimate = quality.expected_auc(*quality.score_histogram(scores))
    assert estimate == pytest.approx(roc_auc_score(labels, scores), abs=0.005)


def test_expected_auc_by_hand():
    # two scores: 0.2 (genuine weight 0.8, fraud 0.2) and 0.8 (fraud 0.8, genuine 0.2), one row each
    counts, sums = quality.score_histogram([0.2, 0.8])
    # pairs (fraud i above genuine j): 0.8 x 0.8 from the high row over the low one, ties count half
    expected = (0.8 * 0.8 + 0.5 * (0.2 * 0.8 + 0.8 * 0.2)) / (1.0 * 1.0)
    assert quality.expected_auc(counts, sums) == pytest.approx(expected)


def test_histograms_of_chunks_add_up_to_the_histogram_of_the_whole():
    scores = np.random.default_rng(2).random(10_000)
    whole = quality.score_histogram(scores)
    parts = [quality.score_histogram(part) for part in np.array_split(scores, 3)]
    assert np.array_equal(whole[0], sum(part[0] for part in parts))
    assert np.allclose(whole[1], sum(part[1] for part in parts))


def test_no_weight_on_one_side_gives_no_estimate():
    assert math.isnan(quality.expected_auc(*quality.score_histogram([0.0, 0.0])))
    assert math.isnan(quality.expected_auc(*quality.score_histogram([])))


def test_realised_auc_needs_enough_labels_and_frauds_else_it_is_estimated():
    rng = np.random.default_rng(3)
    scores = rng.random(2_000)
    labels = rng.random(2_000) < scores * 0.1
    enough = quality.window_quality(
        scores=scores, labels=labels, holdout_auc=0.9, histogram=quality.score_histogram(scores),
        min_labels=500, min_positives=20, bootstrap=50,
    )  # fmt: skip
    assert enough.kind == "realised"
    assert enough.auc == pytest.approx(roc_auc_score(labels, scores))
    assert enough.interval[0] <= enough.auc <= enough.interval[1]
    assert enough.drop == pytest.approx((0.9 - enough.auc) / 0.9)

    lagging = quality.window_quality(
        scores=scores[:100], labels=labels[:100], holdout_auc=0.9, histogram=quality.score_histogram(scores),
        min_labels=500, min_positives=20,
    )  # fmt: skip
    assert lagging.kind == "estimated"
    assert "assuming they are calibrated" in lagging.reason
    nothing = quality.window_quality(
        scores=[], labels=[], holdout_auc=0.9, histogram=None, min_labels=500, min_positives=20
    )
    assert (nothing.kind, nothing.auc, nothing.drop) == ("none", None, None)
