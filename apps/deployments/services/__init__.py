"""Deployments' actions, one module per concern; the names below are the package's public face.

starting: rollouts from completed promotions, the rollout policy. controller: the beat tick that
advances rollouts (effects: what each move makes true). staging: the staging tests over HTTP.
controls: a person's pause, resume, promote now, abort, the emergency rollback and its review.
aliases: MLflow's `canary` alias.
"""

from .aliases import canary_alias_publish
from .controller import controller_tick, rollout_advance
from .controls import (
    rollback_review_confirm,
    rollback_to_last_good,
    rollout_abort,
    rollout_pause,
    rollout_promote_now,
    rollout_resume,
)
from .staging import staging_tests_run
from .starting import rollout_policy_publish, rollout_start, rollouts_start_missing

__all__ = [
    "canary_alias_publish",
    "controller_tick",
    "rollback_review_confirm",
    "rollback_to_last_good",
    "rollout_abort",
    "rollout_advance",
    "rollout_pause",
    "rollout_policy_publish",
    "rollout_promote_now",
    "rollout_resume",
    "rollout_start",
    "rollouts_start_missing",
    "staging_tests_run",
]
