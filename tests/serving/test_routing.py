"""Routing tables: PostgreSQL's revisions, their copy in Redis, the beat task that heals it, the hot path."""

import pytest

from apps.audit.models import AuditEvent
from apps.serving import hotpath, routing, tasks
from apps.serving.models import RoutingTable
from apps.serving.routing import routes_get, routes_publish, routes_set
from hafnium_portal.errors import DomainError

pytestmark = pytest.mark.django_db


def redis_table(name: str, environment: str = "production") -> dict[str, str]:
    raw = hotpath.redis_client().hgetall(routing.routes_key(name, environment))
    return {key.decode(): value.decode() for key, value in raw.items()}


def test_a_new_table_is_a_revision_audited_and_published_after_the_commit(
    serving, ml_engineer, django_capture_on_commit_callbacks
):
    serving.add_version(2)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        table = routes_set(model=serving.model, environment="production", weights={1: 9500, 2: 500},
                           actor=ml_engineer, reason="canary 5%")  # fmt: skip
        assert redis_table(serving.name) == {}, "nothing in Redis before the commit"
    for callback in callbacks:
        callback()

    assert (table.revision, table.versions, table.created_by) == (1, {1: 9500, 2: 500}, ml_engineer)
    assert redis_table(serving.name) == {"revision": "1", "1": "9500", "2": "500"}
    assert routes_get(serving.model) == {1: 9500, 2: 500}
    assert routes_get(serving.model, "staging") == {}
    event = AuditEvent.objects.get(action="serving.routes_set", object_id=str(table.pk))
    assert event.before == {"environment": "production", "weights": {}}
    assert event.after["weights"] == {"1": 9500, "2": 500}
    assert event.after["reason"] == "canary 5%"


def test_the_same_weights_again_make_no_revision_and_no_audit_event(serving, ml_engineer):
    serving.add_version(2)
    first = routes_set(model=serving.model, environment="production", weights={1: 5000, 2: 5000},
                       actor=ml_engineer, reason="half")  # fmt: skip
    again = routes_set(model=serving.model, environment="production", weights={2: 5000, 1: 5000},
                       actor=ml_engineer, reason="half again")  # fmt: skip

    assert again.pk == first.pk
    assert RoutingTable.objects.filter(model=serving.model).count() == 1
    assert AuditEvent.objects.filter(action="serving.routes_set").count() == 1
    nothing = routes_set(model=serving.model, environment="staging", weights={}, actor=None, reason="")
    assert (nothing.pk, nothing.revision) == (None, 0)


def test_versions_with_zero_points_are_left_out_and_back_to_empty_is_a_revision(serving, ml_engineer):
    serving.add_version(2)
    routes_set(model=serving.model, environment="production", weights={1: 10_000, 2: 0}, actor=ml_engineer,
               reason="")  # fmt: skip
    assert routes_get(serving.model) == {1: 10_000}
    cleared = routes_set(model=serving.model, environment="production", weights={}, actor=ml_engineer,
                         reason="rollout done")  # fmt: skip
    assert cleared.revision == 2
    assert routes_get(serving.model) == {}


@pytest.mark.parametrize(
    ("environment", "weights", "message"),
    [
        ("canary", {1: 10_000}, "Unknown environment"),
        ("production", {1: 5000}, "sum to 5000"),
        ("production", {1: 10_001}, "from 0 to 10000"),
        ("production", {1: -1, 2: 10_001}, "from 0 to 10000"),
        ("production", {1: 9999.5, 2: 0.5}, "whole basis points"),
        ("production", {1: True}, "whole basis points"),
        ("production", {"1": 10_000}, "not a version number"),
        ("production", {9: 10_000}, "no version v9"),
        ("production", [(1, 10_000)], "mapping"),
    ],
)
def test_bad_weights_are_refused_with_the_reason(serving, ml_engineer, environment, weights, message):
    with pytest.raises(DomainError, match=message):
        routes_set(model=serving.model, environment=environment, weights=weights, actor=ml_engineer,
                   reason="")  # fmt: skip
    assert not RoutingTable.objects.exists()


