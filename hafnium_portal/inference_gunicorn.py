"""gunicorn settings of the inference processes (`gunicorn -c python:hafnium_portal.inference_gunicorn`)."""

import os


def post_worker_init(worker):
    # Each worker loads the versions with traffic in the background; /healthz says "warming" till then.
    from apps.serving.warm import warm_in_background

    warm_in_background()


def child_exit(server, worker):
    # Gauges of a worker that exited stop counting in /metrics (prometheus_client multiprocess mode).
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
