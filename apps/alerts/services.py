"""Alert actions: raise (deduplicated), acknowledge, resolve; each audited, on-call told through the outbox.

Raising is for programs (the breaker, a rollback, drift and SLO checks), so it must never fail their
work for a lost race: the partial unique constraint on (source, key) decides which of two concurrent
raises creates the alert, and the other counts as a repeat of it.
"""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

from apps.accounts.services import SYSTEM_USERNAME
from apps.audit.services import audit_record
from hafnium_portal.enqueue import enqueue_on_commit
from hafnium_portal.errors import Conflict, DomainError

from .models import OPEN_STATES, TRANSITIONS, Alert, AlertNotification, Severity, State
from .permissions import RESPOND_REFUSED, may_respond

DELIVER_TASK = AlertNotification.deliver_task
# Who is mailed a new alert; every raise, acknowledgement and resolution goes to the webhook.
MAILED_SEVERITIES = frozenset({Severity.PAGE, Severity.TICKET})


def _check_text(name: str, value: str, limit: int, *, required: bool = True) -> None:
    if (required and not value) or len(value) > limit or "\x00" in value:
        raise DomainError(
            f"An alert's {name} is{' required,' if required else ''} at most {limit} characters."
        )


def _audit(alert: Alert, action: str, actor, before: str | None, note: str = "") -> None:
    audit_record(
        actor=actor,
        action=f"alerts.{action}",
        obj=alert,
        before={"state": before} if before else None,
        after={"state": alert.state, "source": alert.source, "key": alert.key, "severity": alert.severity,
               "count": alert.count, "note": note},
    )  # fmt: skip


def _url(alert: Alert) -> str:
    return settings.PORTAL_BASE_URL.rstrip("/") + reverse("alerts:detail", args=[alert.pk])


def _outbox(alert: Alert, **fields) -> None:
    notification = AlertNotification.objects.create(alert=alert, **fields)
    enqueue_on_commit(DELIVER_TASK, notification.pk)


def _tell_oncall(alert: Alert, event: str, actor=None) -> None:
    """Write the mail (a new page or ticket alert only) and the webhook call, in the caller's transaction."""
    if event == "alert.raised" and alert.severity in MAILED_SEVERITIES and settings.ALERTS_ONCALL_EMAILS:
        body = f"{alert.title}\n\n"
        if alert.detail:
            body += f"{alert.detail}\n\n"
        if alert.model is not None:
            body += f"Model: {alert.model.name}\n"
        body += f"Source: {alert.source} ({alert.key})\nSince: {alert.first_seen:%Y-%m-%d %H:%M:%S} UTC\n"
        if alert.link:
            link = alert.link
            body += (
                f"Look at: {settings.PORTAL_BASE_URL.rstrip('/') + link if link.startswith('/') else link}\n"
            )
        body += f"Acknowledge it: {_url(alert)}\n"
        _outbox(
            alert,
            channel=AlertNotification.Channel.EMAIL,
            event=event,
            recipients=list(settings.ALERTS_ONCALL_EMAILS),
            subject=f"[Hafnium] {alert.get_severity_display()}: {alert.title}"[:300],
            body=body,
        )
    if settings.ALERTS_WEBHOOK_URL:
        payload = {
            "event": event,
            "at": timezone.now().isoformat(),
            "alert": alert.pk,
            "source": alert.source,
            "key": alert.key,
            "severity": alert.severity,
            "state": alert.state,
            "title": alert.title,
            "detail": alert.detail,
            "model": alert.model.name if alert.model is not None else None,
            "count": alert.count,
            "first_seen": alert.first_seen.isoformat(),
            "link": alert.link,
            "url": _url(alert),
            "by": actor.get_username() if getattr(actor, "is_authenticated", False) else "system",
            "note": alert.note,
        }
        _outbox(alert, channel=AlertNotification.Channel.WEBHOOK, event=event, payload=payload)


def _repeat(source: str, key: str, now) -> Alert | None:
    """Count a raise of an open alert; None when there is none open."""
    open_alert = Alert.objects.filter(source=source, key=key, state__in=OPEN_STATES)
    if open_alert.update(count=F("count") + 1, last_seen=now):
        return open_alert.select_related("model").first()
    return None


