"""SLOs from the prediction logs on PostgreSQL: the roll-up, budgets and burn rates worked out by hand, and
the burn-rate alerts firing and resolving through the alerts app (never on low traffic)."""

from datetime import timedelta

import pytest
from django.urls import reverse

from apps.alerts.models import Alert
from apps.audit.models import AuditEvent
from apps.monitoring.models import SLOMinute, SLOObjective, SLOStatus
from apps.monitoring.selectors_slo import latency_quantile, slo_buckets
from apps.monitoring.services.slo import slo_evaluate, slo_objective_set, slo_rollup
from apps.monitoring.tasks_slo import evaluate_slos
from apps.registry.models import Stage
from hafnium_portal.errors import DomainError

from .slo_fixtures import MINUTE, NOW, every_minute, logs

pytestmark = pytest.mark.django_db


def _rule(status: SLOStatus, slo: str, rule: str) -> dict:
    return next(row for row in status.rules if row["slo"] == slo and row["rule"] == rule)


def _open_alerts(source: str = "slo") -> dict[str, Alert]:
    return {alert.key: alert for alert in Alert.objects.filter(source=source).exclude(state="resolved")}


# --- the roll-up ------------------------------------------------------------------------------------


def test_rollup_counts_each_minute_of_production_traffic(fraud_model):
    logs(fraud_model, at=MINUTE - timedelta(minutes=3, seconds=-5), requests=40, errors=2, slow=3)
    logs(fraud_model, at=MINUTE - timedelta(minutes=3, seconds=-50), requests=10, slow=1)
    logs(fraud_model, at=MINUTE + timedelta(seconds=1), requests=5, errors=5)
    logs(fraud_model, at=MINUTE - timedelta(minutes=3), requests=7, errors=7, environment="staging")
    slo_rollup(now=NOW)
    rows = {
        row.minute: (row.requests, row.errors, row.slow, row.fallbacks) for row in SLOMinute.objects.all()
    }
    assert rows == {MINUTE - timedelta(minutes=3): (50, 2, 4, 2), MINUTE: (5, 5, 0, 5)}


def test_rollup_twice_writes_the_same_rows_and_catches_late_logs(fraud_model):
    logs(fraud_model, at=MINUTE - timedelta(hours=2), requests=10, errors=1)
    slo_rollup(now=NOW)
    slo_rollup(now=NOW)
    assert list(SLOMinute.objects.values_list("requests", "errors")) == [(10, 1)]
    # Rows of two hours ago arriving late (a log writer catching up): their minute is read again.
    logs(fraud_model, at=MINUTE - timedelta(hours=2, seconds=-30), requests=5, errors=2)
    slo_rollup(now=NOW + timedelta(minutes=1))
    assert list(SLOMinute.objects.values_list("requests", "errors")) == [(15, 3)]


def test_slow_means_slower_than_the_models_own_objective(fraud_model, ml_engineer):
    slo_objective_set(actor=ml_engineer, model=fraud_model, availability=0.99, latency_ms=5.0, note="tight")
    logs(fraud_model, at=MINUTE, requests=10, latency=10.0)  # all slower than 5 ms
    slo_rollup(now=NOW)
    assert SLOMinute.objects.get().slow == 10


# --- budgets and burn rates, by hand --------------------------------------------------------------------


