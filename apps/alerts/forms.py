"""The alerts page's filters and the note given with an acknowledgement or a resolution."""

from django import forms
from django.core.validators import ProhibitNullCharactersValidator

from hafnium_portal.converters import MODEL_NAME_MAX_LENGTH, validate_model_name

from .models import Severity, State

STATE_CHOICES = [("", "Any state"), ("open", "Open (firing or acknowledged)"), *State.choices]
NOTE_MAX_LENGTH = 2000


class AlertFilterForm(forms.Form):
    state = forms.ChoiceField(label="State", required=False, choices=STATE_CHOICES)
    severity = forms.ChoiceField(
        label="Severity", required=False, choices=[("", "Any severity"), *Severity.choices]
    )
    source = forms.CharField(label="Source", required=False, max_length=60)
    model = forms.CharField(
        label="Model", required=False, max_length=MODEL_NAME_MAX_LENGTH, validators=[validate_model_name]
    )

    def filters(self) -> dict:
        """The valid filters given (a bad one is reported by the form and left out)."""
        self.is_valid()
        return {name: self.cleaned_data.get(name, "") for name in self.fields if name not in self.errors}


class NoteForm(forms.Form):
    note = forms.CharField(
        label="Note",
        required=False,
        max_length=NOTE_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        validators=[ProhibitNullCharactersValidator()],
        help_text="Optional: what you found or did (kept with the alert and in the audit trail).",
    )
