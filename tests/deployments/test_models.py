"""The deployments data: states as the machine names them, policies that validate as the machine plans."""

import pytest
from django.core.exceptions import ValidationError

from apps.deployments import machine
from apps.deployments.models import Rollout, RolloutPolicy
from apps.deployments.selectors import policy_in_force


def test_rollout_states_are_the_machines_states():
    assert {value for value, _ in Rollout.State.choices} == {state.value for state in machine.State}


@pytest.mark.django_db
def test_the_default_policy_plans_a_five_percent_canary_then_the_full_rollout():
    policy = policy_in_force(None)
    plan = policy.plan()
    assert [step.weight_bp for step in plan.steps] == [500, 10_000]
    assert {spec.name: spec.threshold for spec in plan.metrics} == {
        "error_rate": 0.001,
        "latency_p99_ms": 100.0,
        "fallback_share": 0.01,
        "score_shift": 0.10,
    }
    assert policy_in_force(None).pk == policy.pk


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"steps": [500, 400, 10_000]}, "steps"),
        ({"steps": [10_000]}, "steps"),
        ({"analysis_interval_s": 0}, "analysis_interval_s"),
        ({"progress_deadline_s": 5, "analysis_interval_s": 10}, "progress_deadline_s"),
        ({"staging_auc_gate": 1.5}, "staging_auc_gate"),
    ],
)
def test_a_policy_that_cannot_run_is_refused_naming_the_field(changes, field):
    policy = RolloutPolicy(version=2, **{"steps": [500, 10_000], **changes})
    with pytest.raises(ValidationError) as refused:
        policy.clean()
    assert field in refused.value.message_dict
