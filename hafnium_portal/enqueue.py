"""Enqueue a Celery task once the current transaction commits, without letting a broker outage fail it.

Every task enqueued this way has a periodic sweep (beat) that finds the work left undone, so a task
lost while Redis was down is picked up later instead of failing the user's action.
"""

import logging

from django.db import transaction

log = logging.getLogger(__name__)


def enqueue_on_commit(task, *args, **kwargs) -> None:
    def send():
        try:
            task.apply_async(args=args, kwargs=kwargs)
        except Exception:  # broker unreachable: the periodic sweep will do it
            log.exception("could not enqueue %s%s; left to its periodic sweep", task.name, args)

    transaction.on_commit(send)
