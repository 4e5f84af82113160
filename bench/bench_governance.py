"""Times the approvals inbox (10,000 requests), the audit page (100,000 events) and verify_audit (1,000,000).

Each is run beside the straightforward alternative, in the same run, and the ratio is printed:
- inbox: ours (one query through the policies' rules) vs filtering every pending request in Python;
- audit page: ours (pages by event id, no COUNT) vs Django's Paginator, which counts every event;
- verify_audit: ours (rows from the cursor as text, canonical form built as text, the C JSON scanner and
  encoder built once) vs the previous way (rows as dicts through the ORM, json.dumps per event).
The pages are requested through Django's test client (the whole view and template, no network).
"""

import argparse
import os
import sys
from datetime import UTC, datetime, timedelta

from _setup import best_of, machine, portal_setup, stopwatch


def requests_setup(count: int):
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.utils import timezone

    from apps.accounts.services import team_ensure
    from apps.governance.models import PromotionRequest
    from apps.governance.services import policy_current
    from apps.registry.models import ModelVersion, Stage
    from apps.registry.services import model_ensure

    team = team_ensure(name="Fraud Analytics", slug="fraud-analytics")
    users = get_user_model().objects
    requester = users.create_user("dana")
    requester.groups.add(team.group, Group.objects.get(name="Data Scientist"))
    lead = users.create_user("lee")
    lead.groups.add(team.group, Group.objects.get(name="Data Scientist Lead"))
    model = model_ensure(name="fraud-scorer", team=team)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    versions = ModelVersion.objects.bulk_create(
        (
            ModelVersion(model=model, version=n + 1, registered_at=start, created_by=requester)
            for n in range(count)
        ),
        batch_size=5_000,
    )
    policy = policy_current()
    stages = [Stage.CANDIDATE, Stage.STAGING, Stage.PRODUCTION]  # a third of them wait for the lead
    PromotionRequest.objects.bulk_create(
        (
            PromotionRequest(
                version=version,
                from_stage=Stage.EXPERIMENT,
                to_stage=stages[n % 3],
                requested_by=requester,
                justification="bench",
                policy=policy,
                required_roles=policy.rules[stages[n % 3]],
                evidence={},
                evidence_sha256="0" * 64,
                expires_at=timezone.now() + timedelta(days=14),
            )
            for n, version in enumerate(versions)
        ),
        batch_size=5_000,
    )
    return lead


def naive_inbox(user) -> list:
    """What one writes first: every pending request the user can see, checked one by one in Python."""
    from apps.accounts.roles import roles_of
    from apps.governance.models import PromotionRequest
    from apps.governance.selectors import requests_visible_to

    held = {role.value for role in roles_of(user)}
    waiting = []
    for request in (
        requests_visible_to(user).filter(status=PromotionRequest.Status.PENDING).order_by("created_at")
    ):
        filled = {a.role for a in request.approvals.filter(voided_at__isnull=True)}
        mine = [role for role in request.required_roles if role in held and role not in filled]
        if mine and request.requested_by_id != user.pk and request.version.created_by_id != user.pk:
            waiting.append(request)
    return waiting


def events_setup(count: int) -> None:
    from apps.audit import chain
    from apps.audit.models import AuditEvent

    previous, batch, at = chain.GENESIS, [], datetime(2026, 1, 1, tzinfo=UTC)
    for n in range(count):
        event = {
            "at": at + timedelta(seconds=n),
            "actor_id": None,
            "actor": "system",
            "action": "bench.event",
            "object_type": "bench.thing",
            "object_id": str(n),
            "object_repr": f"thing {n}",
            "before": None,
            "after": {"n": n},
        }
        digest = chain.event_hash(previous, event)
        batch.append(AuditEvent(**event, prev_hash=previous, hash=digest))
        previous = digest
        if len(batch) == 10_000:
            AuditEvent.objects.bulk_create(batch)
            batch = []
    AuditEvent.objects.bulk_create(batch)


def previous_verify() -> tuple[int | None, int]:
    """verify_audit as it was (15.5 s for 1,000,000 events): the ORM's rows as dicts, in chunks of
    10,000, each re-encoded with json.dumps (canonical) and hashed."""
    from apps.audit import chain
    from apps.audit.models import AuditEvent

    values = AuditEvent.objects.order_by("id").values("id", "prev_hash", "hash", *chain.FIELDS)
    return chain.first_break(values.iterator(chunk_size=10_000))


