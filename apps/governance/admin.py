"""Admin for the promotion policy: a change is a new version made through the service (audited)."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from hafnium_portal.errors import DomainError

from . import services
from .models import PromotionPolicy


class PromotionPolicyForm(forms.ModelForm):
    class Meta:
        model = PromotionPolicy
        fields = ["rules", "request_ttl_days", "metric_margin", "note"]

    def clean(self):
        cleaned = super().clean()
        try:  # a refused policy is a form error; it is published in save_model
            services.policy_validate(
                rules=cleaned.get("rules") or {},
                request_ttl_days=cleaned.get("request_ttl_days") or 0,
                metric_margin=cleaned.get("metric_margin") or 0,
            )
        except DomainError as exc:
            raise ValidationError(str(exc)) from exc
        return cleaned


@admin.register(PromotionPolicy)
class PromotionPolicyAdmin(admin.ModelAdmin):
    """Policies are never edited: "add" publishes the next version, older ones stay for the record."""

    form = PromotionPolicyForm
    list_display = ["version", "rules", "request_ttl_days", "metric_margin", "created_by", "created_at"]
    readonly_fields = ["version", "created_by", "created_at"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        published = services.policy_publish(actor=request.user, **form.cleaned_data)
        obj.pk, obj.version = published.pk, published.version
