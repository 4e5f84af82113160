"""The rules-only scorer: operators, first match wins, the default, and rules that cannot be built."""

import math

import pytest

from apps.serving.rules import Rule, rules_from_data, score_rules

FEATURES = {"amount": 950.0, "channel": "ecommerce", "ip_risk_score": 0.7, "txn_count_1h": 4}


@pytest.mark.parametrize(
    ("operator", "threshold", "matches"),
    [
        (">", 900, True),
        (">", 950, False),
        (">=", 950, True),
        ("<", 950, False),
        ("<=", 950.0, True),
        ("==", 950, True),
        ("!=", 950, False),
        ("in", [100, 950], True),
        ("in", [100, 200], False),
    ],
)
def test_numeric_operators(operator, threshold, matches):
    rule = Rule("amount", operator, threshold, 0.9, "decline")
    assert rule.matches(FEATURES) is matches


@pytest.mark.parametrize(
    ("operator", "threshold", "matches"),
    [("==", "ecommerce", True), ("!=", "ecommerce", False), ("in", ["atm", "ecommerce"], True),
     ("in", ["pos"], False)],
)  # fmt: skip
def test_category_operators(operator, threshold, matches):
    assert Rule("channel", operator, threshold, 0.5, "review").matches(FEATURES) is matches


def test_first_matching_rule_wins_in_order():
    rules = [
        Rule("ip_risk_score", ">", 0.9, 0.95, "decline"),  # does not match
        Rule("amount", ">", 500, 0.6, "review"),  # first match
        Rule("ip_risk_score", ">", 0.5, 0.99, "decline"),  # matches too, with a higher score: ignored
    ]
    assert score_rules(rules, FEATURES) == (0.6, "review", 1)


def test_no_match_gives_the_default_approve_with_score_zero():
    rules = [Rule("amount", ">", 10_000, 0.9, "decline")]
    assert score_rules(rules, FEATURES) == (0.0, "approve", None)
    assert score_rules([], FEATURES) == (0.0, "approve", None)
    assert score_rules(rules, FEATURES, default_score=0.2, default_decision="review") == (0.2, "review", None)


@pytest.mark.parametrize(
    "features",
    [{}, {"amount": None}, {"amount": "950"}, {"amount": math.nan}, {"amount": True}, {"amount": [950]}],
)
def test_absent_missing_or_mistyped_value_does_not_match_and_never_raises(features):
    rules = [Rule("amount", ">", 1, 0.9, "decline"), Rule("amount", "in", [950], 0.9, "decline")]
    assert score_rules(rules, features) == (0.0, "approve", None)


def test_a_string_never_equals_a_number():
    assert not Rule("amount", "==", "950", 0.9, "decline").matches(FEATURES)
    assert Rule("amount", "!=", "950", 0.9, "decline").matches(FEATURES)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"operator": "~"}, "operator must be one of"),
        ({"decision": "block"}, "decision must be one of"),
        ({"score": 1.5}, "score must be a number in"),
        ({"score": "high"}, "score must be a number in"),
        ({"threshold": "big"}, "must be a finite number"),
        ({"threshold": math.inf}, "must be a finite number"),
        ({"operator": "in", "threshold": "pos"}, "must be a list"),
        ({"operator": "in", "threshold": []}, "non-empty list"),
        ({"operator": "==", "threshold": None}, "a string or a finite number"),
        ({"feature": ""}, "needs a feature name"),
    ],
)
def test_invalid_rules_are_refused_with_the_reason(kwargs, message):
    data = {
        "feature": "amount",
        "operator": ">",
        "threshold": 1,
        "score": 0.5,
        "decision": "review",
        **kwargs,
    }
    with pytest.raises(ValueError, match=message):
        Rule(**data)


def test_rules_from_data_round_trip_and_name_the_bad_rule():
    data = [
        {
            "feature": "channel",
            "operator": "in",
            "threshold": ["pos", "atm"],
            "score": 0.3,
            "decision": "review",
        },
        {"feature": "amount", "operator": ">=", "threshold": 5000, "score": 0.8, "decision": "decline"},
    ]
    rules = rules_from_data(data)
    assert [rule.to_dict() for rule in rules] == [
        {**data[0], "threshold": ["atm", "pos"]},
        {**data[1], "score": 0.8},
    ]
    with pytest.raises(ValueError, match="rule 1: 'decision'"):
        rules_from_data([data[0], {"feature": "amount", "operator": ">", "threshold": 1, "score": 0.1}])
