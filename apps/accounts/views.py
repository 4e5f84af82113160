"""Pages of the accounts app: home, login/logout/password change, teams."""

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render
from django.urls import reverse_lazy

from .forms import LoginForm
from .home import cards_for
from .navigation import items_for
from .roles import DUTIES, roles_of
from .selectors import teams_visible_to


@login_required
def home(request):
    roles = roles_of(request.user)
    panels = [{"role": role, "duties": DUTIES[role]} for role in roles]
    pages = [item for item in items_for(request.user) if item["url_name"] != "home"]
    context = {"cards": cards_for(request.user), "panels": panels, "pages": pages}
    return render(request, "accounts/home.html", context)


@login_required
def teams(request):
    page = Paginator(teams_visible_to(request.user), 25).get_page(request.GET.get("page"))
    return render(request, "accounts/teams.html", {"page": page})


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = LoginForm
    redirect_authenticated_user = True


class PasswordChangeView(auth_views.PasswordChangeView):
    template_name = "accounts/password_change.html"
    success_url = reverse_lazy("accounts:password_change_done")


class PasswordChangeDoneView(auth_views.PasswordChangeDoneView):
    template_name = "accounts/password_change_done.html"
