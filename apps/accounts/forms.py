"""The login forms: Django's, with the username's length really checked."""

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.core.validators import MaxLengthValidator


class _UsernameLengthChecked:
    # AuthenticationForm sets the username field's max_length after the field is built, which adds no
    # validator: a 5,000-character username reached authenticate() and django-axes, whose 255-character
    # column refused it (a 500 on PostgreSQL). Now it is refused like any wrong login (the login page
    # shows the form's own errors, not the fields').
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        username = self.fields["username"]
        username.validators.append(MaxLengthValidator(username.max_length))

    def clean(self):
        if self.has_error("username"):
            raise self.get_invalid_login_error()
        return super().clean()


class LoginForm(_UsernameLengthChecked, AuthenticationForm):
    pass


class AdminLoginForm(_UsernameLengthChecked, AdminAuthenticationForm):
    pass
