"""The rules-only scorer: what answers while a model's circuit breaker is open. No Django here.

A rule is data (edited in the admin, audited there): `feature operator threshold -> score, decision`.
Rules are evaluated in their given order and the **first match wins**, like a firewall's rules: an
analyst reads the list top-down and the first line that fits is the answer, with no hidden ranking.
Order the strictest rules (declines) first. When no rule matches, the answer is the default (score 0.0,
"approve" unless the caller passes another): the fallback must not block card payments wholesale,
and a model outage is not evidence of fraud.

A rule whose feature is absent, None or not comparable with the threshold (a string against a number)
does not match; it never raises.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

DECISIONS = ("approve", "review", "decline")
DEFAULT_SCORE = 0.0
DEFAULT_DECISION = "approve"

_COMPARISONS = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
OPERATORS = (*_COMPARISONS, "in")


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


@dataclass(frozen=True)
class Rule:
    """`features[feature] <operator> threshold` -> (score, decision).

    Ordering operators (> >= < <=) take a finite number; == and != a number or a string; `in` a
    list of numbers and/or strings (stored as a frozenset).
    """

    feature: str
    operator: str
    threshold: Any
    score: float
    decision: str

    def __post_init__(self) -> None:
        if not isinstance(self.feature, str) or not self.feature:
            raise ValueError("a rule needs a feature name")
        if self.operator not in OPERATORS:
            raise ValueError(f"operator must be one of {' '.join(OPERATORS)}, got {self.operator!r}")
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {', '.join(DECISIONS)}, got {self.decision!r}")
        if not _is_number(self.score) or not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be a number in [0, 1], got {self.score!r}")
        threshold = self.threshold
        if self.operator == "in":
            if isinstance(threshold, str | bytes) or not isinstance(threshold, Iterable):
                raise ValueError("the threshold of `in` must be a list of values")
            values = frozenset(threshold)
            if not values or not all(isinstance(v, str) or _finite(v) for v in values):
                raise ValueError(
                    "the threshold of `in` must be a non-empty list of strings or finite numbers"
                )
            object.__setattr__(self, "threshold", values)
        elif self.operator in ("==", "!="):
            if not (isinstance(threshold, str) or _finite(threshold)):
                raise ValueError(f"the threshold of {self.operator} must be a string or a finite number")
        elif not _finite(threshold):
            raise ValueError(f"the threshold of {self.operator} must be a finite number")
        object.__setattr__(self, "score", float(self.score))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        return cls(
            feature=data["feature"],
            operator=data["operator"],
            threshold=data["threshold"],
            score=data["score"],
            decision=data["decision"],
        )

    def to_dict(self) -> dict[str, Any]:
        threshold = sorted(self.threshold, key=str) if self.operator == "in" else self.threshold
        return {
            "feature": self.feature,
            "operator": self.operator,
            "threshold": threshold,
            "score": self.score,
            "decision": self.decision,
        }

    def matches(self, features: Mapping[str, Any]) -> bool:
        value = features.get(self.feature)
        if value is None or (isinstance(value, bool) and self.operator not in ("==", "!=", "in")):
            return False
        if _is_number(value) and math.isnan(value):
            return False
        if self.operator == "in":
            try:
                return value in self.threshold
            except TypeError:  # an unhashable value (a list) is in no set of thresholds
                return False
        if self.operator in ("==", "!="):
            # A string never equals a number: "5" == 5 is False for ==, True for !=.
            return _COMPARISONS[self.operator](value, self.threshold)
        if not _is_number(value):
            return False
        return _COMPARISONS[self.operator](value, self.threshold)


def _finite(value) -> bool:
    return _is_number(value) and math.isfinite(value)


def score_rules(
    rules: Iterable[Rule],
    features: Mapping[str, Any],
    *,
    default_score: float = DEFAULT_SCORE,
    default_decision: str = DEFAULT_DECISION,
) -> tuple[float, str, int | None]:
    """(score, decision, index of the matching rule) of the first rule that matches, in order.

    No match: (default_score, default_decision, None).
    """
    for index, rule in enumerate(rules):
        if rule.matches(features):
            return rule.score, rule.decision, index
    return float(default_score), default_decision, None


def rules_from_data(data: Iterable[Mapping[str, Any]]) -> list[Rule]:
    """Rules from JSON-like dicts (e.g. as cached in Redis), in order; ValueError names the bad one."""
    rules = []
    for index, item in enumerate(data):
        try:
            rules.append(Rule.from_dict(item))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"rule {index}: {exc}") from exc
    return rules
