"""Forms of the governance pages: they parse input; the rules (who, which stage, what is required) are the
services' to check, so a refused action shows the service's own message."""

from django import forms

from .models import PromotionRequest


class PromotionRequestForm(forms.Form):
    # The stage the requester saw on the form: if the version moved meanwhile, the request is refused
    # instead of silently asking for another stage.
    to_stage = forms.CharField(widget=forms.HiddenInput, required=False)
    justification = forms.CharField(
        label="Justification",
        required=False,
        max_length=10_000,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="Why this version should be promoted: what changed, what the evidence shows. Required.",
    )


class DecisionForm(forms.Form):
    """Approve or reject. A rejection needs a comment; the service says so if it is missing."""

    comment = forms.CharField(label="Comment", required=False, max_length=10_000, strip=True)
    role = forms.CharField(label="Decide as", required=False, max_length=50)
    # The evidence the approver was shown: the decision is refused (409) if it has moved since.
    evidence_sha256 = forms.CharField(widget=forms.HiddenInput, required=False, max_length=64)
    override_reason = forms.CharField(
        label="Override reason",
        required=False,
        max_length=10_000,
        strip=True,
        help_text="Required to approve while a hard pre-check fails: why approving is right anyway.",
    )


class CommentForm(forms.Form):
    body = forms.CharField(
        label="Add a comment",
        required=False,
        max_length=10_000,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3}),
    )


class MyRequestsFilterForm(forms.Form):
    status = forms.ChoiceField(
        label="Status", required=False, choices=[("", "Any status"), *PromotionRequest.Status.choices]
    )

    def status_filter(self) -> str:
        """The valid status chosen, or "" (a bad value is reported by the form and left out)."""
        return self.cleaned_data.get("status", "") if self.is_valid() else ""


class ProductionOnForm(forms.Form):
    date = forms.DateField(
        label="Date",
        required=False,
        input_formats=["%Y-%m-%d"],
        error_messages={"invalid": "Enter a date as YYYY-MM-DD, for example 2026-01-31."},
        help_text="The answer is the version in Production at the end of that day.",
    )
