"""Forms of the deployments pages: the list's filters and the reason a control asks for. They parse
input; whether a control is allowed (who, in which state, with which reason) is the services' to say."""

from django import forms

from hafnium_portal.converters import is_model_name
from hafnium_portal.errors import DomainError

from .models import Rollout
from .selectors import ACTIVE


class RolloutFilterForm(forms.Form):
    """The GET filters of the deployments list; a field with a bad value is reported and left out."""

    model = forms.ChoiceField(label="Model", required=False)
    state = forms.ChoiceField(
        label="State",
        required=False,
        choices=[("", "Any state"), (ACTIVE, "Active (not finished)"), *Rollout.State.choices],
    )
    kind = forms.ChoiceField(label="Kind", required=False, choices=[("", "Any kind"), *Rollout.Kind.choices])

    def __init__(self, data, *, model_names):
        super().__init__(data)
        # Only models the user may see are offered; a name outside the rule is never looked up.
        self.fields["model"].choices = [("", "Any model")] + [
            (name, name) for name in model_names if is_model_name(name)
        ]

    def filters(self) -> dict[str, str]:
        self.is_valid()
        cleaned = getattr(self, "cleaned_data", {})
        return {name: cleaned.get(name, "") for name in ("model", "state", "kind")}

    def query(self) -> dict[str, str]:
        """The valid, non-empty filters as query parameters, for page links."""
        return {name: value for name, value in self.filters().items() if value}


class _TextForm(forms.Form):
    """One optional text: whether it is needed is the service's rule; a malformed one (a NUL byte, too
    long) is refused here, naming the field (a DomainError: 400)."""

    def text(self) -> str:
        if not self.is_valid():
            raise DomainError(
                " ".join(
                    f"{self.fields[name].label}: {' '.join(errors)}" for name, errors in self.errors.items()
                )
            )
        (value,) = self.cleaned_data.values()
        return value


class ReasonForm(_TextForm):
    """The reason a person gives for a control (promote now, abort, emergency rollback need one)."""

    reason = forms.CharField(label="Reason", required=False, max_length=2000, strip=True)


class NoteForm(_TextForm):
    """The note a second person may add when confirming an emergency rollback."""

    note = forms.CharField(label="Note", required=False, max_length=2000, strip=True)
