"""Signals other apps listen to, so that the registry need not import them (dependencies point one way)."""

from django.dispatch import Signal

# A model's governance evidence may have changed (its card was edited): kwargs `model`.
evidence_changed = Signal()

# A version was registered (or registered again: `created` False), sent after the commit: kwargs
# `version` (the ModelVersion), `created`. Serving compiles the version's fast scorer on it.
version_registered = Signal()
