"""What makes the scoring processes' copy of the serving config out of date (see config.py), and the
compilation of a version's fast scorer when it is registered."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, post_delete, post_save
from rest_framework.authtoken.models import Token

from apps.registry.models import ModelVersion, RegisteredModel, StageTransition
from apps.registry.signals import version_registered
from hafnium_portal.enqueue import enqueue

from . import config
from .models import FallbackRule, ServingPolicy


def _changed(sender, **kwargs):
    if kwargs.get("update_fields") and set(kwargs["update_fields"]) <= {"last_login"}:
        return  # a sign-in changes nothing the scoring path knows
    config.bump()


User = get_user_model()
for _model in (Token, User, ModelVersion, RegisteredModel, StageTransition, ServingPolicy, FallbackRule):
    post_save.connect(_changed, sender=_model, dispatch_uid=f"serving-config-save-{_model.__name__}")
    post_delete.connect(_changed, sender=_model, dispatch_uid=f"serving-config-delete-{_model.__name__}")
for _through in (User.groups.through, User.user_permissions.through, Group.permissions.through):
    m2m_changed.connect(_changed, sender=_through, dispatch_uid=f"serving-config-m2m-{_through.__name__}")


def _compile_registered(sender, version, created, **kwargs):
    # Sent after the commit; the task id makes a redelivery or a registration sent again one task.
    enqueue("apps.serving.tasks.compile_scorer", version.pk, task_id=f"compile-scorer-{version.pk}")


version_registered.connect(_compile_registered, dispatch_uid="serving-compile-registered")
