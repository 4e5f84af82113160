"""How fast a window of prediction logs reads back into numpy (PostgreSQL, features as double precision[]).

    DATABASE_URL=postgres://... python bench/bench_log_reads.py [--rows 1000000]

Fills serving_predictionlog with synthetic rows (10 numeric, 2 categorical features) on a database you
name (it must be migrated; rows it adds are deleted at the end), then reads the numeric features of
the whole window into one float64 matrix: once through the ORM's values_list, once through psycopg
with binary transfer (what monitoring's drift jobs use).
"""

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hafnium_portal.settings")
os.environ.setdefault("DJANGO_DEBUG", "true")

import django

django.setup()

import numpy as np  # noqa: E402
from django.db import connection  # noqa: E402

from apps.registry.models import RegisteredModel  # noqa: E402
from apps.serving.models import PredictionLog  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL to a migrated PostgreSQL database")
    model, _ = RegisteredModel.objects.get_or_create(name="bench-log-reads")
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO serving_predictionlog (request_id, transaction_id, entity_id, model_id, version,
                numeric_features, categorical_features, score, decision, fallback, latency_ms, status,
                created_at)
            SELECT 'bench-' || i, 't-' || i, 'c-' || (i %% 5000), %s, 1,
                ARRAY[random()*100, random(), random(), random(), random(), random(), random(), random(),
                      (i %% 7)::float8, (i %% 24)::float8],
                ARRAY['grocery', 'pos'], random(), 'approve', false, 1.5, 'ok',
                now() - (i || ' seconds')::interval
            FROM generate_series(1, %s) AS i
            """,
            [model.pk, args.rows],
        )
    print(f"inserted {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
    try:
        window = PredictionLog.objects.filter(model=model)
        started = time.perf_counter()
        matrix = np.array(list(window.values_list("numeric_features", flat=True)), dtype=np.float64)
        orm = time.perf_counter() - started
        print(f"ORM values_list -> numpy: {orm:.2f} s", flush=True)
        started = time.perf_counter()
        import psycopg

        params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
        with psycopg.connect(**params) as raw, raw.cursor() as cursor:
            cursor.execute(
                "SELECT numeric_features FROM serving_predictionlog WHERE model_id = %s",
                [model.pk],
                binary=True,
            )
            binary = np.array(cursor.fetchall(), dtype=np.float64)[:, 0, :]
        direct = time.perf_counter() - started
        assert matrix.shape == binary.shape == (args.rows, 10)
        print(f"psycopg binary -> numpy: {direct:.2f} s")
    finally:
        PredictionLog.objects.filter(model=model).delete()
        model.delete()


if __name__ == "__main__":
    main()
