"""Celery entry points of monitoring, found by the worker's autodiscovery (drift: tasks_drift, SLOs:
tasks_slo)."""

from . import tasks_drift, tasks_slo  # noqa: F401
