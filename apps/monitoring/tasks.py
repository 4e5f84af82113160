"""Celery entry points of monitoring, found by the worker's autodiscovery (drift: tasks_drift)."""

from . import tasks_drift  # noqa: F401