def test_budgets_over_thirty_days_by_hand(fraud_model):
    # 20,000 requests two days ago, 10 errors and 100 slow: availability 1 - 10/20000 = 99.95%;
    # error budget 0.1% x 20000 = 20 errors, 10 spent: 50% left;
    # latency budget 1% x 20000 = 200 slow requests, 100 spent: 50% left.
    logs(fraud_model, at=NOW - timedelta(days=2), requests=20_000, errors=10, slow=100)
    # Older than 30 days: outside the window.
    logs(fraud_model, at=NOW - timedelta(days=31), requests=100, errors=100)
    [status] = slo_evaluate(now=NOW)
    assert status.requests == 20_000
    assert status.errors == 10
    assert status.slow == 100
    assert status.availability == pytest.approx(0.9995)
    assert status.availability_budget == pytest.approx(0.5)
    assert status.latency_budget == pytest.approx(0.5)
    assert status.objectives["version"] == 0  # the settings' defaults
    # The three-day rule: burn 0.0005 / 0.001 = 0.5 over 3 d, nothing over 6 h: low traffic, not firing.
    ticket = _rule(status, "availability", "1x over 3 d and 6 h")
    assert ticket["burn_long"] == pytest.approx(0.5)
    assert ticket["requests_short"] == 0
    assert ticket["state"] == "low traffic"
    assert status.alert == ""
    assert not _open_alerts()


def test_thirty_day_p99_is_exact_over_all_versions(fraud_model):
    logs(fraud_model, at=NOW - timedelta(days=1), requests=99, latency=10.0)
    logs(fraud_model, at=NOW - timedelta(days=1), requests=1, latency=110.0, version=2)
    # numpy's linear interpolation: rank 0.99 x 99 = 98.01 -> 10 + 0.01 x (110 - 10) = 11 ms
    value = latency_quantile(fraud_model, since=NOW - timedelta(days=30), until=NOW, q=0.99)
    assert value == pytest.approx(11.0)


# --- burn-rate alerts ------------------------------------------------------------------------------


@pytest.fixture
def quiet_month(fraud_model):
    """A million good requests two days ago, already rolled up: the slow burn (3 d) stays under 1."""
    SLOMinute.objects.create(
        model=fraud_model,
        minute=MINUTE - timedelta(days=2),
        requests=1_000_000,
        errors=0,
        slow=0,
        fallbacks=0,
    )
    return fraud_model


def test_fast_burn_pages_then_resolves_when_the_short_windows_are_clean(quiet_month):
    model = quiet_month
    # The last hour: 20 requests a minute, 2 of them errors: 10% errors, burn 0.1 / 0.001 = 100 over 1 h,
    # 5 min (100 requests), 6 h and 30 min: both page rules fire.
    every_minute(model, minutes=60, requests=20, errors=2)
    [status] = slo_evaluate(now=NOW)
    fast = _rule(status, "availability", "14.4x over 1 h and 5 min")
    assert (fast["burn_long"], fast["burn_short"]) == (pytest.approx(100.0), pytest.approx(100.0))
    assert (fast["requests_long"], fast["requests_short"]) == (1200, 100)
    assert fast["state"] == "firing"
    assert _rule(status, "availability", "6x over 6 h and 30 min")["state"] == "firing"
    # 3 d: 120 errors in 1,001,200 requests: burn 0.12, under 1.
    assert _rule(status, "availability", "1x over 3 d and 6 h")["burn_long"] == pytest.approx(
        120 / 1_001_200 / 0.001
    )
    assert status.alert == "page"
    alerts = _open_alerts()
    assert list(alerts) == ["fraud-scorer:availability:page"]
    page = alerts["fraud-scorer:availability:page"]
    assert page.severity == "page"
    assert page.model == model
    assert page.link == "/monitoring/fraud-scorer/slo/"
    assert "14.4x over 1 h and 5 min" in page.title

    # Still burning a minute later: the same alert, counted again, not a new one.
    every_minute(model, minutes=1, end=MINUTE + timedelta(minutes=1), requests=20, errors=2)
    slo_evaluate(now=NOW + timedelta(minutes=1))
    assert Alert.objects.filter(source="slo").count() == 1
    assert Alert.objects.get(source="slo").count == 2

    # The incident ends: 39 more minutes of clean traffic. Over 1 h the burn is still
    # 42 errors / 1200 = 35 (>= 14.4) but 0 over 5 min (100 requests); 0 over 30 min: both page rules stop.
    every_minute(model, minutes=39, end=MINUTE + timedelta(minutes=40), requests=20)
    [status] = slo_evaluate(now=NOW + timedelta(minutes=40))
    fast = _rule(status, "availability", "14.4x over 1 h and 5 min")
    assert fast["burn_long"] == pytest.approx(42 / 1200 / 0.001)
    assert fast["burn_short"] == 0
    assert fast["state"] == "ok"
    assert status.alert == ""
    assert not _open_alerts()
    resolved = Alert.objects.get(source="slo")
    assert resolved.state == "resolved"
    assert "back under" in resolved.note


