"""The lean WSGI entry point of the inference processes (gunicorn hafnium_portal.inference_wsgi:application).

Only the scoring URLs and the middleware the hot path needs (hafnium_portal.inference_settings). One
OpenMP thread per process: the default oversubscribes the cores under load. Each process starts
loading the versions that have traffic as it starts, so the first requests do not pay for it.
"""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
# Not setdefault: importing the hafnium_portal package (its Celery app) already set the portal's.
os.environ["DJANGO_SETTINGS_MODULE"] = "hafnium_portal.inference_settings"

from django.core.wsgi import get_wsgi_application  # noqa: E402

application = get_wsgi_application()

from apps.serving.warm import warm_in_background  # noqa: E402

warm_in_background()
