"""Object access to promotion requests: pages and API call the same helpers."""

from django.shortcuts import get_object_or_404

from .models import PromotionRequest
from .selectors import requests_visible_to


def request_for_user(user, pk: int) -> PromotionRequest:
    """404 when the user may not see the request's model; deciding rules (403/409) live in services."""
    return get_object_or_404(requests_visible_to(user), pk=pk)
