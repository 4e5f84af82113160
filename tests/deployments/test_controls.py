"""A person's controls through the API: pause, resume, promote now, abort, the emergency rollback and its
review by a second person; the permission matrix of every one (the services enforce the same rules)."""

import pytest
from django.core.exceptions import PermissionDenied

from apps.alerts.models import Alert
from apps.audit.models import AuditEvent
from apps.deployments import services
from apps.deployments.models import RollbackReview, Rollout
from apps.deployments.services import controller_tick
from apps.registry.models import ModelVersion, Stage
from apps.serving.routing import routes_get
from tests.registry.fixtures import make_version

pytestmark = pytest.mark.django_db
State = Rollout.State
API = "/api/v1/deployments"


@pytest.fixture
def running(canary, clock) -> Rollout:
    """A canary analysing its 5 % step."""
    controller_tick(now=clock.now)
    canary.refresh_from_db()
    assert canary.state == State.ANALYSING
    return canary


def stage_of(model, number: int) -> str:
    return ModelVersion.objects.get(model=model, version=number).stage


def post(client, path, body=None):
    return client.post(path, body or {}, format="json")


def test_pause_then_resume_starts_the_steps_analysis_afresh(as_person, running):
    engineer = as_person("ml_engineer")
    answer = post(engineer, f"{API}/rollouts/{running.pk}/pause/", {"reason": "looking at a dashboard"})
    assert answer.status_code == 200, answer.json()
    assert answer.json()["state"] == "paused"
    assert answer.json()["weight_bp"] == 500
    run = Rollout.objects.get(pk=running.pk).analysis_run
    answer = post(engineer, f"{API}/rollouts/{running.pk}/resume/")
    assert answer.json()["state"] == "canary"
    controller_tick()
    rollout = Rollout.objects.get(pk=running.pk)
    assert rollout.state == State.ANALYSING
    assert rollout.analysis_run == run + 1
    event = rollout.events.get(action="pause")
    assert event.actor.username == "mia"
    assert event.reason == "looking at a dashboard"


def test_promote_now_skips_the_steps_and_records_the_reason(as_person, running):
    answer = post(as_person("ml_engineer"), f"{API}/rollouts/{running.pk}/promote/", {"reason": "hotfix"})
    assert answer.status_code == 200
    assert answer.json()["state"] == "succeeded"
    assert stage_of(running.model, 2) == Stage.PRODUCTION
    assert "hotfix" in answer.json()["reason"]
    assert AuditEvent.objects.filter(action="deployment.promote", actor="mia").exists()


def test_abort_puts_traffic_back_at_once_and_leaves_the_candidate_staged(as_person, running):
    answer = post(as_person("ml_engineer"), f"{API}/rollouts/{running.pk}/abort/", {"reason": "wrong build"})
    assert answer.status_code == 200
    assert answer.json()["state"] == "aborted"
    assert answer.json()["cause"] == "aborted"
    assert routes_get(running.model) == {1: 10_000}
    assert stage_of(running.model, 2) == Stage.STAGING  # aborted by a person, not failed
    assert not Alert.objects.filter(key=f"rollout-{running.pk}").exists()


@pytest.mark.parametrize("command", ["promote", "abort"])
def test_a_control_that_needs_a_reason_is_a_400_naming_it(as_person, running, command):
    answer = post(as_person("ml_engineer"), f"{API}/rollouts/{running.pk}/{command}/", {})
    assert answer.status_code == 400
    assert "reason" in answer.json()
    answer = post(as_person("ml_engineer"), f"{API}/rollouts/{running.pk}/{command}/", {"reason": "a\x00b"})
    assert answer.status_code == 400


def test_a_control_the_state_does_not_allow_is_a_409(as_person, running):
    engineer = as_person("ml_engineer")
    post(engineer, f"{API}/rollouts/{running.pk}/abort/", {"reason": "stop"})
    answer = post(engineer, f"{API}/rollouts/{running.pk}/pause/")
    assert answer.status_code == 409
    assert "aborted" in answer.json()["detail"]


CONTROLS = ["pause", "resume", "promote", "abort"]


@pytest.mark.parametrize("command", CONTROLS)
@pytest.mark.parametrize(
    ("person", "expected"),
    [
        ("anonymous", 401),
        ("data_scientist", 403),
        ("ds_lead", 403),
        ("model_risk", 403),
        ("compliance", 403),
        ("manager", 403),
        ("other_data_scientist", 404),
        ("ml_engineer", None),
    ],
)
def test_permission_matrix_of_the_controls(as_person, running, person, command, expected, ml_engineer):
    if command == "resume":
        services.rollout_pause(actor=ml_engineer, rollout=running)
    revision = Rollout.objects.get(pk=running.pk).revision
    answer = post(as_person(person), f"{API}/rollouts/{running.pk}/{command}/", {"reason": "because"})
    if expected is None:
        assert answer.status_code == 200, answer.json()
    else:
        assert answer.status_code == expected
        assert Rollout.objects.get(pk=running.pk).revision == revision


