"""Each role logs in and sees its navigation; a wrong password does not log in; logout works."""

import re

import pytest
from playwright.sync_api import expect

from tests.conftest import PEOPLE

# What each role finds in the navigation: the pages that exist for it, no others.
# What runs after the approvals: every role may look (each page shows only the models one may see).
WATCH = ["Deployments", "Drift", "Alerts"]
NAVIGATION_OF = {
    "data_scientist": ["Home", "Models", "My requests", *WATCH, "Teams", "API"],
    "ds_lead": ["Home", "Models", "Approvals", "My requests", *WATCH, "Teams", "API"],
    "ml_engineer": ["Home", "Models", "Approvals", *WATCH, "Teams", "API"],
    "model_risk": ["Home", "Models", "Approvals", *WATCH, "Audit", "Teams", "API"],
    "compliance": ["Home", "Models", "Approvals", *WATCH, "Audit", "Teams", "API"],
    "manager": ["Home", "Models", *WATCH, "Audit", "Teams", "API"],
}


@pytest.mark.parametrize("person", PEOPLE)
def test_each_role_logs_in_and_sees_its_navigation(request, page, live_server, log_in, person):
    user = request.getfixturevalue(person)
    log_in(user.username)
    expect(page).to_have_title(re.compile("^Home"))
    expect(page.get_by_test_id("user-menu")).to_contain_text(PEOPLE[person].label)
    nav = page.get_by_test_id("nav")
    expect(nav.get_by_role("link")).to_have_text(NAVIGATION_OF[person])
    expect(page.get_by_test_id("role-panel")).to_have_count(1)
    expect(page.get_by_test_id("role-panel")).to_contain_text(PEOPLE[person].label)
    # Bootstrap is served locally and applied: the navbar is dark.
    background = page.locator("nav.navbar").evaluate("e => getComputedStyle(e).backgroundColor")
    assert background == "rgb(33, 37, 41)"


def test_staff_sees_the_admin_link(page, log_in, admin_user):
    log_in(admin_user.username)
    expect(page.get_by_test_id("nav").get_by_role("link", name="Admin")).to_be_visible()


def test_wrong_password_shows_an_error_and_does_not_log_in(page, live_server, log_in, data_scientist):
    log_in(data_scientist.username, "not-the-password")
    expect(page.get_by_test_id("login-error")).to_contain_text("Please enter a correct username and password")
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))


def test_logout_ends_the_session(page, live_server, log_in, compliance):
    log_in(compliance.username)
    page.get_by_test_id("user-menu").click()
    page.get_by_test_id("logout").click()
    expect(page).to_have_url(re.compile(r"/accounts/login/$"))
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/$"))


def test_login_form_is_usable_with_the_keyboard(page, live_server, ds_lead):
    from tests.conftest import PASSWORD

    page.goto(f"{live_server.url}/accounts/login/")
    page.keyboard.type(ds_lead.username)  # the username field has focus on arrival
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_title(re.compile("^Home"))
