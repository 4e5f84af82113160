"""The fraud model's training core: feature pipeline, holdout split, evaluation, gate, reference profile."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import log_loss
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from apps.training.synthetic import CATEGORICAL_FEATURES, FEATURES, LABEL, NUMERIC_FEATURES

PROFILE_VERSION = 1
PROFILE_QUANTILES = {
    "p01": 0.01,
    "p05": 0.05,
    "p25": 0.25,
    "p50": 0.50,
    "p75": 0.75,
    "p95": 0.95,
    "p99": 0.99,
}
MAX_CURVE_POINTS = 200
CALIBRATION_BINS = 10
CONFIDENCE = 0.95
# Resamples drawn per vectorised step: memory grows with this times the number of rows.
BOOTSTRAP_CHUNK = 25
# The classifier's hyperparameters recorded with every training run.
RECORDED_HYPERPARAMETERS = (
    "learning_rate",
    "max_iter",
    "max_leaf_nodes",
    "min_samples_leaf",
    "l2_regularization",
    "early_stopping",
    "validation_fraction",
    "n_iter_no_change",
    "random_state",
)


@dataclass
class TrainingResult:
    pipeline: Pipeline
    metrics: dict
    confidence_intervals: dict
    curves: dict
    gate_passed: bool
    gate_reason: str
    profile: dict
    params: dict
    schema: list[dict]
    input_example: pd.DataFrame
    train_rows: int
    holdout_rows: int


def build_pipeline(*, random_state: int = 0, max_iter: int = 200) -> Pipeline:
    """Ordinal-encode the categoricals, then gradient-boosted trees over FEATURES.

    Categorical columns may hold pandas categoricals or plain strings. A category never seen in
    training is encoded as missing (NaN), which the trees route like any missing value, so a scoring
    request with a new merchant category gets a score rather than an error. Columns other than
    FEATURES are ignored.
    """
    encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan)
    preprocess = ColumnTransformer(
        [
            ("numeric", "passthrough", NUMERIC_FEATURES),
            ("categorical", encoder, CATEGORICAL_FEATURES),
        ],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    model = HistGradientBoostingClassifier(
        learning_rate=0.1,
        max_iter=max_iter,
        max_leaf_nodes=31,
        min_samples_leaf=40,
        l2_regularization=1.0,
        early_stopping=True,
        validation_fraction=0.1,
        n_iter_no_change=20,
        categorical_features=CATEGORICAL_FEATURES,
        random_state=random_state,
    )
    return Pipeline([("preprocess", preprocess), ("model", model)])


def split(
    df: pd.DataFrame, *, holdout_fraction: float = 0.25, seed: int = 0
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout), stratified on the fraud label so both keep the same fraud rate."""
    if not 0.0 < holdout_fraction < 1.0:
        raise ValueError(f"holdout_fraction must be in the open interval (0, 1), got {holdout_fraction!r}")
    train_df, holdout_df = train_test_split(
        df, test_size=holdout_fraction, stratify=df[LABEL], random_state=seed
    )
    return train_df, holdout_df


def evaluate(y_true, scores, *, bootstrap: int = 200, seed: int = 0) -> dict:
    """Metrics, 95% percentile-bootstrap intervals and downsampled curves of fraud scores, as plain JSON.

    roc_auc counts tied scores as half right; pr_auc is average precision; ks is max |TPR - FPR|, the
    two-sample KS statistic between the scores of frauds and non-frauds. The intervals resample rows
    (`bootstrap` times; 0 for none) and cover roc_auc, pr_auc, brier and ks.
    """
    y, s = _validated_scores(y_true, scores)
    group, n_groups = _score_groups(s)
    positives = np.bincount(group, weights=y, minlength=n_groups)
    negatives = np.bincount(group, weights=1.0 - y, minlength=n_groups)
    ranking = _ranking_metrics(positives[None, :], negatives[None, :])
    metrics = {
        "roc_auc": float(ranking["roc_auc"][0]),
        "pr_auc": float(ranking["pr_auc"][0]),
        "brier": float(np.mean((s - y) ** 2)),
        "ks": float(ranking["ks"][0]),
        "log_loss": float(log_loss(y, s, labels=[0, 1])),
        "positive_rate": float(y.mean()),
        "n": int(y.size),
    }
    return {
        "metrics": metrics,
        "confidence_intervals": _bootstrap_intervals(y, s, group, n_groups, bootstrap, seed),
        "curves": _curves(y, s, positives, negatives),
    }


