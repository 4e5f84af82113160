"""Error pages the portal renders itself, for what Django leaves as an empty response."""

from django.http import HttpResponseNotAllowed
from django.template.loader import render_to_string


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
