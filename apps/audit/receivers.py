"""Events the audit trail records by itself: logins, failed logins, logouts, role and team changes."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import m2m_changed
from django.dispatch import receiver

from .context import current_actor
from .services import audit_record


@receiver(user_logged_in)
def _logged_in(sender, request, user, **kwargs):
    audit_record(actor=user, action="auth.login", obj=user)


@receiver(user_logged_out)
def _logged_out(sender, request, user, **kwargs):
    if user is not None:
        audit_record(actor=user, action="auth.logout", obj=user)


@receiver(user_login_failed)
def _login_failed(sender, credentials, request=None, **kwargs):
    username = str(credentials.get("username", ""))[:150]
    address = request.META.get("REMOTE_ADDR", "") if request is not None else ""
    audit_record(
        actor=username or "anonymous",
        action="auth.login_failed",
        object_type="auth.user",
        object_repr=username,
        after={"remote_addr": address},
    )


@receiver(m2m_changed, sender=get_user_model().groups.through)
def _groups_changed(sender, instance, action, reverse, model, pk_set, **kwargs):
    """Role and team memberships, whichever side they were changed from (user page or group page)."""
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    verb = {"post_add": "added", "post_remove": "removed", "post_clear": "cleared"}[action]
    if reverse:  # group.user_set changed
        users = get_user_model().objects.filter(pk__in=pk_set or [])
        pairs = [(user, instance) for user in users]
    else:
        pairs = [(instance, group) for group in Group.objects.filter(pk__in=pk_set or [])]
    for user, group in pairs:
        audit_record(
            actor=current_actor(),
            action=f"accounts.membership_{verb}",
            obj=user,
            after={"group": group.name},
        )
