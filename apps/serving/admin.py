"""Admin of serving: a policy change publishes a new version; rules change through the audited services."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from hafnium_portal.errors import DomainError

from . import services
from .models import BreakerTransition, FallbackRule, RoutingTable, ServingPolicy


class ServingPolicyForm(forms.ModelForm):
    class Meta:
        model = ServingPolicy
        fields = ["model", "review_at", "decline_at", "breaker_failures", "breaker_reset_after",
                  "latency_budget_ms", "note"]  # fmt: skip

    def clean(self):
        cleaned = super().clean()
        try:
            services.policy_validate(**{key: cleaned.get(key) or 0 for key in services.config.DEFAULT_POLICY})
        except DomainError as exc:
            raise ValidationError(str(exc)) from exc
        return cleaned


@admin.register(ServingPolicy)
class ServingPolicyAdmin(admin.ModelAdmin):
    """Never edited: "add" publishes the model's next version; older ones stay for the record."""

    form = ServingPolicyForm
    list_display = ["model", "version", "review_at", "decline_at", "breaker_failures", "breaker_reset_after",
                    "latency_budget_ms", "created_by", "created_at"]  # fmt: skip
    list_filter = ["model"]

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return services.can_edit_serving(request.user)

    def save_model(self, request, obj, form, change):
        published = services.policy_publish(actor=request.user, **form.cleaned_data)
        obj.pk, obj.version = published.pk, published.version


@admin.register(FallbackRule)
class FallbackRuleAdmin(admin.ModelAdmin):
    list_display = ["model", "order", "feature", "operator", "threshold", "score", "decision", "updated_at"]
    list_filter = ["model"]
    ordering = ["model", "order", "id"]

    def has_add_permission(self, request):
        return services.can_edit_serving(request.user)

    def has_change_permission(self, request, obj=None):
        return services.can_edit_serving(request.user)

    def has_delete_permission(self, request, obj=None):
        return services.can_edit_serving(request.user)

    def save_model(self, request, obj, form, change):
        services.rule_save(actor=request.user, rule=obj)

    def delete_model(self, request, obj):
        services.rule_delete(actor=request.user, rule=obj)

    def delete_queryset(self, request, queryset):
        for rule in queryset:
            services.rule_delete(actor=request.user, rule=rule)


@admin.register(BreakerTransition)
class BreakerTransitionAdmin(admin.ModelAdmin):
    list_display = ["model", "version", "from_state", "to_state", "reason", "at"]
    list_filter = ["model", "to_state"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(RoutingTable)
class RoutingTableAdmin(admin.ModelAdmin):
    """Read only: tables change through routes_set (rollouts), which audits and publishes them."""

    list_display = ["model", "environment", "revision", "weights", "reason", "created_by", "created_at"]
    list_filter = ["environment", "model"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
