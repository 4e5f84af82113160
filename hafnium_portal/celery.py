"""The one Celery app; its configuration is the CELERY_ settings namespace."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hafnium_portal.settings")

app = Celery("hafnium_portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.autodiscover_tasks(["hafnium_portal"], related_name="health")