def test_slow_burn_raises_a_ticket_not_a_page(fraud_model):
    # Five hours ago 1000 requests with 4 errors, ten minutes ago 100 clean ones: over 6 h (and 3 d)
    # 4 / 1100 = 0.36% errors, burn 3.6: at least 1 (ticket) but under 6 (no page); 1 h / 5 min: low traffic.
    logs(fraud_model, at=MINUTE - timedelta(hours=5), requests=1000, errors=4)
    logs(fraud_model, at=MINUTE - timedelta(minutes=10), requests=100)
    [status] = slo_evaluate(now=NOW)
    ticket = _rule(status, "availability", "1x over 3 d and 6 h")
    assert (ticket["burn_long"], ticket["burn_short"]) == (pytest.approx(4 / 1100 / 0.001),) * 2
    assert ticket["state"] == "firing"
    slower = _rule(status, "availability", "6x over 6 h and 30 min")
    assert slower["state"] == "ok"
    assert slower["burn_short"] == 0
    assert list(_open_alerts()) == ["fraud-scorer:availability:ticket"]
    assert status.alert == "ticket"


def test_latency_burn_pages_on_its_own_budget(quiet_month):
    # 30% of the last hour slower than 100 ms: burn 0.3 / 0.01 = 30 >= 14.4, no error at all.
    every_minute(quiet_month, minutes=60, requests=10, slow=3)
    [status] = slo_evaluate(now=NOW)
    assert _rule(status, "latency", "14.4x over 1 h and 5 min")["burn_long"] == pytest.approx(30.0)
    assert list(_open_alerts()) == ["fraud-scorer:latency:page"]
    assert status.availability_budget == pytest.approx(1.0)


def test_one_failed_request_on_low_traffic_does_not_page(fraud_model):
    # Three requests in the last hour, one failed: a burn of 333, but fewer than 100 requests.
    logs(fraud_model, at=MINUTE - timedelta(minutes=2), requests=3, errors=1)
    [status] = slo_evaluate(now=NOW)
    fast = _rule(status, "availability", "14.4x over 1 h and 5 min")
    assert fast["burn_long"] == pytest.approx(1 / 3 / 0.001)
    assert fast["state"] == "low traffic"
    assert "low traffic" in fast["reason"]
    assert status.low_traffic
    assert status.alert == ""
    assert not Alert.objects.filter(source="slo").exists()


def test_low_traffic_neither_fires_nor_resolves_an_open_alert(quiet_month):
    every_minute(quiet_month, minutes=60, requests=20, errors=2)
    slo_evaluate(now=NOW)
    assert "fraud-scorer:availability:page" in _open_alerts()
    # Traffic stops: two hours later both windows are empty (low traffic): the page stays open.
    slo_evaluate(now=NOW + timedelta(hours=7))
    assert "fraud-scorer:availability:page" in _open_alerts()


# --- the tick -----------------------------------------------------------------------------------------


def test_tick_runs_once_per_minute_and_only_for_production_models(fraud_model, other_model):
    logs(other_model, at=MINUTE, requests=5)  # payments-anomaly has no production version
    assert [status.model for status in slo_evaluate(now=NOW)] == [fraud_model]
    assert slo_evaluate(now=NOW + timedelta(seconds=20)) == []  # the same minute: already claimed
    assert len(slo_evaluate(now=NOW + timedelta(minutes=1))) == 1
    assert SLOStatus.objects.count() == 1