@pytest.mark.parametrize(
    ("person", "expected"),
    [("anonymous", 401), ("outsider", 404), ("data_scientist", 200), ("manager", 200), ("ml_engineer", 200)],
)
def test_who_reads_rollouts(as_person, running, person, expected, other_data_scientist):
    client = as_person(person)
    assert client.get(f"{API}/rollouts/{running.pk}/").status_code == expected
    listed = client.get(f"{API}/rollouts/")
    if expected == 200:
        assert [row["id"] for row in listed.json()["results"]] == [running.pk]
    assert as_person("other_data_scientist").get(f"{API}/rollouts/").json()["results"] == []


def test_rollout_list_filters_are_validated(as_person, running):
    engineer = as_person("ml_engineer")
    assert engineer.get(f"{API}/rollouts/?state=active").json()["count"] == 1
    assert engineer.get(f"{API}/rollouts/?state=succeeded").json()["count"] == 0
    assert engineer.get(f"{API}/rollouts/?model={running.model.name}").json()["count"] == 1
    refused = engineer.get(f"{API}/rollouts/?state=flying")
    assert refused.status_code == 400
    assert "state" in refused.json()


# --- the emergency rollback ---------------------------------------------------------------------------


@pytest.fixture
def promoted(as_person, running) -> Rollout:
    post(as_person("ml_engineer"), f"{API}/rollouts/{running.pk}/promote/", {"reason": "ship it"})
    running.refresh_from_db()
    assert running.state == State.SUCCEEDED
    return running


def test_emergency_rollback_restores_the_last_good_version_at_once(as_person, promoted):
    answer = post(as_person("model_risk"), f"{API}/models/{promoted.model.name}/rollback", {"reason": "bad"})
    assert answer.status_code == 201, answer.json()
    assert answer.json()["state"] == "rolled_back"
    assert answer.json()["cause"] == "emergency"
    assert stage_of(promoted.model, 1) == Stage.PRODUCTION
    assert stage_of(promoted.model, 2) == Stage.ROLLED_BACK
    assert routes_get(promoted.model) == {1: 10_000}
    assert Alert.objects.filter(source="deployments", key=f"rollout-{promoted.pk}").exists()
    review = RollbackReview.objects.get(rollout=promoted)
    assert (review.requested_by.username, review.status, review.reason) == ("rita", "open", "bad")
    # The review waits in a second person's inbox, not in the one of the person who rolled back.
    assert as_person("model_risk").get(f"{API}/rollback-reviews/").json()["count"] == 0
    inbox = as_person("ml_engineer").get(f"{API}/rollback-reviews/").json()
    assert [row["id"] for row in inbox["results"]] == [review.pk]
    own = post(as_person("model_risk"), f"{API}/rollback-reviews/{review.pk}/confirm/")
    assert own.status_code == 403
    confirmed = post(as_person("ml_engineer"), f"{API}/rollback-reviews/{review.pk}/confirm/", {"note": "ok"})
    assert confirmed.status_code == 200
    assert confirmed.json()["status"] == "confirmed"
    assert post(as_person("ml_engineer"), f"{API}/rollback-reviews/{review.pk}/confirm/").status_code == 409


@pytest.mark.parametrize(
    ("person", "expected"),
    [
        ("anonymous", 401),
        ("outsider", 404),
        ("other_data_scientist", 404),
        ("data_scientist", 403),
        ("compliance", 403),
        ("manager", 403),
        ("ml_engineer", 201),
        ("model_risk", 201),
    ],
)
def test_permission_matrix_of_the_emergency_rollback(as_person, promoted, person, expected):
    answer = post(as_person(person), f"{API}/models/{promoted.model.name}/rollback", {"reason": "bad"})
    assert answer.status_code == expected
    assert stage_of(promoted.model, 2) == (Stage.ROLLED_BACK if expected == 201 else Stage.PRODUCTION)


def test_emergency_rollback_without_a_previous_version_is_refused(as_person, canary_model):
    answer = post(as_person("ml_engineer"), f"{API}/models/{canary_model.name}/rollback", {"reason": "bad"})
    assert answer.status_code == 400
    assert "no earlier Production version" in answer.json()["detail"]


def test_emergency_rollback_during_a_canary_is_a_409(as_person, running):
    answer = post(as_person("ml_engineer"), f"{API}/models/{running.model.name}/rollback", {"reason": "bad"})
    assert answer.status_code == 409
    assert "abort it" in answer.json()["detail"]


def test_monitoring_rolls_back_a_version_promoted_without_a_rollout(canary_model, data_scientist):
    """A Production version that came before rollouts existed: the rollback adopts it as a rollout."""
    from apps.registry.services import version_stage_set

    make_version(canary_model, 3, stage=Stage.STAGING, creator=data_scientist)
    version_stage_set(
        actor=None, version=canary_model.versions.get(version=3), stage=Stage.PRODUCTION, reason="x"
    )
    rollout = services.rollback_to_last_good(
        model=canary_model, actor=None, reason="severe drift", source="monitoring"
    )
    assert (rollout.candidate.version, rollout.stable.version, rollout.state) == (3, 1, State.ROLLED_BACK)
    assert stage_of(canary_model, 1) == Stage.PRODUCTION
    assert RollbackReview.objects.get(rollout=rollout).source == "monitoring"
    with pytest.raises(PermissionDenied):
        services.rollback_to_last_good(model=canary_model, actor=None, reason="x")  # "person" needs a person
