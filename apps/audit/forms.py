"""The audit page's filters (GET); a field with a bad value is reported and left out."""

from django import forms

DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class EventFilterForm(forms.Form):
    action = forms.CharField(
        required=False, max_length=100, help_text='Exact, or a prefix ending in * ("promotion.*").'
    )
    actor = forms.CharField(label="Actor", required=False, max_length=150, help_text="Username.")
    object_type = forms.CharField(label="Object type", required=False, max_length=100)
    object_id = forms.CharField(label="Object id", required=False, max_length=100)
    date_from = forms.DateField(label="From", required=False, widget=DATE)
    date_to = forms.DateField(label="To", required=False, widget=DATE)
    q = forms.CharField(label="Object contains", required=False, max_length=300)

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> dict:
        """The valid filters, as keyword arguments of `selectors.event_list`."""
        self.is_valid()  # a field with an error is left out of cleaned_data
        cleaned = self.cleaned_data
        filters = {
            name: cleaned.get(name, "").strip() for name in ("action", "actor", "object_type", "object_id")
        }
        return {
            **filters,
            "date_from": cleaned.get("date_from"),
            "date_to": cleaned.get("date_to"),
            "text": cleaned.get("q", "").strip(),
        }

    def query(self) -> dict[str, str]:
        """The valid, non-empty filters as query parameters, for page and export links."""
        names = {"text": "q"}
        return {
            names.get(key, key): value.isoformat() if hasattr(value, "isoformat") else value
            for key, value in self.filters().items()
            if value
        }
