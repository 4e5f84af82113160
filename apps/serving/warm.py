"""Loading the versions with traffic when an inference process starts (in the background)."""

import gc
import logging
import threading

from django.db import close_old_connections

log = logging.getLogger(__name__)

# Set once this process has loaded (or failed to load) the versions with traffic.
warmed = threading.Event()


def warm() -> int:
    """Load the Production version and the routed ones (production, staging) of every model; how many."""
    from . import config, hotpath, router
    from .scorers import pool

    client = hotpath.redis_client()
    try:
        version = client.get(config.VERSION_KEY)
    except Exception:  # Redis down: the database still tells which versions answer
        version, client = None, None
    snapshot = config.current(version, client)
    started = 0
    futures = []
    for model in snapshot.models.values():
        numbers = {model.production} if model.production is not None else set()
        if client is not None:
            for key in (hotpath.ROUTES_KEY, hotpath.STAGING_ROUTES_KEY):
                try:
                    numbers |= set(router.parse_table(client.hgetall(key.format(model.name))))
                except Exception as exc:
                    log.warning("no routing table for %s: %s", model.name, exc)
        for number in numbers & set(model.versions):
            futures.append(pool.warm(model.name, model.versions[number]))
            started += 1
    for future in futures:
        try:
            future.result()
        except Exception as exc:  # the version's breaker counts it when a request needs it
            log.warning("could not warm a scorer: %s", exc)
    return started


def _run():
    try:
        log.info("warming %d model versions", warm())
    except Exception:
        log.exception("warming the scorers failed; they load on first use")
    finally:
        close_old_connections()
        # What the process has loaded (Django, MLflow, sklearn, the scorers) lives as long as it does:
        # frozen, a full collection no longer walks it. Unfrozen, those collections paused a worker
        # 90-170 ms several times a minute under load: the p99 of bench_serving.py at 300 rps.
        gc.collect()
        gc.freeze()
        warmed.set()


def warm_in_background() -> threading.Thread:
    thread = threading.Thread(target=_run, name="scorer-warm", daemon=True)
    thread.start()
    return thread
