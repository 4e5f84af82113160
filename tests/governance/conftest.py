"""Governance fixtures: the team's model with a complete model card, so its hard pre-checks pass, and
its Staging version with passed staging tests (a Production request needs them)."""

import pytest

from apps.registry.models import Stage
from apps.registry.services import model_card_edit

CARD = {
    "intended_use": "Scores card transactions for fraud review.",
    "limitations": "Weaker on merchants with little history.",
}


@pytest.fixture
def fraud_model(fraud_model, data_scientist):
    """fraud-scorer (see tests/registry/fixtures.py) whose card has everything promotion asks for."""
    model_card_edit(actor=data_scientist, model=fraud_model, **CARD)
    staging_tests_passed(fraud_model)
    return fraud_model


def staging_tests_passed(model) -> None:
    """The model's Staging versions came through a staging deployment whose tests all passed."""
    from apps.deployments.models import Rollout, StagingTestResult
    from apps.deployments.selectors import policy_in_force

    for version in model.versions.filter(stage=Stage.STAGING):
        rollout = Rollout.objects.create(
            model=model, candidate=version, kind=Rollout.Kind.STAGING, policy=policy_in_force(model),
            state=Rollout.State.STAGED,
        )  # fmt: skip
        for test in StagingTestResult.Test.values:
            StagingTestResult.objects.create(rollout=rollout, version=version, test=test, passed=True)


@pytest.fixture
def incomplete_card(fraud_model, data_scientist):
    """fraud-scorer's card without its intended use and limitations (a hard pre-check fails)."""
    model_card_edit(actor=data_scientist, model=fraud_model, intended_use="", limitations="")
    return fraud_model


@pytest.fixture
def mlflow_model(mlflow_model, data_scientist, dataset):
    """The MLflow-backed model (tests/registry/fixtures.py) with what its hard pre-checks look at:
    a signature, training data, ROC AUC rising with the version, a complete card."""
    from tests.registry.fixtures import SIGNATURE

    for version in mlflow_model.versions.all():
        type(version).objects.filter(pk=version.pk).update(
            signature=SIGNATURE, dataset=dataset, metrics={"roc_auc": 0.85 + version.version / 100}
        )
    model_card_edit(actor=data_scientist, model=mlflow_model, **CARD)
    staging_tests_passed(mlflow_model)
    return mlflow_model