def test_an_older_revision_published_late_does_not_replace_a_newer_one(serving):
    assert routes_publish(serving.name, "production", 2, {1: 10_000})
    routes_publish(serving.name, "production", 1, {1: 5000, 2: 5000})
    assert redis_table(serving.name) == {"revision": "2", "1": "10000"}
    routes_publish(serving.name, "production", 3, {})
    assert redis_table(serving.name) == {"revision": "3"}


def test_the_beat_task_publishes_every_table_again_after_redis_lost_them(serving, ml_engineer):
    serving.add_version(2)
    routes_set(model=serving.model, environment="production", weights={1: 8000, 2: 2000}, actor=ml_engineer,
               reason="")  # fmt: skip
    routes_set(model=serving.model, environment="production", weights={1: 9000, 2: 1000}, actor=ml_engineer,
               reason="")  # fmt: skip
    routes_set(model=serving.model, environment="staging", weights={2: 10_000}, actor=ml_engineer, reason="")
    hotpath.redis_client().delete(routing.routes_key(serving.name, "production"))

    assert tasks.publish_routing_tables() == 2
    assert redis_table(serving.name) == {"revision": "2", "1": "9000", "2": "1000"}
    assert redis_table(serving.name, "staging") == {"revision": "1", "2": "10000"}


def test_the_table_in_redis_splits_production_traffic_by_entity(serving, scoring_client, ml_engineer):
    serving.add_version(2, stage="candidate")
    table = routes_set(model=serving.model, environment="production", weights={1: 5000, 2: 5000},
                       actor=ml_engineer, reason="")  # fmt: skip
    routes_publish(serving.name, "production", table.revision, table.versions)
    items = [dict(serving.item(i % 200, transaction_id=f"split-{i}"), entity_id=f"e-{i}") for i in range(60)]
    answers = scoring_client({"items": items}).json()["items"]
    by_entity = {item["entity_id"]: answer["version"] for item, answer in zip(items, answers, strict=True)}

    assert set(by_entity.values()) == {1, 2}
    again = scoring_client(
        {"items": [dict(item, transaction_id=f"again-{i}") for i, item in enumerate(items)]}
    ).json()["items"]
    assert [answer["version"] for answer in again] == [by_entity[item["entity_id"]] for item in items]

    routes_publish(serving.name, "production", table.revision + 1, {})
    assert {
        answer["version"]
        for answer in scoring_client(
            {"items": [dict(item, transaction_id=f"after-{i}") for i, item in enumerate(items)]}
        ).json()["items"]
    } == {1}


def test_a_routed_archived_version_is_served(serving, scoring_client, ml_engineer):
    serving.add_version(2, stage="archived")
    table = routes_set(model=serving.model, environment="production", weights={2: 10_000}, actor=ml_engineer,
                       reason="rollback to the last good version")  # fmt: skip
    routes_publish(serving.name, "production", table.revision, table.versions)
    from .conftest import config_refresh

    config_refresh()
    assert scoring_client(serving.item(0, transaction_id="archived-1")).json()["version"] == 2


@pytest.mark.django_db(transaction=True)
def test_beat_and_a_worker_heal_a_table_redis_lost(serving, ml_engineer, start_celery, settings):
    serving.add_version(2)
    routes_set(model=serving.model, environment="production", weights={1: 7000, 2: 3000}, actor=ml_engineer,
               reason="")  # fmt: skip
    assert redis_table(serving.name) == {"revision": "1", "1": "7000", "2": "3000"}
    assert settings.CELERY_BEAT_SCHEDULE["publish-routing-tables"]["task"] == (
        "apps.serving.tasks.publish_routing_tables"
    )
    hotpath.redis_client().delete(routing.routes_key(serving.name, "production"))

    env = {"SERVING_ROUTES_PUBLISH_INTERVAL": "1"}
    worker = start_celery("worker", env=env)
    start_celery("beat", env=env)
    worker.wait_for(lambda: redis_table(serving.name) == {"revision": "1", "1": "7000", "2": "3000"})


def test_the_serving_panel_shows_the_production_table_in_percent(serving, client, data_scientist):
    serving.add_version(2)
    routes_publish(serving.name, "production", 1, {1: 9500, 2: 500})
    client.force_login(data_scientist)
    response = client.get(f"/serving/models/{serving.name}/panel")
    assert response.status_code == 200
    assert "v1 (95%), v2 (5%)" in response.content.decode()
