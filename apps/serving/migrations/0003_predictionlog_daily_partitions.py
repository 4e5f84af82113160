"""The prediction log becomes a table partitioned by day on PostgreSQL (SQLite keeps the plain table).

The rows already there move into partitions of their days; partitions for today and the next 7 days
are created ahead (the `serving.logs_maintain` beat task keeps creating them and drops the old ones).
"""

from django.db import migrations, models


class RunSQLOnPostgreSQL(migrations.RunSQL):
    """Partitioning is PostgreSQL's: elsewhere (SQLite, the embedded default) this does nothing."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


# The keys, indexes and foreign key of the model's state, on a table `serving_predictionlog`.
KEYS = """
ALTER TABLE serving_predictionlog ADD CONSTRAINT serving_predictionlog_pkey PRIMARY KEY ({primary_key});
ALTER TABLE serving_predictionlog ADD CONSTRAINT predictionlog_request_unique UNIQUE (request_id, created_at);
ALTER TABLE serving_predictionlog ADD CONSTRAINT serving_predictionlo_model_id_f6609f11_fk_registry_
    FOREIGN KEY (model_id) REFERENCES registry_registeredmodel (id) DEFERRABLE INITIALLY DEFERRED;
CREATE INDEX predictionlog_model_time ON serving_predictionlog (model_id, created_at);
CREATE INDEX serving_predictionlog_transaction_id_9f9bd252 ON serving_predictionlog (transaction_id);
DO $$
BEGIN
    EXECUTE format('ALTER SEQUENCE %s RENAME TO serving_predictionlog_id_seq',
                   pg_get_serial_sequence('serving_predictionlog', 'id'));
END $$;
"""

# Rename the table away, create its replacement like it, move the rows, drop the old one, key it.
MOVE = """
ALTER TABLE serving_predictionlog RENAME TO serving_predictionlog_old;
CREATE TABLE serving_predictionlog
    (LIKE serving_predictionlog_old INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS){partitioned};
{partitions}
INSERT INTO serving_predictionlog SELECT * FROM serving_predictionlog_old;
SELECT setval(pg_get_serial_sequence('serving_predictionlog', 'id'),
              (SELECT coalesce(max(id), 0) + 1 FROM serving_predictionlog_old), false);
DROP TABLE serving_predictionlog_old;
"""

DAYS = """
DO $$
DECLARE
    day date;
BEGIN
    FOR day IN
        SELECT DISTINCT (created_at AT TIME ZONE 'UTC')::date FROM serving_predictionlog_old
        UNION SELECT (now() AT TIME ZONE 'UTC')::date + ahead FROM generate_series(0, 7) AS ahead
    LOOP
        EXECUTE format('CREATE TABLE %I PARTITION OF serving_predictionlog FOR VALUES FROM (%L) TO (%L)',
                       'serving_predictionlog_p' || to_char(day, 'YYYYMMDD'),
                       day::timestamp AT TIME ZONE 'UTC', (day + 1)::timestamp AT TIME ZONE 'UTC');
    END LOOP;
END $$;
"""

PARTITION = MOVE.format(partitioned=" PARTITION BY RANGE (created_at)", partitions=DAYS) + KEYS.format(
    primary_key="id, created_at"
)
UNPARTITION = MOVE.format(partitioned="", partitions="") + KEYS.format(primary_key="id")


class Migration(migrations.Migration):
    dependencies = [
        ("registry", "0002_hardening"),
        ("serving", "0002_predictionlog_environment_embedding"),
    ]

    operations = [
        migrations.AlterField(
            model_name="predictionlog",
            name="request_id",
            field=models.CharField(max_length=64),
        ),
        migrations.AddConstraint(
            model_name="predictionlog",
            constraint=models.UniqueConstraint(
                fields=("request_id", "created_at"), name="predictionlog_request_unique"
            ),
        ),
        RunSQLOnPostgreSQL(PARTITION, reverse_sql=UNPARTITION),
    ]