def quality_gate(metrics: dict, *, min_auc: float) -> tuple[bool, str]:
    """Whether a model may be registered: its holdout roc_auc reaches min_auc. The reason says why."""
    auc = metrics.get("roc_auc")
    if auc is None:
        return False, "roc_auc missing"
    if auc >= min_auc:
        return True, f"roc_auc {auc:.4f} >= {min_auc:g}"
    return False, f"roc_auc {auc:.4f} < {min_auc:g} (minimum)"


def reference_profile(
    features_df: pd.DataFrame, scores, *, bins: int = 10, sample_size: int = 1000, seed: int = 0
) -> dict:
    """What drift detection compares production against: a JSON summary of each feature and the score.

    Numeric entries carry fixed reference bins. `bin_edges` are the inner edges only (the reference
    deciles when bins=10, deduplicated), and the bins are closed on the right:
    bin 0 is x <= edges[0], bin i is edges[i-1] < x <= edges[i], the last is x > edges[-1]. So there are
    len(edges) + 1 bins, the end bins are open and catch production values outside the reference range,
    and a value sitting on a quantile (a 0/1 flag, a count) keeps its own bin; see `assign_bins`.
    Non-finite values are counted as `missing` and left out of everything else.
    """
    scores = np.asarray(scores, dtype=float)
    if scores.shape != (len(features_df),):
        raise ValueError(f"expected {len(features_df)} scores, got shape {scores.shape}")
    if bins < 2:
        raise ValueError(f"bins must be >= 2, got {bins!r}")
    rng = np.random.default_rng(seed)
    features = {}
    for name in NUMERIC_FEATURES:
        features[name] = _numeric_profile(features_df[name], bins, sample_size, rng)
    for name in CATEGORICAL_FEATURES:
        features[name] = _categorical_profile(features_df[name])
    return {
        "version": PROFILE_VERSION,
        "rows": len(features_df),
        "features": features,
        "score": _numeric_profile(scores, bins, sample_size, rng),
    }


def assign_bins(values, edges) -> np.ndarray:
    """Bin index of each value under a profile's right-closed bins (0 .. len(edges))."""
    return np.searchsorted(np.asarray(edges, dtype=float), np.asarray(values, dtype=float), side="left")


def feature_schema(df: pd.DataFrame) -> list[dict]:
    """Name and type ("double", "long" or "string") of every model input, in FEATURES order."""
    schema = []
    for name in FEATURES:
        dtype = df[name].dtype
        if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_integer_dtype(dtype):
            kind = "long"
        elif pd.api.types.is_float_dtype(dtype):
            kind = "double"
        else:
            kind = "string"
        schema.append({"name": name, "dtype": kind})
    return schema


def train(
    df: pd.DataFrame,
    *,
    seed: int = 0,
    holdout_fraction: float = 0.25,
    min_auc: float = 0.75,
    bootstrap: int = 200,
) -> TrainingResult:
    """Fit on a stratified train split, evaluate and gate on the holdout, profile the train split."""
    missing = [column for column in [*FEATURES, LABEL] if column not in df.columns]
    if missing:
        raise ValueError(f"training data lacks columns: {', '.join(missing)}")
    train_df, holdout_df = split(df, holdout_fraction=holdout_fraction, seed=seed)
    pipeline = build_pipeline(random_state=seed)
    pipeline.fit(train_df[FEATURES], train_df[LABEL])

    holdout_scores = pipeline.predict_proba(holdout_df[FEATURES])[:, 1]
    evaluation = evaluate(holdout_df[LABEL], holdout_scores, bootstrap=bootstrap, seed=seed)
    gate_passed, gate_reason = quality_gate(evaluation["metrics"], min_auc=min_auc)
    train_scores = pipeline.predict_proba(train_df[FEATURES])[:, 1]
    profile = reference_profile(train_df[FEATURES], train_scores, seed=seed)

    model = pipeline.named_steps["model"]
    hyperparameters = {name: model.get_params()[name] for name in RECORDED_HYPERPARAMETERS}
    params = {
        "model": type(model).__name__,
        **hyperparameters,
        "n_iter": int(model.n_iter_),
        "seed": seed,
        "holdout_fraction": holdout_fraction,
        "min_auc": min_auc,
        "bootstrap": bootstrap,
        "rows": len(df),
        "train_rows": len(train_df),
        "holdout_rows": len(holdout_df),
    }
    # Scoring requests send categories as strings, so the example does too.
    input_example = (
        holdout_df[FEATURES]
        .head(5)
        .astype({name: object for name in CATEGORICAL_FEATURES})
        .reset_index(drop=True)
    )
    return TrainingResult(
        pipeline=pipeline,
        metrics=evaluation["metrics"],
        confidence_intervals=evaluation["confidence_intervals"],
        curves=evaluation["curves"],
        gate_passed=gate_passed,
        gate_reason=gate_reason,
        profile=profile,
        params=params,
        schema=feature_schema(df),
        input_example=input_example,
        train_rows=len(train_df),
        holdout_rows=len(holdout_df),
    )


