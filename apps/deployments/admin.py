"""Admin for the rollout policy (a change is a new version made through the service, audited) and a
read-only view of rollouts; rollouts move through the controller and the controls only."""

from django import forms
from django.contrib import admin

from . import services
from .models import Rollout, RolloutPolicy
from .services.starting import POLICY_FIELDS


class RolloutPolicyForm(forms.ModelForm):
    class Meta:
        model = RolloutPolicy
        fields = ["model", *POLICY_FIELDS, "note"]

    def clean(self):
        cleaned = super().clean()
        candidate = RolloutPolicy(**{name: cleaned.get(name) for name in POLICY_FIELDS}, version=1)
        candidate.clean()  # a policy the controller cannot run is a form error
        return cleaned


@admin.register(RolloutPolicy)
class RolloutPolicyAdmin(admin.ModelAdmin):
    form = RolloutPolicyForm
    list_display = [
        "__str__",
        "steps",
        "analysis_interval_s",
        "min_samples",
        "progress_deadline_s",
        "created_at",
    ]
    list_filter = ["model"]

    def has_change_permission(self, request, obj=None):
        return obj is None  # versions are never edited: "add" publishes a new one

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return request.user.is_superuser  # the service's rule: administrators publish policies

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in POLICY_FIELDS}
        published = services.rollout_policy_publish(
            actor=request.user, model=form.cleaned_data.get("model"), note=form.cleaned_data["note"], **values
        )
        obj.pk, obj.version = published.pk, published.version


@admin.register(Rollout)
class RolloutAdmin(admin.ModelAdmin):
    list_display = ["__str__", "model", "kind", "state", "weight_bp", "created_at"]
    list_filter = ["kind", "state"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
