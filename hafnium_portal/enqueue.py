"""Enqueue a Celery task by name once the transaction commits, without letting a broker outage fail it.

Services name the task instead of importing it, so `tasks` modules stay leaves (tasks import services,
never the other way round). Every task enqueued this way has a periodic sweep (beat) that finds the
work left undone, so a task lost while Redis was down is picked up later instead of failing the user's
action. Pass a deterministic `task_id` when the same work may be enqueued twice.
"""

import importlib
import logging

from django.db import transaction

log = logging.getLogger(__name__)


def enqueue(
    task_name: str, *args, task_id: str | None = None, countdown: float | None = None, **kwargs
) -> bool:
    """Send the task now; False (logged) when the broker cannot take it."""
    from hafnium_portal.celery import app

    # Imported by name at call time (a web process has not autodiscovered the tasks): the task's own
    # options, and eager mode in tests, apply.
    importlib.import_module(task_name.rpartition(".")[0])
    try:
        app.tasks[task_name].apply_async(args=args, kwargs=kwargs, task_id=task_id, countdown=countdown)
    except Exception:  # broker unreachable: the periodic sweep will do it
        log.exception("could not enqueue %s%s; left to its periodic sweep", task_name, args)
        return False
    return True


def enqueue_on_commit(task_name: str, *args, task_id: str | None = None, **kwargs) -> None:
    transaction.on_commit(lambda: enqueue(task_name, *args, task_id=task_id, **kwargs))
