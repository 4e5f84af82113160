"""Checking scoring requests against a version's MLflow signature (plain Python, no Django).

A missing, extra, mistyped or non-finite value is refused with the name of the field (and, in a batch,
the index of the item): never a silent default.
"""

import json
import math
from dataclasses import dataclass

MAX_ID_LENGTH = 200
# An item's optional embedding (logged for monitoring, not a model input): at most this many numbers.
MAX_EMBEDDING = 256
# MLflow column types -> how a scoring request sends them.
NUMBER_TYPES = {"double", "float"}
INTEGER_TYPES = {"long", "integer"}
STRING_TYPES = {"string"}
BOOLEAN_TYPES = {"boolean"}


@dataclass(frozen=True)
class Feature:
    name: str
    kind: str  # "number", "integer", "boolean" or "string"
    required: bool = True

    @property
    def numeric(self) -> bool:
        return self.kind != "string"


class InvalidRequest(Exception):
    """The request is refused; `errors` maps each field (dotted path) to its messages."""

    def __init__(self, errors: dict[str, list[str]]):
        super().__init__(errors)
        self.errors = errors


def features_of(signature: dict | None) -> list[Feature]:
    """The input columns of an MLflow signature (as `ModelSignature.to_dict()` stores them), in order."""
    if not signature or not signature.get("inputs"):
        return []
    inputs = signature["inputs"]
    columns = json.loads(inputs) if isinstance(inputs, str) else inputs
    features = []
    for column in columns:
        kind = column.get("type")
        if kind in NUMBER_TYPES:
            kind = "number"
        elif kind in INTEGER_TYPES:
            kind = "integer"
        elif kind in BOOLEAN_TYPES:
            kind = "boolean"
        elif kind in STRING_TYPES:
            kind = "string"
        else:
            raise ValueError(f"unsupported signature column {column!r}")
        features.append(Feature(name=column["name"], kind=kind, required=column.get("required", True)))
    return features


def _identifier(value, field: str, errors: dict, *, required: bool) -> str:
    if value is None or value == "":
        if required:
            errors[field] = ["This field is required."]
        return ""
    if not isinstance(value, str):
        errors[field] = ["Must be a string."]
        return ""
    if len(value) > MAX_ID_LENGTH or "\x00" in value:
        errors[field] = [f"Must be at most {MAX_ID_LENGTH} characters, without NUL."]
        return ""
    return value


def _value(feature: Feature, value, field: str, errors: dict):
    if feature.kind == "string":
        if not isinstance(value, str):
            errors[field] = ["Must be a string."]
        elif "\x00" in value:
            errors[field] = ["Must not contain NUL."]
        return value
    if feature.kind == "boolean":
        if not isinstance(value, bool):
            errors[field] = ["Must be true or false."]
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        errors[field] = ["Must be a number."]
        return value
    if not math.isfinite(value):
        errors[field] = ["Must be a finite number."]
        return value
    if feature.kind == "integer":
        if value != int(value):
            errors[field] = ["Must be a whole number."]
            return value
        return int(value)
    return float(value)


def _embedding(value, field: str, errors: dict) -> list[float] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not 1 <= len(value) <= MAX_EMBEDDING
        or any(isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x) for x in value)
    ):
        errors[field] = [f"Must be a list of 1 to {MAX_EMBEDDING} finite numbers."]
        return None
    return [float(x) for x in value]


def parse_item(item, features: list[Feature], prefix: str = "") -> dict:
    """One transaction: {"transaction_id", "entity_id", "features": {...}, "embedding"?} checked and typed.

    Returns {"transaction_id", "entity_id", "features", "embedding" (None if not given)}; raises
    InvalidRequest naming each bad field.
    """
    errors: dict[str, list[str]] = {}
    if not isinstance(item, dict):
        raise InvalidRequest({prefix.rstrip(".") or "non_field_errors": ["Must be a JSON object."]})
    unknown = set(item) - {"transaction_id", "entity_id", "features", "embedding"}
    for key in sorted(unknown):
        errors[f"{prefix}{key}"] = ["Unknown field."]
    transaction_id = _identifier(item.get("transaction_id"), f"{prefix}transaction_id", errors, required=True)
    entity_id = _identifier(item.get("entity_id"), f"{prefix}entity_id", errors, required=False)
    embedding = _embedding(item.get("embedding"), f"{prefix}embedding", errors)
    given = item.get("features")
    values = {}
    if not isinstance(given, dict):
        errors[f"{prefix}features"] = ["Must be a JSON object of the model's features."]
    else:
        expected = {feature.name for feature in features}
        for name in sorted(set(given) - expected, key=str):
            errors[f"{prefix}features.{name}"] = ["Not a feature of this model version."]
        for feature in features:
            field = f"{prefix}features.{feature.name}"
            if feature.name not in given or given[feature.name] is None:
                if feature.required:
                    errors[field] = ["This feature is required."]
                continue
            values[feature.name] = _value(feature, given[feature.name], field, errors)
    if errors:
        raise InvalidRequest(errors)
    return {
        "transaction_id": transaction_id,
        "entity_id": entity_id,
        "features": values,
        "embedding": embedding,
    }


def parse_batch(body, features_for, max_items: int) -> tuple[list[dict], bool]:
    """The items of a request body (one transaction or {"items": [...]}) and whether it was a batch.

    `features_for(item)` gives the features an item is checked against (the version that will answer
    it may depend on the item's entity).
    """
    if not isinstance(body, dict):
        raise InvalidRequest({"non_field_errors": ["The body must be a JSON object."]})
    if "items" not in body:
        return [parse_item(body, features_for(body))], False
    items = body["items"]
    if set(body) != {"items"}:
        raise InvalidRequest({key: ["Unknown field."] for key in sorted(set(body) - {"items"})})
    if not isinstance(items, list):
        raise InvalidRequest({"items": ["Must be a list of transactions."]})
    if not items:
        raise InvalidRequest({"items": ["The batch is empty."]})
    if len(items) > max_items:
        raise InvalidRequest({"items": [f"At most {max_items} transactions per batch, not {len(items)}."]})
    parsed, errors, seen = [], {}, {}
    for index, item in enumerate(items):
        try:
            parsed.append(parse_item(item, features_for(item), prefix=f"items[{index}]."))
        except InvalidRequest as exc:
            errors.update(exc.errors)
            continue
        transaction_id = parsed[-1]["transaction_id"]
        if transaction_id in seen:
            errors[f"items[{index}].transaction_id"] = [
                f"Duplicate of items[{seen[transaction_id]}] in this batch."
            ]
        seen.setdefault(transaction_id, index)
    if errors:
        raise InvalidRequest(errors)
    return parsed, True
