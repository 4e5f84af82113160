"""Domain errors shared by every app, and how the web faces turn errors into answers."""

from django.conf import settings
from django.core.exceptions import PermissionDenied, RequestDataTooBig, TooManyFieldsSent
from django.http import HttpResponseNotAllowed, JsonResponse
from django.template.loader import render_to_string
from django.views import defaults
from rest_framework import status
from rest_framework.renderers import JSONRenderer
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
    """DRF's handler, plus our domain errors: each becomes its status with {"detail": message}.

    Errors are JSON whatever the view renders otherwise (the schema's YAML, the browsable API's HTML).
    """
    if isinstance(exc, DomainError):
        response = Response({"detail": str(exc)}, status=exc.status_code)
    elif isinstance(exc, ServiceUnavailable):
        response = Response({"detail": str(exc)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
    elif isinstance(exc, PermissionDenied):
        response = Response({"detail": str(exc) or "You may not do this."}, status=status.HTTP_403_FORBIDDEN)
    else:
        response = exception_handler(exc, context)
    request = context.get("request")
    if response is not None and request is not None:
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), "application/json"
    return response


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


# --- Django's error handlers (handler400/403/404/500 in the root URLconf) ----------------------------
#
# DRF answers the errors its views raise with JSON. These handlers answer what happens before or
# around a DRF view: no URL matches (a non-numeric id, an unknown path), a body over
# DATA_UPLOAD_MAX_MEMORY_SIZE, an exception DRF does not know. Under /api/ the answer is JSON
# {"detail": ...} like every other API error; pages keep their HTML templates.

API_PREFIX = "/api/"


def is_api(request) -> bool:
    return request.path_info.startswith(API_PREFIX)


def _bad_request_detail(exception) -> str:
    # Only messages we know are safe to show: a SuspiciousOperation may describe an attack.
    if isinstance(exception, RequestDataTooBig):
        return f"The request body is larger than the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes allowed."
    if isinstance(exception, TooManyFieldsSent):
        return f"The request has more than the {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} fields allowed."
    return "Bad request."


def bad_request(request, exception):
    if is_api(request):
        return JsonResponse({"detail": _bad_request_detail(exception)}, status=status.HTTP_400_BAD_REQUEST)
    return defaults.bad_request(request, exception)


def permission_denied(request, exception):
    if is_api(request):
        detail = "You do not have permission to perform this action."
        return JsonResponse({"detail": detail}, status=status.HTTP_403_FORBIDDEN)
    return defaults.permission_denied(request, exception)


def page_not_found(request, exception):
    if is_api(request):
        return JsonResponse({"detail": "Not found."}, status=status.HTTP_404_NOT_FOUND)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if is_api(request):
        detail = "A server error occurred; it was logged."
        return JsonResponse({"detail": detail}, status=status.HTTP_500_INTERNAL_SERVER_ERROR)
    return defaults.server_error(request)
