"""Unknown URL, wrong method and missing CSRF token get proper pages, never a 500."""

import pytest
from django.test import Client
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_unknown_url_is_a_404_page(client, data_scientist):
    client.force_login(data_scientist)
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    assert "Page not found" in response.content.decode()


def test_wrong_method_is_a_405_page(client, data_scientist):
    client.force_login(data_scientist)
    response = client.get(reverse("accounts:logout"))
    assert response.status_code == 405
    body = response.content.decode()
    assert "does not accept GET requests" in body
    assert "POST" in response["Allow"]


def test_post_without_csrf_token_is_a_403_page_and_changes_nothing(data_scientist):
    client = Client(enforce_csrf_checks=True)
    client.force_login(data_scientist)
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 403
    assert "security token was missing" in response.content.decode()
    assert "_auth_user_id" in client.session
