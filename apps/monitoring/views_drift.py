"""Drift report pages: the managers' list, a report, its export, starting a run and its progress."""
