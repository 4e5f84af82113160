"""Create one group per role of the governance table (and the users around it).

The names are frozen here, as a migration must be; apps.accounts also ensures them after every
migrate (and after a test database flush), from apps.accounts.roles.Role.
"""

from django.db import migrations

ROLES = ["Data Scientist", "Data Scientist Lead", "ML Engineer", "Model Risk", "Compliance", "Manager"]


def create_roles(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ROLES:
        Group.objects.get_or_create(name=name)


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_roles, migrations.RunPython.noop)]
