# Merges the serving migrations of the helpers' branches (routing table; log partitions and the
# removal of ServingAlert); the integrator folds it.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("serving", "0002_routingtable"),
        ("serving", "0004_remove_servingalert"),
    ]

    operations = []
