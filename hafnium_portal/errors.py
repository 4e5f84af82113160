"""Domain errors shared by every app, and how the web faces turn errors into answers."""

from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed
from django.template.loader import render_to_string
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import exception_handler


class DomainError(Exception):
    """A business rule refused the action; the message is for the user (HTTP 400)."""

    status_code = status.HTTP_400_BAD_REQUEST


class Conflict(DomainError):
    """The action no longer fits the state of things: a closed request, a filled role (HTTP 409)."""

    status_code = status.HTTP_409_CONFLICT


class ServiceUnavailable(Exception):
    """A part we depend on (MLflow) cannot be reached (HTTP 503)."""


def api_exception_handler(exc, context):
    """DRF's handler, plus our domain errors: each becomes its status with {"detail": message}."""
    if isinstance(exc, DomainError):
        return Response({"detail": str(exc)}, status=exc.status_code)
    if isinstance(exc, ServiceUnavailable):
        return Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    if isinstance(exc, PermissionDenied):
        return Response({"detail": str(exc) or "You may not do this."}, status=status.HTTP_403_FORBIDDEN)
    return exception_handler(exc, context)


class MethodNotAllowedPageMiddleware:
    """Give a 405 from a page view a readable page instead of Django's empty body.

    API views (DRF) already answer 405 with a JSON body, which this leaves alone.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if isinstance(response, HttpResponseNotAllowed) and not response.content:
            response.content = render_to_string(
                "405.html", {"method": request.method, "allowed": response["Allow"]}, request=request
            )
            response["Content-Type"] = "text/html; charset=utf-8"
        return response