def _validated_scores(y_true, scores) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(y_true).astype(float).ravel()
    s = np.asarray(scores, dtype=float).ravel()
    if y.shape != s.shape:
        raise ValueError(f"{y.size} labels but {s.size} scores")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("labels must be 0 or 1")
    if not 0 < y.sum() < y.size:
        raise ValueError("evaluation needs both frauds and non-frauds")
    if not (np.isfinite(s).all() and s.min() >= 0.0 and s.max() <= 1.0):
        raise ValueError("scores must be probabilities in [0, 1]")
    return y, s


def _score_groups(s: np.ndarray) -> tuple[np.ndarray, int]:
    """Each row's distinct-score group, numbered from the highest score down (the threshold order)."""
    distinct, inverse = np.unique(s, return_inverse=True)
    return distinct.size - 1 - inverse, distinct.size


def _ranking_metrics(positives: np.ndarray, negatives: np.ndarray) -> dict[str, np.ndarray]:
    """roc_auc, pr_auc and ks for each row of (resample x score group) fraud and non-fraud counts.

    Groups run from the highest score down, so the running sums are the true and false positives at
    each threshold. A resample without both classes gets NaN.
    """
    total_positive = positives.sum(axis=1)
    total_negative = negatives.sum(axis=1)
    true_positive = np.cumsum(positives, axis=1)
    false_positive = np.cumsum(negatives, axis=1)
    flagged = true_positive + false_positive
    precision = np.divide(true_positive, flagged, out=np.zeros_like(flagged), where=flagged > 0)
    # AUC counts, for each non-fraud, the frauds scored above it and half of those tied with it.
    ranked_above = true_positive - positives / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        tpr = true_positive / total_positive[:, None]
        fpr = false_positive / total_negative[:, None]
        roc_auc = (negatives * ranked_above).sum(axis=1) / (total_positive * total_negative)
        pr_auc = (positives * precision).sum(axis=1) / total_positive
        ks = np.abs(tpr - fpr).max(axis=1)
    both_classes = (total_positive > 0) & (total_negative > 0)
    return {
        name: np.where(both_classes, value, np.nan)
        for name, value in {"roc_auc": roc_auc, "pr_auc": pr_auc, "ks": ks}.items()
    }


def _bootstrap_intervals(
    y: np.ndarray, s: np.ndarray, group: np.ndarray, n_groups: int, resamples: int, seed: int
) -> dict[str, list]:
    if resamples <= 0:
        return {}
    rng = np.random.default_rng(seed)
    n = y.size
    squared_error = (s - y) ** 2
    estimates = {"roc_auc": [], "pr_auc": [], "brier": [], "ks": []}
    for start in range(0, resamples, BOOTSTRAP_CHUNK):
        chunk = min(BOOTSTRAP_CHUNK, resamples - start)
        rows = rng.integers(0, n, size=(chunk, n))
        # One bincount over (resample, score group) cells counts every resample at once.
        cell = (np.arange(chunk)[:, None] * n_groups + group[rows]).ravel()
        size = chunk * n_groups
        positives = np.bincount(cell, weights=y[rows].ravel(), minlength=size).reshape(chunk, n_groups)
        totals = np.bincount(cell, minlength=size).reshape(chunk, n_groups)
        ranking = _ranking_metrics(positives, totals - positives)
        for name in ("roc_auc", "pr_auc", "ks"):
            estimates[name].append(ranking[name])
        estimates["brier"].append(squared_error[rows].mean(axis=1))
    tail = (1.0 - CONFIDENCE) / 2 * 100
    intervals = {}
    for name, chunks in estimates.items():
        values = np.concatenate(chunks)
        values = values[np.isfinite(values)]
        if values.size == 0:
            intervals[name] = [None, None]
        else:
            low, high = np.percentile(values, [tail, 100 - tail])
            intervals[name] = [float(low), float(high)]
    return intervals


