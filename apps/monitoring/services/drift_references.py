"""A version's drift references: built once from its training run, stored, and cached in each process.

What a reference is made of, and where each part comes from:
- numeric features: the reference profile's bins (logged by training with the version) for PSI and JS,
  and for KS the exact training column, re-read from the dataset version's Parquet and split as
  training split it (`pipeline.split` with the run's seed and holdout share). The bins rebuilt from that
  column must be the profile's, edge for edge and count for count: if they are not (another dataset, a
  profile from elsewhere) the profile's bins are kept and KS is left out, and the reference says so;
- categorical features: the profile's category counts;
- the merchant embedding: the training split's embedding columns (principal components, bins);
- the score: the holdout's scores (the model loaded once from MLflow), the reference of the prediction
  shift and of the score distribution; without them the profile's score bins.

Built once per version (`drift_reference_ensure`), stored compressed in PostgreSQL, loaded once per
process (`drift_reference_load`); a drift run never recomputes them.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import pandas as pd
from django.db import IntegrityError, transaction

from apps.audit.services import audit_record
from apps.registry.models import ModelVersion, ReferenceProfile
from apps.training import pipeline, synthetic
from hafnium_portal.errors import DomainError

from .. import drift
from ..models import DriftReference

log = logging.getLogger(__name__)

SCORE = "score"
EMBEDDING = synthetic.EMBEDDING


@dataclass(eq=False)
class References:
    """Everything a drift run compares a window against, by feature name."""

    numeric: dict[str, drift.ReferenceBins] = field(default_factory=dict)
    categorical: dict[str, drift.CategoryBins] = field(default_factory=dict)
    embedding: drift.EmbeddingReference | None = None
    score: drift.ReferenceBins | None = None
    score_mean: float = float("nan")
    score_values: np.ndarray | None = None  # the holdout's scores (decline rate at any threshold)
    source: dict = field(default_factory=dict)

    @property
    def features(self) -> dict[str, drift.Reference]:
        """The references compared as features (with Benjamini-Hochberg across them)."""
        every: dict[str, drift.Reference] = {**self.numeric, **self.categorical}
        if self.embedding is not None:
            every[EMBEDDING] = self.embedding
        return every

    def decline_rate(self, threshold: float) -> float:
        if self.score_values is not None and self.score_values.size:
            return float((self.score_values >= threshold).mean())
        return float("nan")


# ---------------------------------------------------------------------------------------------------
# Building


def _training_split(version: ModelVersion) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """(train, holdout) exactly as training split the dataset, or None without a readable dataset."""
    dataset = version.dataset
    if dataset is None:
        return None
    try:
        frame = pd.read_parquet(dataset.file)
    except (OSError, ValueError) as exc:
        log.warning("drift reference of %s: dataset %s unreadable: %s", version, dataset, exc)
        return None
    seed = int(version.params.get("seed", 0))
    holdout = float(version.params.get("holdout_fraction", 0.25))
    return pipeline.split(frame, holdout_fraction=holdout, seed=seed)


def _numeric_reference(name: str, entry: dict, train: pd.DataFrame | None, notes: dict):
    from_profile = drift.ReferenceBins.from_profile(
        entry["bin_edges"], entry["bin_counts"], missing=entry.get("missing", 0)
    )
    if train is None or name not in train.columns:
        notes[name] = "profile bins (no training column: no KS)"
        return from_profile
    exact = drift.ReferenceBins.from_sample(train[name].to_numpy(dtype=float), len(entry["bin_edges"]) + 1)
    same = np.array_equal(exact.edges, from_profile.edges) and np.array_equal(
        exact.reference_counts, from_profile.reference_counts
    )
    if not same:
        notes[name] = "profile bins (the dataset's column does not give the profile's bins: no KS)"
        return from_profile
    notes[name] = "profile bins; KS on the training column"
    return exact


def _holdout_scores(version: ModelVersion, holdout: pd.DataFrame | None) -> np.ndarray | None:
    if holdout is None or not version.source_uri:
        return None
    from apps.registry import gateway

    try:
        model = gateway.load_sklearn_model(version.source_uri)
        return np.asarray(model.predict_proba(holdout[synthetic.FEATURES])[:, 1], dtype=float)
    except Exception as exc:  # MLflow down, a model of another shape: the profile's score bins stand in
        log.warning("drift reference of %s: holdout not scored: %s", version, exc)
        return None


def build_references(version: ModelVersion) -> References:
    """The references of a version from its profile and training data (see module)."""
    profile_row = ReferenceProfile.objects.filter(version=version).first()
    if profile_row is None:
        raise DomainError(f"{version} has no reference profile: it was not trained by the portal's pipeline")
    profile = profile_row.data
    split = _training_split(version)
    train, holdout = split if split is not None else (None, None)
    notes: dict[str, str] = {}
    references = References()
    for name, entry in profile["features"].items():
        if entry["kind"] == "numeric":
            references.numeric[name] = _numeric_reference(name, entry, train, notes)
        else:
            references.categorical[name] = drift.CategoryBins.from_profile(
                entry["categories"], missing=entry.get("missing", 0)
            )
            notes[name] = "profile categories"
    if train is not None and set(synthetic.EMBEDDING_COLUMNS) <= set(train.columns):
        references.embedding = drift.EmbeddingReference.from_sample(synthetic.embedding_of(train))
        notes[EMBEDDING] = "training split's embedding: top 3 principal components and centroid distance"
    scores = _holdout_scores(version, holdout)
    if scores is not None:
        references.score = drift.ReferenceBins.from_sample(scores, 10)
        references.score_values = scores
        references.score_mean = float(scores.mean())
        notes[SCORE] = "holdout scores"
    else:
        entry = profile["score"]
        references.score = drift.ReferenceBins.from_profile(entry["bin_edges"], entry["bin_counts"])
        references.score_mean = float(entry["mean"])
        notes[SCORE] = "profile's score bins (training split)"
    references.source = notes
    return references


# ---------------------------------------------------------------------------------------------------
# Storing: plain arrays in one compressed .npz, no pickle


def _put_bins(arrays: dict, prefix: str, bins: drift.ReferenceBins) -> None:
    arrays[f"{prefix}/edges"] = bins.edges
    arrays[f"{prefix}/counts"] = bins.reference_counts
    arrays[f"{prefix}/missing"] = np.array([bins.missing])
    if bins.values is not None:
        arrays[f"{prefix}/values"] = bins.values
        arrays[f"{prefix}/cumulative"] = bins.cumulative


def _get_bins(arrays, prefix: str) -> drift.ReferenceBins:
    counts = arrays[f"{prefix}/counts"]
    values = arrays[f"{prefix}/values"] if f"{prefix}/values" in arrays else None
    return drift.ReferenceBins(
        edges=arrays[f"{prefix}/edges"],
        reference_counts=counts,
        n=int(counts.sum()),
        missing=int(arrays[f"{prefix}/missing"][0]),
        values=values,
        cumulative=arrays[f"{prefix}/cumulative"] if values is not None else None,
    )


def dump_references(references: References) -> tuple[bytes, list[dict]]:
    arrays: dict[str, np.ndarray] = {}
    features = []
    for name, bins in references.numeric.items():
        _put_bins(arrays, f"numeric/{name}", bins)
        features.append({"name": name, "kind": "numeric", "ks": bins.values is not None})
    for name, bins in references.categorical.items():
        arrays[f"categorical/{name}/counts"] = bins.reference_counts
        arrays[f"categorical/{name}/missing"] = np.array([bins.missing])
        features.append({"name": name, "kind": "categorical", "categories": list(bins.categories)})
    if references.embedding is not None:
        built = references.embedding
        arrays["embedding/centroid"] = built.centroid
        arrays["embedding/components"] = built.components
        arrays["embedding/explained"] = built.explained_variance_ratio
        arrays["embedding/distance_mean"] = np.array([built.distance_mean])
        for c, bins in enumerate(built.projections):
            _put_bins(arrays, f"embedding/pc{c}", bins)
        _put_bins(arrays, "embedding/distance", built.distance)
        features.append({"name": EMBEDDING, "kind": "embedding", "components": len(built.projections)})
    _put_bins(arrays, "score", references.score)
    arrays["score/mean"] = np.array([references.score_mean])
    if references.score_values is not None:
        arrays["score/holdout"] = references.score_values
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue(), features


def load_references(payload: bytes, features: list[dict], source: dict) -> References:
    arrays = dict(np.load(io.BytesIO(payload), allow_pickle=False))
    references = References(source=source)
    for feature in features:
        name = feature["name"]
        if feature["kind"] == "numeric":
            references.numeric[name] = _get_bins(arrays, f"numeric/{name}")
        elif feature["kind"] == "categorical":
            counts = arrays[f"categorical/{name}/counts"]
            references.categorical[name] = drift.CategoryBins(
                categories=tuple(feature["categories"]),
                reference_counts=counts,
                n=int(counts.sum()),
                missing=int(arrays[f"categorical/{name}/missing"][0]),
            )
        else:
            references.embedding = drift.EmbeddingReference(
                centroid=arrays["embedding/centroid"],
                components=arrays["embedding/components"],
                explained_variance_ratio=arrays["embedding/explained"],
                projections=tuple(
                    _get_bins(arrays, f"embedding/pc{c}") for c in range(feature["components"])
                ),
                distance=_get_bins(arrays, "embedding/distance"),
                distance_mean=float(arrays["embedding/distance_mean"][0]),
            )
    references.score = _get_bins(arrays, "score")
    references.score_mean = float(arrays["score/mean"][0])
    references.score_values = arrays.get("score/holdout")
    return references


def drift_reference_ensure(*, version: ModelVersion) -> DriftReference:
    """The version's stored reference, built now if it has none yet (once: a race keeps the first)."""
    existing = DriftReference.objects.filter(version=version).first()
    if existing is not None:
        return existing
    references = build_references(version)
    payload, features = dump_references(references)
    digest = hashlib.sha256(payload).hexdigest()
    try:
        with transaction.atomic():
            stored = DriftReference.objects.create(
                version=version,
                payload=payload,
                sha256=digest,
                features=features,
                rows=references.score.n,
                source=references.source,
            )
            audit_record(
                actor=None,
                action="monitoring.drift_reference_built",
                obj=stored,
                after={"version": str(version), "sha256": digest, "source": references.source},
            )
    except IntegrityError:  # another worker stored it first: theirs is the reference
        return DriftReference.objects.get(version=version)
    return stored


@lru_cache(maxsize=16)
def _loaded(pk: int, sha256: str) -> References:
    stored = DriftReference.objects.get(pk=pk)
    return load_references(bytes(stored.payload), stored.features, stored.source)


def drift_reference_load(*, version: ModelVersion) -> References:
    """The version's references, from this process's cache after the first load."""
    stored = DriftReference.objects.filter(version=version).only("pk", "sha256").first()
    if stored is None:
        stored = drift_reference_ensure(version=version)
    return _loaded(stored.pk, stored.sha256)
