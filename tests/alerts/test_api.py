"""The alerts API: the list a caller sees (filters, errors naming the field), acknowledging and resolving."""

import pytest

from apps.alerts import services
from apps.alerts.models import Alert

pytestmark = pytest.mark.django_db

URL = "/api/v1/alerts/"


def _titles(response) -> set[str]:
    return {row["title"] for row in response.json()["results"]}


@pytest.mark.parametrize(
    ("person", "expected"),
    [
        ("data_scientist", {"fraud", "portal", "old"}),
        ("other_data_scientist", {"payments", "portal"}),
        ("outsider", {"portal"}),
        ("model_risk", {"fraud", "payments", "portal", "old"}),
    ],
)
def test_the_list_is_scoped_to_the_models_a_caller_sees(as_person, story, person, expected):
    response = as_person(person).get(URL)
    assert response.status_code == 200
    assert _titles(response) == {story[name].title for name in expected}


def test_anonymous_callers_are_refused(as_person, story):
    assert as_person("anonymous").get(URL).status_code in (401, 403)
    response = as_person("anonymous").post(f"{URL}{story['fraud'].pk}/acknowledge/")
    assert response.status_code in (401, 403)
    assert Alert.objects.get(pk=story["fraud"].pk).state == "firing"


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("state=open", {"fraud", "payments", "portal"}),
        ("state=resolved", {"old"}),
        ("severity=page", {"fraud"}),
        ("source=monitoring.drift", {"payments"}),
        ("model=fraud-scorer&state=open", {"fraud"}),
        ("state=", {"fraud", "payments", "portal", "old"}),  # empty: not given
    ],
)
def test_filters(as_person, story, query, expected):
    response = as_person("manager").get(f"{URL}?{query}")
    assert response.status_code == 200
    assert _titles(response) == {story[name].title for name in expected}


@pytest.mark.parametrize(
    ("query", "field"),
    [("state=exploded", "state"), ("severity=urgent", "severity"), ("model=bad%20name", "model"),
     ("source=a%00b", "source"), ("source=" + "s" * 61, "source")],
)  # fmt: skip
def test_a_bad_filter_is_a_400_naming_it(as_person, story, query, field):
    response = as_person("manager").get(f"{URL}?{query}")
    assert response.status_code == 400
    assert field in response.json()


def test_an_alert_reads_as_json(as_person, story):
    response = as_person("data_scientist").get(f"{URL}{story['fraud'].pk}/")
    assert response.status_code == 200
    body = response.json()
    assert (body["source"], body["key"], body["severity"], body["state"], body["model"], body["count"]) == (
        "serving.breaker", "fraud-scorer:1", "page", "firing", "fraud-scorer", 1
    )  # fmt: skip
    assert as_person("other_data_scientist").get(f"{URL}{story['fraud'].pk}/").status_code == 404


@pytest.mark.parametrize(
    ("person", "status", "state"),
    [
        ("other_data_scientist", 404, "firing"),
        ("outsider", 404, "firing"),
        ("data_scientist", 403, "firing"),
        ("compliance", 403, "firing"),
        ("ml_engineer", 200, "acknowledged"),
        ("model_risk", 200, "acknowledged"),
        ("manager", 200, "acknowledged"),
    ],
)
def test_who_may_acknowledge(as_person, story, person, status, state):
    alert = story["fraud"]
    response = as_person(person).post(f"{URL}{alert.pk}/acknowledge/", {"note": "on it"}, format="json")
    assert response.status_code == status
    assert "detail" in response.json() or response.json()["state"] == "acknowledged"
    alert.refresh_from_db()
    assert alert.state == state
    if status == 200:
        assert response.json()["acknowledged_by"] == alert.acknowledged_by.username
        assert response.json()["note"] == "on it"


def test_acknowledging_twice_is_a_409_and_resolving_a_resolved_one_too(as_person, story, ml_engineer):
    alert = story["fraud"]
    services.alert_acknowledge(alert=alert, actor=ml_engineer)
    response = as_person("manager").post(f"{URL}{alert.pk}/acknowledge/")
    assert response.status_code == 409
    assert "acknowledged already" in response.json()["detail"]
    assert as_person("manager").post(f"{URL}{alert.pk}/resolve/").json()["state"] == "resolved"
    assert as_person("manager").post(f"{URL}{alert.pk}/resolve/").status_code == 409


@pytest.mark.parametrize("note", ["x" * 2001, "a\x00b", ["list"]])
def test_a_bad_note_is_a_400_naming_it(as_person, story, note):
    url = f"{URL}{story['fraud'].pk}/acknowledge/"
    response = as_person("manager").post(url, {"note": note}, format="json")
    assert response.status_code == 400
    assert "note" in response.json()
    assert Alert.objects.get(pk=story["fraud"].pk).state == "firing"
