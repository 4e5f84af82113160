"""Roles, login, lockout, logout, password change, navigation and the home page."""

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse

from apps.accounts.roles import Role
from tests.conftest import PASSWORD, PEOPLE, UserFactory

pytestmark = pytest.mark.django_db


def test_every_role_of_the_governance_table_has_a_group():
    assert set(Group.objects.values_list("name", flat=True)) >= {role.value for role in Role}


def test_anonymous_visitor_is_sent_to_login(client):
    response = client.get(reverse("home"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:login"))


def test_login_with_right_password_opens_home(client, data_scientist):
    response = client.post(reverse("accounts:login"), {"username": "dana", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == reverse("home")
    assert response.context["user"] == data_scientist


def test_wrong_password_shows_an_error_and_does_not_log_in(client, data_scientist):
    response = client.post(reverse("accounts:login"), {"username": "dana", "password": "wrong"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in response.content.decode()
    assert not response.context["user"].is_authenticated


def test_repeated_failed_logins_lock_the_account(client, data_scientist, settings):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post(reverse("accounts:login"), {"username": "dana", "password": "wrong"})
    response = client.post(reverse("accounts:login"), {"username": "dana", "password": PASSWORD})
    assert response.status_code == 429
    assert "temporarily locked" in response.content.decode()
    assert "_auth_user_id" not in client.session


def test_logout_is_a_post_and_ends_the_session(client, data_scientist):
    client.force_login(data_scientist)
    assert client.get(reverse("accounts:logout")).status_code == 405
    assert "_auth_user_id" in client.session
    response = client.post(reverse("accounts:logout"))
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session


def test_password_change_takes_effect(client, data_scientist):
    client.force_login(data_scientist)
    new = "another-long-passphrase-42"
    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": PASSWORD, "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 302
    data_scientist.refresh_from_db()
    assert data_scientist.check_password(new)


def test_password_change_with_wrong_old_password_is_a_form_error(client, data_scientist):
    client.force_login(data_scientist)
    new = "another-long-passphrase-42"
    response = client.post(
        reverse("accounts:password_change"),
        {"old_password": "wrong", "new_password1": new, "new_password2": new},
    )
    assert response.status_code == 200
    assert "old password was entered incorrectly" in response.content.decode()
    data_scientist.refresh_from_db()
    assert data_scientist.check_password(PASSWORD)


def _nav_labels(client) -> list[str]:
    return [item["label"] for item in client.get(reverse("home")).context["nav_items"]]


@pytest.mark.parametrize(("person", "role"), PEOPLE.items())
def test_home_shows_the_panel_of_each_role_and_no_admin_link(client, request, person, role):
    client.force_login(request.getfixturevalue(person))
    response = client.get(reverse("home"))
    assert [panel["role"] for panel in response.context["panels"]] == [role]
    assert "Admin" not in _nav_labels(client)


def test_staff_sees_the_admin_link(client, admin_user):
    client.force_login(admin_user)
    assert "Admin" in _nav_labels(client)
    assert "Audit" in _nav_labels(client)  # a superuser sees every page
    assert client.get(reverse("admin:index")).status_code == 200


def test_user_without_role_is_told_so(client, outsider):
    client.force_login(outsider)
    response = client.get(reverse("home"))
    assert response.context["panels"] == []
    assert "You have no role in the portal yet" in response.content.decode()


def test_data_scientist_sees_only_own_teams(client, data_scientist, other_data_scientist):
    client.force_login(data_scientist)
    teams = [team.slug for team in client.get(reverse("accounts:teams")).context["page"].object_list]
    assert teams == ["fraud-analytics"]


def test_manager_sees_every_team(client, manager, data_scientist, other_data_scientist):
    client.force_login(manager)
    teams = [team.slug for team in client.get(reverse("accounts:teams")).context["page"].object_list]
    assert teams == ["fraud-analytics", "payments-risk"]


def test_teams_page_queries_are_bounded(client, manager, team, django_assert_max_num_queries):
    for _ in range(20):
        UserFactory(roles=[Role.DATA_SCIENTIST]).groups.add(team.group)
    client.force_login(manager)
    with django_assert_max_num_queries(10):
        client.get(reverse("accounts:teams"))


def test_seed_demo_creates_one_user_per_role_and_keeps_passwords_on_rerun(tmp_path):
    from django.contrib.auth import get_user_model

    from apps.accounts.services import DEMO_USERS, demo_users_ensure

    credentials = tmp_path / "demo-credentials.txt"
    first = demo_users_ensure(credentials_file=credentials)
    assert set(first) == {*DEMO_USERS, "admin"}
    users = get_user_model().objects
    for username, (role, in_team) in DEMO_USERS.items():
        groups = set(users.get(username=username).groups.values_list("name", flat=True))
        assert groups == {role.value, "team:fraud-analytics"} if in_team else {role.value}
    assert users.get(username="admin").is_superuser

    assert demo_users_ensure(credentials_file=credentials) == {}
    for username, password in first.items():
        assert users.get(username=username).check_password(password)
    assert credentials.read_text().splitlines() == [f"{u} {p}" for u, p in first.items()]
    assert credentials.stat().st_mode & 0o077 == 0
