"""Signals other apps listen to, so that the registry need not import them (dependencies point one way)."""

from django.dispatch import Signal

# A model's governance evidence may have changed (its card was edited): kwargs `model`.
evidence_changed = Signal()
