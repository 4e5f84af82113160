"""The lean WSGI entry point of the inference processes.

    gunicorn -c python:hafnium_portal.inference_gunicorn hafnium_portal.inference_wsgi:application

Only the scoring URLs and the middleware the hot path needs (hafnium_portal.inference_settings). One
OpenMP thread per process: the default oversubscribes the cores under load. The gunicorn settings
module starts loading the versions with traffic in each worker as it boots.
"""

import os

from django.conf import settings

os.environ.setdefault("OMP_NUM_THREADS", "1")
if not settings.configured:
    # Not setdefault: importing the hafnium_portal package (its Celery app) already set the portal's.
    os.environ["DJANGO_SETTINGS_MODULE"] = "hafnium_portal.inference_settings"

from django.core.wsgi import get_wsgi_application

application = get_wsgi_application()
