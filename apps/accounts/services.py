"""Actions on accounts: demo users for the embedded default."""

import secrets
from pathlib import Path

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction

from .models import Team
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
def demo_users_ensure(*, credentials_file: Path) -> dict[str, str]:
    """Create the demo team, one user per role and a superuser `admin`, unless they exist.

    Returns the passwords of the users created now (existing users keep theirs); they are also
    appended to `credentials_file`, readable by the owner only.
    """
    User = get_user_model()
    team, _ = Team.objects.get_or_create(slug=DEMO_TEAM["slug"], defaults={"name": DEMO_TEAM["name"]})
    created = {}
    for username, (role, in_team) in DEMO_USERS.items():
        if User.objects.filter(username=username).exists():
            continue
        password = secrets.token_urlsafe(12)
        user = User.objects.create_user(username, email=f"{username}@hafnium.example", password=password)
        user.groups.add(Group.objects.get(name=role))
        if in_team:
            team.members.add(user)
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