def test_model_leaving_production_takes_its_status_and_alerts(quiet_month):
    every_minute(quiet_month, minutes=60, requests=20, errors=2)
    slo_evaluate(now=NOW)
    quiet_month.versions.filter(stage=Stage.PRODUCTION).update(stage=Stage.ARCHIVED)
    assert slo_evaluate(now=NOW + timedelta(minutes=1)) == []
    assert not SLOStatus.objects.exists()
    assert not _open_alerts()


def test_beat_task_evaluates_the_current_minute(fraud_model, monkeypatch):
    monkeypatch.setattr("apps.monitoring.services.slo.timezone.now", lambda: NOW)  # the clock, fixed
    logs(fraud_model, at=MINUTE - timedelta(minutes=1), requests=3)
    assert evaluate_slos() == 1
    assert evaluate_slos() == 0  # redelivered in the same minute
    assert SLOStatus.objects.get().requests == 3


def test_buckets_put_each_minute_at_its_place(fraud_model):
    logs(fraud_model, at=MINUTE - timedelta(minutes=2), requests=4, errors=1)
    slo_rollup(now=NOW)
    buckets = slo_buckets(fraud_model, now=NOW, minutes=5)
    assert buckets.total.tolist() == [0, 0, 4, 0, 0]
    assert buckets.errors.tolist() == [0, 0, 1, 0, 0]


# --- objectives --------------------------------------------------------------------------------------


def test_objectives_are_versioned_and_audited(fraud_model, ml_engineer):
    first = slo_objective_set(actor=ml_engineer, model=fraud_model, availability=0.995, latency_ms=200.0)
    second = slo_objective_set(actor=ml_engineer, model=fraud_model, availability=0.999, latency_ms=80.0,
                               min_events=50, note="after the tuning")  # fmt: skip
    assert (first.version, second.version) == (1, 2)
    assert SLOObjective.objects.count() == 2
    event = AuditEvent.objects.filter(action="monitoring.slo_objective_set").order_by("-id").first()
    assert event.actor == ml_engineer.username
    assert event.after["latency_ms"] == 80.0
    logs(fraud_model, at=MINUTE, requests=1)
    [status] = slo_evaluate(now=NOW)
    assert status.objectives == {"version": 2, "availability": 0.999, "latency_ms": 80.0,
                                 "latency_quantile": 0.99, "min_events": 50}  # fmt: skip


@pytest.mark.parametrize(
    ("availability", "latency_ms", "min_events"), [(1.0, 100.0, 100), (0.0, 100.0, 100), (0.99, 0.0, 100),
                                                   (0.99, float("nan"), 100), (0.99, 100.0, 0)]
)  # fmt: skip
def test_impossible_objectives_are_refused(fraud_model, ml_engineer, availability, latency_ms, min_events):
    with pytest.raises(DomainError):
        slo_objective_set(actor=ml_engineer, model=fraud_model, availability=availability,
                          latency_ms=latency_ms, min_events=min_events)  # fmt: skip
    assert not SLOObjective.objects.exists()


def test_admin_sets_objectives_as_a_new_version_and_refuses_impossible_ones(client, admin_user, fraud_model):
    client.force_login(admin_user)
    url = reverse("admin:monitoring_sloobjective_add")
    form = {"model": fraud_model.pk, "availability": "0.995", "latency_ms": "150", "latency_quantile": "0.99",
            "min_events": "100", "note": "the scorer is slower since v4"}  # fmt: skip
    assert client.post(url, form).status_code == 302
    response = client.post(url, {**form, "availability": "1.5"})
    assert response.status_code == 200
    assert "SLO targets must be in (0, 1)" in response.content.decode()
    objective = SLOObjective.objects.get()
    assert (objective.version, objective.latency_ms, objective.created_by) == (1, 150.0, admin_user)
    assert AuditEvent.objects.filter(action="monitoring.slo_objective_set").count() == 1
