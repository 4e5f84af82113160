"""Forms of serving's pages: a new version of a model's thresholds, a fallback rule."""

from django import forms
from django.core.exceptions import ValidationError

from hafnium_portal.errors import DomainError

from . import config, services
from .models import FallbackRule


class BootstrapForm:
    """Bootstrap's classes on the widgets (is-invalid on a field in error), and each field's help linked."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            field.widget.attrs["class"] = (
                "form-select" if isinstance(field.widget, forms.Select) else "form-control"
            )
            field.widget.attrs["aria-describedby"] = f"id_{name}-help"

    def full_clean(self):
        super().full_clean()
        for name in self.errors:
            if name in self.fields:
                self.fields[name].widget.attrs["class"] += " is-invalid"
                self.fields[name].widget.attrs["aria-describedby"] += f" id_{name}-errors"


class PolicyForm(BootstrapForm, forms.Form):
    """The thresholds and breaker of a new serving policy version, and why it changes."""

    review_at = forms.FloatField(
        label="Review from score", help_text="Scores from here on are reviewed (0 to 1)."
    )
    decline_at = forms.FloatField(
        label="Decline from score", help_text="Scores from here on are declined (review_at to 1)."
    )
    breaker_failures = forms.IntegerField(
        label="Breaker opens after", help_text="Consecutive model failures that open the circuit breaker."
    )
    breaker_reset_after = forms.FloatField(
        label="Breaker probes after (s)", help_text="Seconds before a probe tries the model again."
    )
    latency_budget_ms = forms.FloatField(
        label="Latency budget (ms)", help_text="A model answer slower than this counts as a failure."
    )
    reason = forms.CharField(
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Why the thresholds change: kept with the version and in the audit trail.",
    )

    def clean(self):
        cleaned = super().clean()
        values = {key: cleaned.get(key) for key in config.DEFAULT_POLICY}
        if None not in values.values():  # a field already in error says so itself
            try:
                services.policy_validate(**values)
            except DomainError as exc:
                raise ValidationError(str(exc)) from exc
        return cleaned


class RuleForm(BootstrapForm, forms.ModelForm):
    """A rule of the rules-only scorer; the model's clean() checks it as the scorer will read it."""

    class Meta:
        model = FallbackRule
        fields = ["order", "feature", "operator", "threshold", "score", "decision"]
        labels = {"order": "Order (first match wins)", "score": "Score answered"}
        widgets = {"threshold": forms.TextInput}
        help_texts = {
            "feature": "A feature of the model's signature.",
            "threshold": 'JSON: a number (1500), a text for == and != ("crypto"), a list for in (["a"]).',
        }
