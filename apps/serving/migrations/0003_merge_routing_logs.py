# Merges the serving migrations of the helpers' branches (routing, logs, alerts); the integrator folds it.

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("serving", "0002_predictionlog_environment_embedding"),
        ("serving", "0002_routingtable"),
        ("serving", "0002_remove_servingalert"),
    ]

    operations = []