def our_verify() -> tuple[int | None, int]:
    from apps.audit.services import audit_verify

    result = audit_verify()
    return result.broken, result.checked


def row(label: str, ours: float, alternative: float) -> str:
    return f"{label:<38} {ours * 1000:>10.1f} ms {alternative * 1000:>10.1f} ms {ours / alternative:>10.3f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=10_000)
    parser.add_argument("--events", type=int, default=100_000, help="events behind the audit page")
    parser.add_argument("--verify-events", type=int, default=1_000_000, help="events verify_audit checks")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="2,000 requests, 20,000 and 100,000 events")
    options = parser.parse_args()
    if options.quick:
        options.requests, options.events, options.verify_events = 2_000, 20_000, 100_000
    print(f"bench_governance: inbox, audit page, verify_audit ({machine()})")
    os.environ.update({"DJANGO_ALLOWED_HOSTS": "testserver", "DJANGO_SECURE_SSL_REDIRECT": "false"})
    portal_setup()

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group
    from django.core.paginator import Paginator
    from django.test import Client
    from django.urls import reverse

    from apps.audit.models import AuditEvent
    from apps.governance.selectors import inbox_for

    with stopwatch() as setup:
        lead = requests_setup(options.requests)
        events_setup(options.events)
    sizes = f"{options.requests:,} requests, {options.events:,} events"
    print(f"setup (untimed): {sizes} in {setup['seconds']:.1f} s")

    ours_inbox = list(inbox_for(lead)[:25])
    naive = naive_inbox(lead)
    if [r.pk for r in ours_inbox] != [r.pk for r in naive[:25]]:
        print("the two inboxes disagree", file=sys.stderr)
        return 1
    auditor = get_user_model().objects.create_user("cora")
    auditor.groups.add(Group.objects.get(name="Compliance"))
    client = Client()
    client.force_login(lead)
    inbox_page, _ = best_of(options.repeats, lambda: client.get(reverse("governance:inbox")))
    inbox_query, _ = best_of(options.repeats, lambda: list(inbox_for(lead)[:25]))
    naive_query, _ = best_of(1, lambda: naive_inbox(lead)[:25])
    client.force_login(auditor)
    audit_page, _ = best_of(options.repeats, lambda: client.get(reverse("audit:event-list")))
    ours_audit, _ = best_of(options.repeats, lambda: list(AuditEvent.objects.order_by("-id")[:50]))
    counted_audit, _ = best_of(
        options.repeats,
        lambda: list(Paginator(AuditEvent.objects.order_by("-id"), 50).get_page(1).object_list),
    )

    with stopwatch() as more:
        if options.verify_events > options.events:
            AuditEvent.objects.all().delete()  # the bench's own SQLite database: rebuild at full size
            events_setup(options.verify_events)
    print(f"setup (untimed): {options.verify_events:,} events for verify_audit in {more['seconds']:.1f} s")
    # Alternated, best of two each: the machine is shared, a burst of other work hits both alike.
    verify = previous_verify_s = float("inf")
    for _ in range(2):
        seconds, (broken, checked) = best_of(1, our_verify)
        verify = min(verify, seconds)
        seconds, (old_broken, old_checked) = best_of(1, previous_verify)
        previous_verify_s = min(previous_verify_s, seconds)
    if (broken, checked) != (old_broken, old_checked) or broken is not None:
        print(
            f"verification disagrees or fails: {(broken, checked)} vs {(old_broken, old_checked)}",
            file=sys.stderr,
        )
        return 1

    print(f"{'':<38} {'ours':>13} {'alternative':>13} {'ours/alt':>10}")
    print(f"{'inbox page, whole response':<38} {inbox_page * 1000:>10.1f} ms")
    print(row(f"inbox query, {options.requests:,} requests", inbox_query, naive_query))
    print(f"{'audit page, whole response':<38} {audit_page * 1000:>10.1f} ms")
    print(row(f"audit first page, {options.events:,} events", ours_audit, counted_audit))
    print(row(f"verify_audit, {checked:,} events", verify, previous_verify_s))
    print(f"verify_audit: {checked / verify:,.0f} events/s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
