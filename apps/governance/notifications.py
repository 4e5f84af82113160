"""Who hears about governance events, and how: email to the people concerned, a signed webhook for systems.

Called inside the action's transaction: each mail and webhook call is written to the outbox
(Notification) with the event, and delivered after the commit by Celery; a periodic sweep delivers
what a broker outage left behind.
"""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone

from hafnium_portal.enqueue import enqueue_on_commit

from .models import Notification


def _link(request) -> str:
    return settings.PORTAL_BASE_URL.rstrip("/") + reverse("governance:request-detail", args=[request.pk])


def _approvers(request) -> list[str]:
    users = get_user_model().objects.filter(groups__name__in=request.required_roles, is_active=True)
    users = users.exclude(pk__in=[request.requested_by_id, request.version.created_by_id or 0])
    if request.version.mlflow_user:  # a version synced from MLflow: its creator is known by name only
        users = users.exclude(username=request.version.mlflow_user)
    return sorted({user.email for user in users if user.email})


def _requester(request) -> list[str]:
    return [request.requested_by.email] if request.requested_by.email else []


def _outbox(**fields) -> None:
    notification = Notification.objects.create(**fields)
    enqueue_on_commit("apps.governance.tasks.deliver_notification", notification.pk)


def _email(recipients: list[str], subject: str, body: str, event: str) -> None:
    if recipients:
        _outbox(
            channel=Notification.Channel.EMAIL, event=event, recipients=recipients, subject=subject, body=body
        )


def _webhook(event: str, request, **extra) -> None:
    if settings.GOVERNANCE_WEBHOOK_URL:
        payload = {
            "event": event,
            "at": timezone.now().isoformat(),
            "request": request.pk,
            "model": request.version.model.name,
            "version": request.version.version,
            "to_stage": request.to_stage,
            "status": request.status,
            "url": _link(request),
            **extra,
        }
        _outbox(channel=Notification.Channel.WEBHOOK, event=event, payload=payload)


def request_created(request) -> None:
    subject = f"[Hafnium] Approval needed: {request.version} to {request.get_to_stage_display()}"
    body = (
        f"{request.requested_by} asks to promote {request.version} to {request.get_to_stage_display()}.\n\n"
        f"Justification: {request.justification}\n\nRequired: {', '.join(request.required_roles)}\n"
        f"Review it: {_link(request)}\n"
    )
    _email(_approvers(request), subject, body, "promotion.requested")
    _webhook("promotion.requested", request)


def decision_made(request, approval) -> None:
    verb = approval.get_decision_display().lower()
    subject = f"[Hafnium] {request.version}: {verb} by {approval.role}"
    body = f"{approval.approver} {verb} your request as {approval.role}.\n\n{approval.comment}\n\n"
    body += f"{_link(request)}\n"
    _email(_requester(request), subject, body, f"promotion.{approval.decision}")
    _webhook(
        f"promotion.{approval.decision}",
        request,
        role=approval.role,
        approver=approval.approver.get_username(),
    )


def approvals_voided(request, voided, reason: str) -> None:
    subject = f"[Hafnium] Your approval of {request.version} is void"
    body = f"Your approval is void: {reason}. Please review the request again:\n{_link(request)}\n"
    _email(
        sorted({a.approver.email for a in voided if a.approver.email}),
        subject,
        body,
        "promotion.evidence_changed",
    )
    _webhook("promotion.evidence_changed", request, voided=[a.pk for a in voided])


def request_closed(request) -> None:
    subject = (
        f"[Hafnium] {request.version} to {request.get_to_stage_display()}: {request.get_status_display()}"
    )
    status = request.get_status_display().lower()
    body = f"Your promotion request #{request.pk} is now {status}.\n\n{_link(request)}\n"
    _email(_requester(request), subject, body, f"promotion.{request.status}")
    _webhook(f"promotion.{request.status}", request)


def _deciders(request) -> list[str]:
    """Those who approved the request (their standing approvals)."""
    approvals = request.approvals.filter(voided_at__isnull=True, decision="approve").select_related(
        "approver"
    )
    return sorted({a.approver.email for a in approvals if a.approver.email})


def deployment_outcome(request, *, event: str, headline: str, detail: str, link: str = "") -> None:
    """A completed promotion's deployment ended (deployments calls this): the requester and the approvers
    hear how (staged, rejected by the staging tests, promoted, rolled back), and why."""
    subject = f"[Hafnium] {request.version}: {headline}"
    body = f"{headline}.\n\n{detail}\n\n{link or _link(request)}\n"
    _email(sorted(set(_requester(request)) | set(_deciders(request))), subject, body, event)
    _webhook(event, request, detail=detail[:1000])
