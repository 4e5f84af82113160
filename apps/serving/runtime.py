"""The fast model runtime: the logged sklearn pipeline compiled to Treelite, and the pyfunc fallback.

No Django here. The demo pipeline (apps/training/pipeline.py) is a ColumnTransformer (numerics passed
through, categoricals ordinal-encoded with unknown -> NaN) followed by a HistGradientBoostingClassifier
with categorical splits. `compile_pipeline` keeps the trees (Treelite imports the classifier, categorical
splits, baseline and sigmoid included) and replaces the pandas ColumnTransformer by a dictionary lookup
per categorical, which is where `pipeline.predict_proba` spends its time on one row.

Both scorers answer `predict_proba(rows)`: rows are dicts of feature name -> value, as the scoring API
validated them (numbers as int/float, categories as strings); the result is the probability of fraud,
one float64 per row, in order. MLflow stays the source of truth: the compiled scorer is derived from the
logged model and only used when `parity` with it is within PARITY_TOLERANCE on a holdout.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

# The gate on a compiled scorer: its fraud probabilities may differ from the pipeline's by this much.
PARITY_TOLERANCE = 1e-9
SCORER_FORMAT = 1
MODEL_FILE = "model.treelite"
SPEC_FILE = "scorer.json"
# Signature types (MLflow's names) that carry numbers; anything else is a category.
NUMERIC_TYPES = frozenset({"double", "float", "long", "integer", "boolean"})
# Up to this many rows, encoding row by row beats column by column (measured on the demo pipeline).
ROW_WISE_ENCODING = 16


class NotCompilable(ValueError):
    """The pipeline is not one the compiled runtime reproduces (the pyfunc scorer serves it instead)."""


@dataclass(frozen=True)
class Feature:
    """One model input in signature order.

    kind is "numeric" or "categorical"; dtype is the signature's type ("double", "long", "string"...);
    categories are the values the encoder learnt (code = position), None where unknown (pyfunc).
    """

    name: str
    kind: Literal["numeric", "categorical"]
    dtype: str = "double"
    categories: tuple[str, ...] | None = None


class Scorer(Protocol):
    """What the inference service calls: a compiled scorer or the pyfunc one."""

    kind: str
    features: list[Feature]

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray: ...


def features_from_schema(feature_schema: list[dict]) -> list[Feature]:
    """Features of an MLflow input signature ([{"name", "type"}...], as `signature["inputs"]` holds)."""
    features = []
    for column in feature_schema:
        dtype = column.get("type") or column.get("dtype") or "double"
        kind = "numeric" if dtype in NUMERIC_TYPES else "categorical"
        features.append(Feature(name=column["name"], kind=kind, dtype=dtype))
    return features


def schema_of_signature(signature: dict | None) -> list[dict]:
    """The input columns of a signature as stored by the registry (`inputs` is a JSON string)."""
    if not signature or not signature.get("inputs"):
        raise NotCompilable("the model has no input signature")
    inputs = signature["inputs"]
    columns = json.loads(inputs) if isinstance(inputs, str) else inputs
    if not all(isinstance(column, dict) and column.get("name") for column in columns):
        raise NotCompilable("the model's signature has unnamed inputs (a tensor signature)")
    return columns


class CompiledScorer:
    """Treelite trees behind a plain-Python encoder of the rows.

    `model_columns[j]` is the index, in `features`, of the j-th column the trees read.
    """

    kind = "compiled"

    def __init__(self, model, features: list[Feature], model_columns: list[int], *, nthread: int = 1):
        import treelite.gtil

        self._gtil_predict = treelite.gtil.predict
        self.model = model
        self.features = list(features)
        self.model_columns = list(model_columns)
        # One thread: inference workers are processes, and OpenMP's default oversubscribes the cores.
        self.nthread = nthread
        self._codes = [
            {category: float(code) for code, category in enumerate(f.categories)}
            if f.kind == "categorical"
            else None
            for f in self.features
        ]
        self._permutation = np.asarray(self.model_columns, dtype=np.intp)

    def encode(self, rows: list[dict[str, Any]]) -> np.ndarray:
        """(len(rows), len(features)) float64 in signature order; categories as codes, unknown -> NaN.

        An absent or None value is NaN too (the trees route it as missing), as in the pipeline. The
        scoring API rejects those before they get here; the runtime does not second-guess it.
        """
        if len(rows) <= ROW_WISE_ENCODING:
            return np.array([self._encode_row(row) for row in rows], dtype=np.float64).reshape(
                len(rows), len(self.features)
            )
        # Column by column for batches: one C loop (fromiter) per feature instead of one per value.
        count, nan = len(rows), math.nan
        columns = []
        for feature, codes in zip(self.features, self._codes, strict=True):
            name = feature.name
            if codes is None:
                values = (nan if (value := row.get(name)) is None else value for row in rows)
            else:
                values = (
                    codes.get(value, nan) if isinstance(value := row.get(name), str) else nan for row in rows
                )
            columns.append(np.fromiter(values, dtype=np.float64, count=count))
        return np.column_stack(columns)

    def _encode_row(self, row: dict[str, Any]) -> list[float]:
        line = []
        for feature, codes in zip(self.features, self._codes, strict=True):
            value = row.get(feature.name)
            if codes is not None:
                line.append(codes.get(value, math.nan) if isinstance(value, str) else math.nan)
            else:
                line.append(math.nan if value is None else value)
        return line

    def predict_matrix(self, X: np.ndarray) -> np.ndarray:
        """Fraud probabilities of an encoded matrix (as `encode` returns it: signature order)."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.features):
            raise ValueError(f"expected a (rows, {len(self.features)}) matrix, got shape {X.shape}")
        ordered = np.ascontiguousarray(X[:, self._permutation])
        return self._gtil_predict(self.model, ordered, nthread=self.nthread).reshape(len(X))

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray:
        if not rows:
            return np.empty(0, dtype=np.float64)
        return self.predict_matrix(self.encode(rows))

    def save(self, directory: str | Path) -> Path:
        """Write the trees (Treelite's own format) and scorer.json (features, column order) there."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.serialize(str(directory / MODEL_FILE))
        spec = {
            "format": SCORER_FORMAT,
            "features": [
                {**asdict(f), "categories": list(f.categories) if f.categories is not None else None}
                for f in self.features
            ],
            "model_columns": self.model_columns,
        }
        (directory / SPEC_FILE).write_text(json.dumps(spec, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | Path, *, nthread: int = 1) -> CompiledScorer:
        import treelite

        directory = Path(directory)
        spec = json.loads((directory / SPEC_FILE).read_text())
        if spec.get("format") != SCORER_FORMAT:
            raise NotCompilable(f"unknown compiled scorer format {spec.get('format')!r}")
        features = [
            Feature(
                name=f["name"],
                kind=f["kind"],
                dtype=f.get("dtype", "double"),
                categories=tuple(f["categories"]) if f.get("categories") is not None else None,
            )
            for f in spec["features"]
        ]
        model = treelite.Model.deserialize(str(directory / MODEL_FILE))
        return cls(model, features, spec["model_columns"], nthread=nthread)


def compile_pipeline(pipeline, feature_schema: list[dict]) -> CompiledScorer:
    """Compile the demo pipeline's shape: ColumnTransformer(passthrough, OrdinalEncoder) -> HGB classifier.

    `feature_schema` is the model's input signature in order ([{"name", "type"}...]). Raises
    NotCompilable for any other shape, so the caller serves the pyfunc model instead.
    """
    import treelite
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise NotCompilable("expected a two-step sklearn Pipeline (preprocess, classifier)")
    preprocess, model = pipeline.steps[0][1], pipeline.steps[1][1]
    if not isinstance(preprocess, ColumnTransformer) or not isinstance(model, HistGradientBoostingClassifier):
        raise NotCompilable("expected a ColumnTransformer followed by a HistGradientBoostingClassifier")
    if len(model.classes_) != 2:
        raise NotCompilable("expected a binary classifier")
    signature = features_from_schema(feature_schema)
    position = {f.name: i for i, f in enumerate(signature)}
    if len(position) != len(signature):
        raise NotCompilable("the signature names a feature twice")

    categories: dict[str, tuple[str, ...]] = {}
    output_columns: list[str] = []
    for name, transformer, columns in preprocess.transformers_:
        if name == "remainder":
            if transformer != "drop":
                raise NotCompilable("the ColumnTransformer passes remaining columns through")
            continue
        if transformer == "drop":
            continue
        columns = list(columns)
        if not all(isinstance(column, str) for column in columns):
            raise NotCompilable("the ColumnTransformer selects columns by position, not by name")
        if transformer == "passthrough" or (
            # What a fitted ColumnTransformer turns "passthrough" into: the identity.
            isinstance(transformer, FunctionTransformer) and transformer.func is None
        ):
            output_columns.extend(columns)
        elif isinstance(transformer, OrdinalEncoder):
            _check_encoder(transformer)
            for column, learnt in zip(columns, transformer.categories_, strict=True):
                if not all(isinstance(value, str) for value in learnt):
                    raise NotCompilable(f"categories of {column} are not all strings")
                categories[column] = tuple(learnt)
            output_columns.extend(columns)
        else:
            raise NotCompilable(f"unsupported transformer {type(transformer).__name__} for {columns}")

    if [str(name) for name in getattr(model, "feature_names_in_", output_columns)] != output_columns:
        raise NotCompilable("the classifier's inputs are not the ColumnTransformer's outputs")
    missing = [column for column in output_columns if column not in position]
    if missing:
        raise NotCompilable(f"the model reads columns the signature lacks: {', '.join(missing)}")
    for column, is_categorical in zip(output_columns, model.is_categorical_, strict=True):
        # A category code the trees see as a number (or a number they see as categories) would be
        # scored differently from the pipeline: only the encoder's columns may be categorical.
        if bool(is_categorical) != (column in categories):
            raise NotCompilable(f"{column} is categorical in the trees but not in the encoder, or back")

    features = []
    for f in signature:
        if f.name in categories:
            features.append(Feature(f.name, "categorical", f.dtype, categories[f.name]))
        else:
            features.append(Feature(f.name, "numeric", f.dtype, None))
    try:
        trees = treelite.sklearn.import_model(model)
    except (NotImplementedError, AssertionError, treelite.TreeliteError) as exc:
        raise NotCompilable(f"Treelite cannot import the classifier: {exc}") from exc
    return CompiledScorer(trees, features, [position[column] for column in output_columns])


def _check_encoder(encoder) -> None:
    unknown = getattr(encoder, "unknown_value", None)
    if encoder.handle_unknown != "use_encoded_value" or not (
        isinstance(unknown, float) and math.isnan(unknown)
    ):
        # Any other choice (an error, a fixed code) is a decision the compiled encoder does not copy.
        raise NotCompilable("the encoder must map unknown categories to NaN")
    if not (isinstance(encoder.encoded_missing_value, float) and math.isnan(encoder.encoded_missing_value)):
        raise NotCompilable("the encoder must map missing categories to NaN")
    if getattr(encoder, "_infrequent_enabled", False):
        raise NotCompilable("the encoder groups infrequent categories")


class PyfuncScorer:
    """The logged model itself behind the same interface: served when no compiled scorer passed parity.

    `model` is the sklearn model (its `predict_proba`, column 1) or, failing that, an MLflow pyfunc
    model whose `predict` returns the score.
    """

    kind = "pyfunc"

    def __init__(self, model, features: list[Feature]):
        self.model = model
        self.features = list(features)

    def frame(self, rows: list[dict[str, Any]]):
        import pandas as pd

        columns = {}
        for feature in self.features:
            values = [row.get(feature.name) for row in rows]
            if feature.kind == "categorical":
                columns[feature.name] = pd.Series(values, dtype=object)
            else:
                columns[feature.name] = pd.Series(
                    [math.nan if v is None else v for v in values], dtype=np.float64
                )
        return pd.DataFrame(columns)

    def predict_proba(self, rows: list[dict[str, Any]]) -> np.ndarray:
        if not rows:
            return np.empty(0, dtype=np.float64)
        frame = self.frame(rows)
        if hasattr(self.model, "predict_proba"):
            return np.asarray(self.model.predict_proba(frame)[:, 1], dtype=np.float64)
        return np.asarray(self.model.predict(frame), dtype=np.float64).reshape(len(rows))


def parity(pipeline, scorer: Scorer, frame) -> float:
    """Max |pipeline - scorer| fraud probability over the rows of a DataFrame (e.g. the holdout).

    The scorer gets the rows as the scoring API would send them: Python numbers and category strings.
    """
    if len(frame) == 0:
        raise ValueError("parity needs at least one row")
    names = [f.name for f in scorer.features]
    inputs = frame[names]
    expected = pipeline.predict_proba(inputs)[:, 1]
    rows = _request_rows(inputs)
    actual = scorer.predict_proba(rows)
    diff = np.abs(np.asarray(expected, dtype=np.float64) - actual)
    if np.isnan(diff).any():
        return math.inf
    return float(diff.max())


def _request_rows(frame) -> list[dict[str, Any]]:
    """A DataFrame as JSON-decoded request features (numbers as int/float, categories as str)."""
    records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
    rows = []
    for record in records:
        row = {}
        for name, value in record.items():
            if isinstance(value, np.generic):
                value = value.item()
            row[name] = value
        rows.append(row)
    return rows
