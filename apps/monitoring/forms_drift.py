"""The drift report list's filters (GET); a field with a bad value is reported and left out."""

from datetime import datetime, time, timedelta

from django import forms
from django.utils import timezone

from hafnium_portal.converters import is_model_name

from .models import Verdict

DATE = forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d")


class DriftReportFilterForm(forms.Form):
    model = forms.CharField(required=False, max_length=200)
    verdict = forms.ChoiceField(required=False, choices=[("", "Any verdict"), *Verdict.choices])
    date_from = forms.DateField(label="From", required=False, widget=DATE)
    date_to = forms.DateField(label="To", required=False, widget=DATE)

    def clean_model(self):
        name = self.cleaned_data.get("model", "").strip()
        if name and not is_model_name(name):
            raise forms.ValidationError("No model has this name.")
        return name

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            self.add_error("date_to", "The end date is before the start date.")
        return cleaned

    def filters(self) -> dict:
        """The valid filters as keyword arguments of `selectors.drift_report_list` (dates: whole days)."""
        self.is_valid()
        cleaned = self.cleaned_data
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        zone = timezone.get_current_timezone()
        return {
            "model": cleaned.get("model", ""),
            "verdict": cleaned.get("verdict", ""),
            "since": datetime.combine(start, time.min, tzinfo=zone) if start else None,
            "until": datetime.combine(end + timedelta(days=1), time.min, tzinfo=zone) if end else None,
        }

    def query(self) -> dict[str, str]:
        self.is_valid()
        return {
            name: value.isoformat() if hasattr(value, "isoformat") else value
            for name, value in self.cleaned_data.items()
            if value
        }
