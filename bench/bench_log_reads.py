"""How fast a window of prediction logs reads back into numpy (PostgreSQL, features as double precision[]).

    DATABASE_URL=postgres://... python bench/bench_log_reads.py [--rows 1000000]

Fills serving_predictionlog (partitioned by day) with synthetic rows over the last two days (10
numeric, 2 categorical features, as a version's signature names them) on a database you name (it
must be migrated; the rows it adds are deleted at the end), then reads them back, side by side:

- the numeric features as one float64 matrix: through the ORM's values_list (the previous way),
  psycopg with binary transfer (fetchall of the arrays), the arrays aggregated (array_agg) into a
  few rows of one binary COPY decoded by numpy (apps/serving/pgcopy.py, what log_window does), and
  the same features stored as bytea of packed float64 read with np.frombuffer, row by row and
  aggregated (string_agg) (a copy of the rows in a temporary table: the storage we did not choose,
  measured to say why);
- the whole window (features, categorical features, score, latency, status, version, time,
  transaction id) through `selectors.log_window` against its row-by-row way (`_log_window_rows`, the
  ORM).
"""

import argparse
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hafnium_portal.settings")
os.environ.setdefault("DJANGO_DEBUG", "true")

import django

django.setup()

import json  # noqa: E402

import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.registry.models import ModelVersion, RegisteredModel  # noqa: E402
from apps.serving import partitions, pgcopy, selectors  # noqa: E402
from apps.serving.models import PredictionLog  # noqa: E402

NUMERIC = ["amount", "p1", "p2", "p3", "p4", "p5", "p6", "p7", "weekday", "hour"]
SIGNATURE = {
    "inputs": json.dumps(
        [{"type": "double", "name": name} for name in NUMERIC]
        + [{"type": "string", "name": "merchant"}, {"type": "string", "name": "channel"}]
    )
}


