"""Scoring clients, serving policies and fallback rules: who may change them, and each change audited."""

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from rest_framework.authtoken.models import Token

from apps.audit.models import AuditEvent
from apps.serving.models import FallbackRule
from apps.serving.services import policy_publish, rule_delete, rule_save
from hafnium_portal.errors import DomainError

pytestmark = pytest.mark.django_db


def decline_rule(model, threshold) -> FallbackRule:
    return FallbackRule(
        model=model, feature="amount", operator=">", threshold=threshold, score=0.9, decision="decline"
    )


def run(*args) -> str:
    from io import StringIO

    out = StringIO()
    call_command("create_scoring_client", *args, stdout=out)
    return out.getvalue().strip()


def test_create_scoring_client_prints_its_token_and_is_idempotent():
    token = run("java-backend")
    assert Token.objects.get(key=token).user.username == "java-backend"
    assert run("java-backend") == token
    rotated = run("java-backend", "--rotate")
    assert rotated != token
    assert not Token.objects.filter(key=token).exists()
    user = Token.objects.get(key=rotated).user
    assert user.has_perm("serving.score")
    assert not user.has_usable_password()
    assert user.get_all_permissions() == {"serving.score"}
    assert AuditEvent.objects.filter(action="serving.client_created").count() == 1


def test_a_persons_account_cannot_become_a_scoring_client(data_scientist):
    from django.core.management import CommandError

    with pytest.raises(CommandError):
        run(data_scientist.username)
    with pytest.raises(CommandError):
        run("bad name!")


@pytest.mark.parametrize("person", ["data_scientist", "manager", "model_risk"])
def test_only_an_ml_engineer_changes_the_serving_policy_and_rules(request, person, fraud_model):
    actor = request.getfixturevalue(person)
    with pytest.raises(PermissionDenied):
        policy_publish(actor=actor, model=fraud_model, review_at=0.3, decline_at=0.8)
    with pytest.raises(PermissionDenied):
        rule_save(actor=actor, rule=decline_rule(fraud_model, 1000.0))


def test_policy_versions_are_kept_and_bad_thresholds_refused(ml_engineer, fraud_model):
    first = policy_publish(actor=ml_engineer, model=fraud_model, review_at=0.3, decline_at=0.8)
    second = policy_publish(actor=ml_engineer, model=fraud_model, review_at=0.4, decline_at=0.9)
    assert (first.version, second.version) == (1, 2)
    with pytest.raises(DomainError):
        policy_publish(actor=ml_engineer, model=fraud_model, review_at=0.9, decline_at=0.4)
    event = AuditEvent.objects.filter(action="serving.policy_published").order_by("-id").first()
    assert event.before["review_at"] == 0.3
    assert event.after["review_at"] == 0.4


def test_rule_changes_are_validated_and_audited(ml_engineer, fraud_model):
    from django.core.exceptions import ValidationError

    rule = rule_save(actor=ml_engineer, rule=decline_rule(fraud_model, 1000.0))
    rule.threshold = 2000.0
    rule_save(actor=ml_engineer, rule=rule)
    rule_delete(actor=ml_engineer, rule=rule)
    actions = list(
        AuditEvent.objects.filter(action__startswith="serving.rule")
        .order_by("id")
        .values_list("action", flat=True)
    )
    assert actions == ["serving.rule_added", "serving.rule_changed", "serving.rule_deleted"]
    with pytest.raises(ValidationError):
        rule_save(actor=ml_engineer, rule=decline_rule(fraud_model, "high"))


def test_serving_panel_shows_the_answering_version_breakers_and_rules(as_person, fraud_model, ml_engineer):
    rule_save(actor=ml_engineer, rule=decline_rule(fraud_model, 5000.0))
    page = as_person("data_scientist").get(f"/models/{fraud_model.name}/")
    assert b"serving-panel-loader" in page.content
    panel = as_person("data_scientist").get(f"/serving/models/{fraud_model.name}/panel")
    assert panel.status_code == 200
    text = panel.content.decode()
    assert 'data-testid="serving-answering"' in text
    assert "v1" in text
    assert "amount &gt; 5000.0" in text


def test_serving_panel_is_hidden_from_other_teams_and_anonymous(as_person, fraud_model):
    assert (
        as_person("other_data_scientist").get(f"/serving/models/{fraud_model.name}/panel").status_code == 404
    )
    assert as_person("anonymous").get(f"/serving/models/{fraud_model.name}/panel").status_code == 302


def test_open_breaker_banner_on_every_page(as_person, fraud_model):
    """The breaker opening raises a page alert: the banner of every page (from the alerts app) shows it."""
    from apps.serving.services import breaker_event_record

    fields = {"model": fraud_model.name, "version": "1", "from_state": "closed", "to_state": "open",
              "reason": "5 failures", "at": "1764748800000", "host": "test"}  # fmt: skip
    breaker_event_record(event_id="1-0", fields=fields)
    page = as_person("manager").get("/models/")
    assert b'data-testid="paging-banner"' in page.content
    assert f"Circuit breaker open: {fraud_model.name} v1".encode() in page.content