def _curves(y: np.ndarray, s: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> dict:
    """ROC and precision-recall at every distinct threshold (downsampled), and a calibration table.

    The calibration bins hold equal shares of the scores (deciles, right-closed like the profile),
    since fraud scores crowd near zero and equal-width bins would put almost every row in the first.
    """
    true_positive = np.cumsum(positives)
    false_positive = np.cumsum(negatives)
    tpr = np.concatenate([[0.0], true_positive / true_positive[-1]])
    fpr = np.concatenate([[0.0], false_positive / false_positive[-1]])
    recall = true_positive / true_positive[-1]
    precision = true_positive / (true_positive + false_positive)
    roc_fpr, roc_tpr = _downsample(fpr, tpr)
    pr_recall, pr_precision = _downsample(recall, precision)

    edges = np.unique(np.quantile(s, np.arange(1, CALIBRATION_BINS) / CALIBRATION_BINS))
    calibration_bin = assign_bins(s, edges)
    count = np.bincount(calibration_bin, minlength=edges.size + 1)
    used = count > 0
    mean_predicted = np.bincount(calibration_bin, weights=s, minlength=edges.size + 1)[used] / count[used]
    fraction_positive = np.bincount(calibration_bin, weights=y, minlength=edges.size + 1)[used] / count[used]
    return {
        "roc": {"fpr": roc_fpr, "tpr": roc_tpr},
        "pr": {"recall": pr_recall, "precision": pr_precision},
        "calibration": {
            "mean_predicted": [float(v) for v in mean_predicted],
            "fraction_positive": [float(v) for v in fraction_positive],
            "count": [int(v) for v in count[used]],
        },
    }


def _downsample(x: np.ndarray, y: np.ndarray, max_points: int = MAX_CURVE_POINTS) -> tuple[list, list]:
    """At most max_points of a curve, spread evenly along its length, both endpoints kept.

    Even spacing along the curve, not along the array, keeps the steep start of a ROC curve, where a
    fraud model's few high scores sit.
    """
    if x.size <= max_points:
        keep = np.arange(x.size)
    else:
        length = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(x), np.diff(y)))])
        targets = np.linspace(0.0, length[-1], max_points - 1)
        keep = np.unique(np.concatenate([np.searchsorted(length, targets), [x.size - 1]]))
    return [float(v) for v in x[keep]], [float(v) for v in y[keep]]


def _numeric_profile(values, bins: int, sample_size: int, rng: np.random.Generator) -> dict:
    values = pd.Series(values).to_numpy(dtype=float, na_value=np.nan)
    present = values[np.isfinite(values)]
    if present.size == 0:
        raise ValueError("a numeric reference column has no finite values")
    edges = np.unique(np.quantile(present, np.arange(1, bins) / bins))
    bin_counts = np.bincount(assign_bins(present, edges), minlength=edges.size + 1)
    if present.size > sample_size:
        sample = present[rng.choice(present.size, size=sample_size, replace=False)]
    else:
        sample = present
    return {
        "kind": "numeric",
        "count": int(present.size),
        "missing": int(values.size - present.size),
        "mean": float(present.mean()),
        "std": float(present.std()),
        "min": float(present.min()),
        "max": float(present.max()),
        "quantiles": {key: float(np.quantile(present, q)) for key, q in PROFILE_QUANTILES.items()},
        "bin_edges": [float(edge) for edge in edges],
        "bin_counts": [int(count) for count in bin_counts],
        "sample": [float(v) for v in np.sort(sample)],
    }


def _categorical_profile(column: pd.Series) -> dict:
    counts = column.value_counts(dropna=True)
    categories = {str(value): int(count) for value, count in counts.items()}
    return {
        "kind": "categorical",
        "count": int(counts.sum()),
        "missing": int(column.isna().sum()),
        "categories": dict(sorted(categories.items())),
    }
