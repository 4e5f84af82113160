"""The inbox with 10,000 requests and the audit page with 100,000 events: bounded queries, paginated."""

from datetime import UTC, datetime, timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.audit import chain
from apps.audit.models import AuditEvent
from apps.governance.models import PromotionRequest
from apps.governance.services import policy_current
from apps.registry.models import ModelVersion, Stage

pytestmark = pytest.mark.django_db

REQUESTS = 10_000
EVENTS = 100_000


@pytest.fixture
def ten_thousand_requests(fraud_model, data_scientist):
    start = datetime(2026, 1, 1, tzinfo=UTC)
    versions = ModelVersion.objects.bulk_create(
        ModelVersion(model=fraud_model, version=100 + n, registered_at=start, run_id=f"r{n}")
        for n in range(REQUESTS)
    )
    policy = policy_current()
    PromotionRequest.objects.bulk_create(
        (
            PromotionRequest(
                version=version,
                from_stage=Stage.EXPERIMENT,
                to_stage=Stage.CANDIDATE,
                requested_by=data_scientist,
                justification="bulk",
                policy=policy,
                required_roles=policy.rules["candidate"],
                evidence={},
                evidence_sha256="0" * 64,
                expires_at=timezone.now() + timedelta(days=14),
            )
            for version in versions
        ),
        batch_size=2_000,
    )
    return REQUESTS


@pytest.fixture
def hundred_thousand_events():
    previous, rows, at = chain.GENESIS, [], datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(EVENTS):
        event = {
            "at": at + timedelta(seconds=n),
            "actor_id": None,
            "actor": "system",
            "action": "test.bulk",
            "object_type": "test.thing",
            "object_id": str(n),
            "object_repr": f"thing {n}",
            "before": None,
            "after": {"n": n},
        }
        digest = chain.event_hash(previous, event)
        rows.append(AuditEvent(**event, prev_hash=previous, hash=digest))
        previous = digest
    AuditEvent.objects.bulk_create(rows, batch_size=5_000)
    return EVENTS


def test_inbox_with_ten_thousand_requests_is_paginated_with_bounded_queries(
    client, ds_lead, ten_thousand_requests, django_assert_max_num_queries
):
    client.force_login(ds_lead)
    with django_assert_max_num_queries(25):
        response = client.get(reverse("governance:inbox"))
    assert response.status_code == 200
    page = response.context["page"]
    assert page.paginator.count == REQUESTS
    assert len(page.object_list) <= 50
    with django_assert_max_num_queries(25):
        assert client.get(reverse("governance:inbox"), {"page": 200}).status_code == 200


def test_audit_page_with_a_hundred_thousand_events_is_paginated_with_bounded_queries(
    client, compliance, hundred_thousand_events, django_assert_max_num_queries
):
    client.force_login(compliance)
    with django_assert_max_num_queries(25):
        response = client.get(reverse("audit:event-list"))
    assert response.status_code == 200
    assert f"thing {EVENTS - 1}" in response.content.decode()  # newest first
    with django_assert_max_num_queries(25):
        response = client.get(reverse("audit:event-list"), {"action": "test.bulk", "page": 3})
    assert response.status_code == 200
