"""Approvals submitted at the same moment from separate connections complete a request exactly once."""

import threading

import pytest
from django.contrib.auth.models import Group
from django.db import connection

from apps.audit.models import AuditEvent
from apps.audit.services import audit_verify
from apps.governance import services
from apps.governance.models import Approval, PromotionRequest
from apps.registry import gateway
from apps.registry.models import ModelVersion, Stage, StageTransition
from tests.conftest import UserFactory

pytestmark = pytest.mark.django_db(transaction=True)


def _at_once(calls):
    """Run each call in its own thread (its own database connection), released together."""
    barrier = threading.Barrier(len(calls))
    outcomes = [None] * len(calls)

    def run(index, call):
        try:
            barrier.wait()
            outcomes[index] = call()
        except Exception as exc:  # collected and asserted on by the test
            outcomes[index] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return outcomes


def _approver(username, role):
    user = UserFactory(username=username)
    user.groups.add(Group.objects.get(name=role))
    return user


def _approve(user, request_id, **kwargs):
    return lambda: services.promotion_approve(
        actor=user, request=PromotionRequest.objects.get(pk=request_id), **kwargs
    )


def test_simultaneous_approvals_of_a_candidate_request_complete_it_once(mlflow_model, data_scientist):
    version = ModelVersion.objects.get(model=mlflow_model, version=4)
    request = services.promotion_request_create(
        actor=data_scientist, version=version, to_stage=Stage.CANDIDATE, justification="race"
    )
    leads = [_approver(f"lead{n}", "Data Scientist Lead") for n in range(4)]
    outcomes = _at_once([_approve(lead, request.pk) for lead in leads])

    approvals = [o for o in outcomes if isinstance(o, Approval)]
    refusals = [o for o in outcomes if isinstance(o, services.Conflict)]
    assert len(approvals) == 1, outcomes
    assert len(refusals) == 3, outcomes
    request.refresh_from_db()
    assert request.status == PromotionRequest.Status.PUBLISHING
    moves = StageTransition.objects.filter(version=version, to_stage=Stage.CANDIDATE)
    assert moves.count() == 1
    assert AuditEvent.objects.filter(action="promotion.approved", object_id=str(request.pk)).count() == 1

    # The publication may be run by several workers at once (a retry, the sweep): it completes once.
    published = _at_once(
        [lambda: services.promotion_publish(request=PromotionRequest.objects.get(pk=request.pk))] * 3
    )
    assert published.count(True) == 1, published
    assert AuditEvent.objects.filter(action="promotion.completed", object_id=str(request.pk)).count() == 1
    assert gateway.aliases(mlflow_model.name)["candidate"] == 4
    assert audit_verify()[0] is None


def test_simultaneous_production_approvals_fill_each_role_once_and_hand_over_once(
    fraud_model, data_scientist
):
    version = ModelVersion.objects.get(model=fraud_model, version=2)
    request = services.promotion_request_create(
        actor=data_scientist, version=version, to_stage=Stage.PRODUCTION, justification="race"
    )
    people = [_approver(f"risk{n}", "Model Risk") for n in range(2)]
    people += [_approver(f"comp{n}", "Compliance") for n in range(2)]
    outcomes = _at_once([_approve(person, request.pk) for person in people])

    approvals = [o for o in outcomes if isinstance(o, Approval)]
    assert sorted(a.role for a in approvals) == ["Compliance", "Model Risk"], outcomes
    assert all(isinstance(o, services.Conflict) for o in outcomes if not isinstance(o, Approval)), outcomes
    request.refresh_from_db()
    assert request.status == PromotionRequest.Status.PUBLISHING
    # The stage is the canary's to move (apps.deployments), once the request is published.
    assert not StageTransition.objects.filter(version=version, to_stage=Stage.PRODUCTION).exists()
    assert ModelVersion.objects.get(model=fraud_model, version=1).stage == Stage.PRODUCTION
    assert AuditEvent.objects.filter(action="promotion.approved", object_id=str(request.pk)).count() == 1
    assert audit_verify()[0] is None