def timed(label: str, read, baseline: float | None = None):
    started = time.perf_counter()
    value = read()
    seconds = time.perf_counter() - started
    ratio = f"  ({baseline / seconds:.1f}x faster than the previous way)" if baseline else ""
    print(f"{label:<52} {seconds:7.2f} s{ratio}", flush=True)
    return value, seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--ours-only",
        action="store_true",
        help="time only the way log_window reads (for a size the others take long at)",
    )
    args = parser.parse_args()
    if connection.vendor != "postgresql":
        sys.exit("set DATABASE_URL to a migrated PostgreSQL database")
    model, _ = RegisteredModel.objects.get_or_create(name="bench-log-reads")
    ModelVersion.objects.get_or_create(
        model=model, version=1, defaults={"signature": SIGNATURE, "registered_at": timezone.now()}
    )
    today = timezone.now().date()
    partitions.partitions_ensure(today - timedelta(days=ahead) for ahead in range(3))
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO serving_predictionlog (request_id, transaction_id, entity_id, model_id, version,
                numeric_features, categorical_features, score, decision, fallback, latency_ms, status,
                created_at, environment)
            SELECT 'bench-' || i, 't-' || i, 'c-' || (i %% 5000), %s, 1,
                ARRAY[random()*100, random(), random(), random(), random(), random(), random(), random(),
                      (i %% 7)::float8, (i %% 24)::float8],
                ARRAY['grocery', 'pos'], random(), 'approve', false, 1.5, 'ok',
                now() - make_interval(secs => i * 172800.0 / %s), 'production'
            FROM generate_series(1, %s) AS i
            """,
            [model.pk, args.rows, args.rows],
        )
    print(f"inserted {args.rows:,} rows in {time.perf_counter() - started:.1f} s")
    params = {k: v for k, v in connection.get_connection_params().items() if k != "cursor_factory"}
    since, until = timezone.now() - timedelta(days=3), timezone.now() + timedelta(minutes=1)
    try:

        def aggregated_copy():
            with connection.cursor() as cursor:
                stream = b"".join(
                    selectors._copy(
                        cursor,
                        "SELECT array_agg(numeric_features) FROM serving_predictionlog WHERE model_id = %s"  # noqa: S608
                        f" GROUP BY id >> {selectors.CHUNK_BITS}",
                        [model.pk],
                    )
                )
            return np.concatenate([pgcopy.array(row[0]) for row in pgcopy.rows(stream)])

        if args.ours_only:
            copied, _ = timed("  numeric features: array_agg in one binary COPY (ours)", aggregated_copy)
            fast, _ = timed(
                "  log_window (ours)", lambda: selectors.log_window(model, since=since, until=until)
            )
            assert copied.shape == (args.rows, len(NUMERIC))
            assert fast.n == args.rows
            return
        print("numeric features -> one float64 matrix")
        window = PredictionLog.objects.filter(model=model)
        matrix, orm = timed(
            "  ORM values_list -> numpy (previous way)",
            lambda: np.array(list(window.values_list("numeric_features", flat=True)), dtype=np.float64),
        )

        def psycopg_binary():
            with psycopg.connect(**params) as raw, raw.cursor() as cursor:
                cursor.execute(
                    "SELECT numeric_features FROM serving_predictionlog WHERE model_id = %s",
                    [model.pk],
                    binary=True,
                )
                return np.array(cursor.fetchall(), dtype=np.float64)[:, 0, :]

        binary, _ = timed("  psycopg binary fetchall -> numpy", psycopg_binary, orm)
        copied, _ = timed("  array_agg in one binary COPY -> numpy (ours)", aggregated_copy, orm)
        with psycopg.connect(**params) as raw, raw.cursor() as cursor:
            cursor.execute(
                """
                CREATE TEMPORARY TABLE bench_packed AS
                SELECT id, (SELECT string_agg(float8send(x), ''::bytea ORDER BY o)
                            FROM unnest(numeric_features) WITH ORDINALITY AS u(x, o)) AS packed
                FROM serving_predictionlog WHERE model_id = %s
                """,
                [model.pk],
            )

            def packed_bytea():
                cursor.execute("SELECT packed FROM bench_packed", binary=True)
                stream = b"".join(row[0] for row in cursor.fetchall())
                return np.frombuffer(stream, dtype=">f8").astype(np.float64).reshape(-1, len(NUMERIC))

            packed, _ = timed("  bytea of packed float64 -> np.frombuffer", packed_bytea, orm)

            def packed_aggregated():
                cursor.execute("SELECT string_agg(packed, ''::bytea) FROM bench_packed", binary=True)
                return (
                    np.frombuffer(cursor.fetchone()[0], dtype=">f8")
                    .astype(np.float64)
                    .reshape(-1, len(NUMERIC))
                )

            packed_once, _ = timed(
                "  bytea of packed float64, string_agg -> np.frombuffer", packed_aggregated, orm
            )
        for other in (binary, copied, packed, packed_once):
            assert other.shape == matrix.shape == (args.rows, len(NUMERIC))
            np.testing.assert_array_equal(np.sort(other[:, 0]), np.sort(matrix[:, 0]))

        print("the whole window (log_window)")
        arguments = {
            "since": since,
            "until": until,
            "version": None,
            "environment": "production",
            "limit": None,
        }
        rows, previous = timed(
            "  row by row through the ORM (previous way)",
            lambda: selectors._log_window_rows(model, **arguments),
        )
        fast, _ = timed(
            "  log_window: aggregated arrays, one binary COPY (ours)",
            lambda: selectors.log_window(model, since=since, until=until),
            previous,
        )
        assert fast.n == rows.n == args.rows
        np.testing.assert_array_equal(fast.numeric["amount"], rows.numeric["amount"])
        np.testing.assert_array_equal(fast.transaction_id, rows.transaction_id)
    finally:
        PredictionLog.objects.filter(model=model).delete()
        model.delete()


if __name__ == "__main__":
    main()
