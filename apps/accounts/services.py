"""Actions on accounts: demo users for the embedded default."""

import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from .models import TEAM_GROUP_PREFIX, Team
from .roles import Role

DEMO_TEAM = {"name": "Fraud Analytics", "slug": "fraud-analytics"}
# username -> (role, member of the demo team)
DEMO_USERS = {
    "data_scientist": (Role.DATA_SCIENTIST, True),
    "ds_lead": (Role.DATA_SCIENTIST_LEAD, True),
    "ml_engineer": (Role.ML_ENGINEER, False),
    "model_risk": (Role.MODEL_RISK, False),
    "compliance": (Role.COMPLIANCE, False),
    "manager": (Role.MANAGER, False),
}


@transaction.atomic
def team_ensure(*, name: str, slug: str, description: str = "") -> Team:
    """The team with this slug, created with its membership group if it does not exist."""
    team = Team.objects.filter(slug=slug).first()
    if team is None:
        group = Group.objects.create(name=f"{TEAM_GROUP_PREFIX}{slug}")
        team = Team.objects.create(name=name, slug=slug, description=description, group=group)
    return team


@transaction.atomic
def demo_users_ensure(*, credentials_file: Path) -> dict[str, str]:
    """Create the demo team, one user per role and a superuser `admin`, unless they exist.

    Returns the passwords of the users created now (existing users keep theirs); they are also
    appended to `credentials_file`, readable by the owner only.
    """
    User = get_user_model()
    team = team_ensure(**DEMO_TEAM)
    created = {}
    for username, (role, in_team) in DEMO_USERS.items():
        if User.objects.filter(username=username).exists():
            continue
        password = secrets.token_urlsafe(12)
        user = User.objects.create_user(username, email=f"{username}@hafnium.example", password=password)
        user.groups.add(Group.objects.get(name=role))
        if in_team:
            user.groups.add(team.group)
        created[username] = password
    if not User.objects.filter(username="admin").exists():
        password = secrets.token_urlsafe(12)
        User.objects.create_superuser("admin", email="admin@hafnium.example", password=password)
        created["admin"] = password
    if created:
        credentials_file.parent.mkdir(parents=True, exist_ok=True)
        with credentials_file.open("a") as out:
            out.writelines(f"{username} {password}\n" for username, password in created.items())
        credentials_file.chmod(0o600)
    return created


SYSTEM_USERNAME = "hafnium-system"


def system_actor():
    """The portal acting on its own (monitoring's automatic responses): a user nobody can log in as.

    It has no role and no team; it is given exactly the object permissions an automatic action needs
    (e.g. requesting the promotion of a model it retrained), and people still approve what it asks.
    """
    User = get_user_model()
    user = User.objects.filter(username=SYSTEM_USERNAME).first()
    if user is not None:
        return user
    with transaction.atomic():
        user, created = User.objects.get_or_create(
            username=SYSTEM_USERNAME, defaults={"first_name": "Hafnium", "last_name": "(automatic)"}
        )
        if created:
            user.set_unusable_password()
            user.save(update_fields=["password"])
    return user
