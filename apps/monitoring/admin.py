"""Admin for monitoring. Drift: a model's monitoring policy changes by publishing a new version (audited);
drift run schedules are django-celery-beat's periodic tasks ("drift run: <model>"), edited there. SLOs: a
model's objectives change by setting a new version (audited)."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from hafnium_portal.errors import DomainError

from .models import DriftRun, MonitoringPolicy, SLOObjective
from .services.drift_policy import POLICY_FIELDS, policy_publish, policy_validate
from .services.slo import slo_objective_set, slo_objective_validate


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


# --- SLOs ------------------------------------------------------------------------------------------


class SLOObjectiveForm(forms.ModelForm):
    class Meta:
        model = SLOObjective
        fields = ["model", "availability", "latency_ms", "latency_quantile", "min_events", "note"]

    def clean(self):
        cleaned = super().clean()
        try:  # refused objectives are a form error; they are published in save_model
            slo_objective_validate(
                availability=cleaned.get("availability") or 0,
                latency_ms=cleaned.get("latency_ms") or 0,
                latency_quantile=cleaned.get("latency_quantile") or 0,
                min_events=cleaned.get("min_events") or 0,
            )
        except DomainError as exc:
            raise ValidationError(str(exc)) from exc
        return cleaned


@admin.register(SLOObjective)
class SLOObjectiveAdmin(admin.ModelAdmin):
    """Objectives are never edited: "add" sets the model's next version, older ones stay for the record."""

    form = SLOObjectiveForm
    list_display = ["model", "version", "availability", "latency_ms", "latency_quantile", "min_events",
                    "created_by", "created_at"]  # fmt: skip
    list_filter = ["model"]
    readonly_fields = ["version", "created_by", "created_at"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        published = slo_objective_set(actor=request.user, **form.cleaned_data)
        obj.pk, obj.version = published.pk, published.version