def alert_raise(
    *, source: str, key: str, severity: str, title: str, detail: str = "", model=None, link: str = ""
) -> Alert:
    """Raise an alert, or count a repeat of the open one with the same (source, key).

    A new alert is audited and told to on-call (mail for page and ticket, the webhook always) after
    the commit; a repeat bumps `count` and `last_seen` and tells nobody. Safe to call concurrently.
    """
    if severity not in Severity.values:
        raise DomainError(f"An alert's severity is one of {', '.join(Severity.values)}.")
    _check_text("source", source, 60)
    _check_text("key", key, 200)
    _check_text("title", title, 300)
    _check_text("link", link, 500, required=False)
    if "\x00" in detail:
        raise DomainError("An alert's detail cannot hold a NUL byte.")
    # A path of the portal; not "//host" nor "/" and a backslash, which browsers read as another site.
    portal_path = link.startswith("/") and not link.startswith(("//", "/\\"))
    if link and not (portal_path or link.startswith(("https://", "http://"))):
        raise DomainError("An alert's link is a portal path (/...) or an http(s) URL.")
    now = timezone.now()
    with transaction.atomic():
        repeated = _repeat(source, key, now)
        if repeated is not None:
            return repeated
        try:
            with transaction.atomic():  # a savepoint: losing the race must not spoil the caller's transaction
                alert = Alert.objects.create(
                    source=source, key=key, severity=severity, title=title, detail=detail, model=model,
                    link=link, first_seen=now, last_seen=now,
                )  # fmt: skip
        except IntegrityError:
            # Another raise created it since we looked (the constraint made us wait for its commit).
            repeated = _repeat(source, key, now)
            if repeated is None:
                raise
            return repeated
        _audit(alert, "raised", None, None)
        _tell_oncall(alert, "alert.raised")
    return alert


def _move(alert_id: int, to: State, *, actor, note: str, **fields) -> tuple[Alert, str] | None:
    """Compare-and-set the alert's state along TRANSITIONS; None when it is no longer in a state that
    may move there (someone else moved it first)."""
    alert = Alert.objects.select_for_update(of=("self",)).select_related("model").filter(pk=alert_id).first()
    if alert is None or to not in TRANSITIONS[State(alert.state)]:
        return None
    before = alert.state
    alert.state = to
    alert.note = note or alert.note
    for name, value in fields.items():
        setattr(alert, name, value)
    alert.save(update_fields=["state", "note", *fields])
    _audit(alert, to.value, actor, before, note)
    _tell_oncall(alert, f"alert.{to.value}", actor)
    return alert, before


def _person(actor) -> object | None:
    return actor if getattr(actor, "is_authenticated", False) else None


def alert_acknowledge(*, alert: Alert, actor, note: str = "") -> Alert:
    """Someone is on it: the alert stops paging (the banner) but stays open until resolved."""
    if not may_respond(actor):
        raise PermissionDenied(RESPOND_REFUSED)
    _check_text("note", note, 2000, required=False)
    with transaction.atomic():
        moved = _move(
            alert.pk, State.ACKNOWLEDGED, actor=actor, note=note, acknowledged_by=actor,
            acknowledged_at=timezone.now(),
        )  # fmt: skip
    if moved is None:
        alert.refresh_from_db()
        raise Conflict(f"This alert is {alert.get_state_display().lower()} already.")
    return moved[0]


def alert_resolve(*, source: str, key: str, actor=None, note: str = "") -> Alert | None:
    """The condition cleared (a program says so: actor None or the portal's system actor) or a person
    closes it: the open alert of (source, key) is resolved; None when there is none open. A person must
    be allowed to respond."""
    if actor is not None and getattr(actor, "username", "") != SYSTEM_USERNAME and not may_respond(actor):
        raise PermissionDenied(RESPOND_REFUSED)
    _check_text("note", note, 2000, required=False)
    with transaction.atomic():
        open_id = Alert.objects.filter(source=source, key=key, state__in=OPEN_STATES).values_list(
            "pk", flat=True
        )
        for alert_id in open_id[:1]:
            moved = _move(
                alert_id, State.RESOLVED, actor=actor, note=note, resolved_by=_person(actor),
                resolved_at=timezone.now(),
            )  # fmt: skip
            return moved[0] if moved else None
    return None


def alert_resolve_one(*, alert: Alert, actor, note: str = "") -> Alert:
    """A person resolves this alert (the Resolve button): by its id, so that a newer alert with the same
    source and key, raised since the page was loaded, is not closed by mistake."""
    if not may_respond(actor):
        raise PermissionDenied(RESPOND_REFUSED)
    _check_text("note", note, 2000, required=False)
    with transaction.atomic():
        moved = _move(
            alert.pk, State.RESOLVED, actor=actor, note=note, resolved_by=actor, resolved_at=timezone.now()
        )
    if moved is None:
        raise Conflict("This alert is resolved already.")
    return moved[0]
