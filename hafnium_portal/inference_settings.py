"""Settings of the inference processes: the portal's, with only the scoring URLs and the middleware they need.

The Java backend reaches inference over plain HTTP inside the deployment network (through the load
balancer), with a scoring client's token; there are no sessions, cookies or pages here.
"""

from .settings import *  # noqa: F403

ROOT_URLCONF = "hafnium_portal.inference_urls"
WSGI_APPLICATION = "hafnium_portal.inference_wsgi.application"
MIDDLEWARE = ["django.middleware.security.SecurityMiddleware"]
# Internal service behind the load balancer: no redirect to HTTPS (the portal's proxy does that for web).
SECURE_SSL_REDIRECT = False
