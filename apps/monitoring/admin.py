"""Admin for monitoring. Drift: a model's monitoring policy changes by publishing a new version (audited);
drift run schedules are django-celery-beat's periodic tasks ("drift run: <model>"), edited there."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from hafnium_portal.errors import DomainError

from .models import DriftRun, MonitoringPolicy
from .services.drift_policy import POLICY_FIELDS, policy_publish, policy_validate


class MonitoringPolicyForm(forms.ModelForm):
    class Meta:
        model = MonitoringPolicy
        fields = ["model", *POLICY_FIELDS, "note"]

    def clean(self):
        cleaned = super().clean()
        try:  # a refused policy is a form error; it is published in save_model
            policy_validate({name: cleaned.get(name) or 0 for name in POLICY_FIELDS})
        except DomainError as exc:
            raise ValidationError(str(exc)) from exc
        return cleaned


@admin.register(MonitoringPolicy)
class MonitoringPolicyAdmin(admin.ModelAdmin):
    """Policies are never edited: "add" publishes the model's next version, older ones stay for the record."""

    form = MonitoringPolicyForm
    list_display = ["model", "version", "psi_alert", "psi_severe", "auc_drop_retrain", "auc_drop_rollback",
                    "prediction_shift_investigate", "created_by", "created_at"]  # fmt: skip
    list_filter = ["model"]
    readonly_fields = ["version", "created_by", "created_at"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        data = dict(form.cleaned_data)
        model, note = data.pop("model"), data.pop("note", "")
        published = policy_publish(actor=request.user, model=model, note=note, **data)
        obj.pk, obj.version = published.pk, published.version


@admin.register(DriftRun)
class DriftRunAdmin(admin.ModelAdmin):
    """Read only: runs are made by the schedule or the report pages."""

    list_display = ["pk", "model", "version", "status", "verdict", "rows", "window_end", "trigger"]
    list_filter = ["status", "verdict", "trigger"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
