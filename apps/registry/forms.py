"""Forms of the registry pages: the model list's filters, the model card narrative, the compare picker."""

from django import forms

from .cards import NARRATIVE_TITLES
from .models import ModelVersion, Stage


class ModelFilterForm(forms.Form):
    """The GET filters of the model list; a field with a bad value is reported and left out."""

    q = forms.CharField(label="Search", required=False, max_length=200)
    stage = forms.ChoiceField(
        label="Has a version in stage", required=False, choices=[("", "Any stage"), *Stage.choices]
    )
    team = forms.ChoiceField(label="Team", required=False)

    def __init__(self, data, *, teams):
        super().__init__(data)
        self.fields["team"].choices = [("", "Any team")] + [(team.slug, team.name) for team in teams]

    def filters(self) -> dict[str, str]:
        """The valid filters, as keyword arguments of `selectors.model_list`."""
        self.is_valid()
        cleaned = getattr(self, "cleaned_data", {})
        return {
            "search": cleaned.get("q", "").strip(),
            "stage": cleaned.get("stage", ""),
            "team": cleaned.get("team", ""),
        }

    def query(self) -> dict[str, str]:
        """The valid, non-empty filters as query parameters, for page links."""
        names = {"search": "q", "stage": "stage", "team": "team"}
        return {names[key]: value for key, value in self.filters().items() if value}


class ModelCardForm(forms.Form):
    """The narrative of a model card; the rest of the card comes from the portal's records."""

    intended_use = forms.CharField(
        label=NARRATIVE_TITLES["intended_use"],
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="What the model is for, and who relies on its scores. Required before promotion.",
    )
    out_of_scope_use = forms.CharField(
        label=NARRATIVE_TITLES["out_of_scope_use"],
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Uses the model was not built or validated for.",
    )
    limitations = forms.CharField(
        label=NARRATIVE_TITLES["limitations"],
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="Known weaknesses, populations it scores poorly. Required before promotion.",
    )
    ethical_considerations = forms.CharField(
        label=NARRATIVE_TITLES["ethical_considerations"],
        required=False,
        max_length=20_000,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Fairness, consent and privacy concerns, and how they were addressed.",
    )


class CompareForm(forms.Form):
    """Two versions of one model to compare; what is not given defaults as the compare page says.

    A: the latest version. B: the production version, or (when there is none, or A is it) the
    nearest other version, the previous one first.
    """

    NOT_A_VERSION = "%(value)s is not a version of this model."

    a = forms.TypedChoiceField(
        label="Version A",
        coerce=int,
        required=False,
        empty_value=None,
        error_messages={"invalid_choice": NOT_A_VERSION},
    )
    b = forms.TypedChoiceField(
        label="Version B",
        coerce=int,
        required=False,
        empty_value=None,
        error_messages={"invalid_choice": NOT_A_VERSION},
    )

    def __init__(self, data, *, versions: list[ModelVersion], production: ModelVersion | None):
        super().__init__(data)
        self.versions = sorted(versions, key=lambda v: v.version, reverse=True)
        self.production = production
        choices = [(v.version, f"v{v.version} ({v.get_stage_display()})") for v in self.versions]
        for name in ("a", "b"):
            self.fields[name].choices = [("", "Default"), *choices]

    def _default_b(self, a: ModelVersion) -> ModelVersion:
        if self.production is not None and self.production.version != a.version:
            return self.production
        older = [v for v in self.versions if v.version < a.version]
        newer = [v for v in reversed(self.versions) if v.version > a.version]
        return (older or newer or [a])[0]

    def clean(self):
        cleaned = super().clean()
        if self.errors or not self.versions:
            return cleaned
        by_number = {v.version: v for v in self.versions}
        a = by_number[cleaned["a"]] if cleaned.get("a") is not None else self.versions[0]
        b = by_number[cleaned["b"]] if cleaned.get("b") is not None else self._default_b(a)
        cleaned["version_a"], cleaned["version_b"] = a, b
        return cleaned
