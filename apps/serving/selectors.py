"""Reads of serving: which version answers, breaker states, the prediction logs for rollouts and monitoring.

The log reads (`version_stats`, `timeseries`, `log_window`, `labelled_window`) take a half-open window
[since, until) and one environment. On PostgreSQL the aggregates are SQL (percentile_cont, one query);
on SQLite (the embedded default) the same numbers are computed with numpy from the rows, with the
same definition of a percentile (linear interpolation), so both give the same answers.
"""

import json
import math
import struct
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import psycopg
from django.conf import settings
from django.db import DataError, connection, connections, transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from apps.registry.models import RegisteredModel

from . import hotpath, pgcopy, router
from .config import SERVABLE_STAGES
from .models import BreakerTransition, Decision, FallbackRule, Feedback, PredictionLog, ServingPolicy

WINDOW = timedelta(hours=1)


def _breaker_states(model: RegisteredModel, versions: list[int]) -> dict[int, str]:
    from .breaker import Breaker, breaker_key

    states = {}
    for number in versions:
        try:
            states[number] = Breaker(hotpath.redis_client(), breaker_key(model.name, number)).state()
        except Exception:  # Redis down: the page says so rather than failing
            states[number] = "unknown"
    return states


def policy_history(model: RegisteredModel):
    """Every version of the model's serving policy, the one in force first."""
    return ServingPolicy.objects.filter(model=model).select_related("created_by").order_by("-version")


def fallback_rules(model: RegisteredModel) -> list[FallbackRule]:
    """The model's fallback rules in the order the rules-only scorer tries them."""
    return list(FallbackRule.objects.filter(model=model).order_by("order", "id"))


def serving_summary(model: RegisteredModel) -> dict:
    """The Serving panel: what answers, breakers, and the last hour of production per version."""
    servable = list(
        model.versions.filter(stage__in=SERVABLE_STAGES).order_by("-version").values_list("version", "stage")
    )
    production = next((number for number, stage in servable if stage == "production"), None)
    try:
        routes = router.parse_table(hotpath.redis_client().hgetall(hotpath.ROUTES_KEY.format(model.name)))
    except Exception:
        routes = {}
    until = timezone.now()
    since = until - WINDOW
    stats = version_stats(model, since=since, until=until)
    requests = sum(version.requests for version in stats.values())
    series = timeseries(model, since=since, until=until, step_seconds=60)
    data = []
    for number, buckets in series.items():
        minutes = [bucket.start.isoformat() for bucket in buckets]
        data.append(
            {
                "x": minutes,
                "y": [round(b.requests / 60.0, 3) for b in buckets],
                "name": f"v{number} requests/s",
                "type": "scatter",
                "mode": "lines",
            }
        )
        data.append(
            {
                "x": minutes,
                "y": [None if b.p99_ms is None else round(b.p99_ms, 3) for b in buckets],
                "name": f"v{number} p99 latency (ms)",
                "type": "scatter",
                "mode": "lines",
                "line": {"dash": "dot"},
                "yaxis": "y2",
            }
        )
    chart = {
        "data": data,
        "layout": {
            "margin": {"t": 20, "r": 50, "b": 40, "l": 50},
            "height": 260,
            "yaxis": {"title": {"text": "requests/s"}, "rangemode": "tozero"},
            "yaxis2": {"title": {"text": "p99 ms"}, "overlaying": "y", "side": "right",
                       "rangemode": "tozero"},
            "legend": {"orientation": "h"},
        },
    }  # fmt: skip
    return {
        "production": production,
        "routes": routes,
        "answering": routes or ({production: 1.0} if production is not None else {}),
        "breakers": _breaker_states(model, [number for number, _ in servable]),
        "requests_last_hour": requests,
        "fallback_share": sum(version.fallbacks for version in stats.values()) / requests
        if requests
        else None,
        "chart": chart,
        "policies": list(ServingPolicy.objects.filter(model=model).select_related("created_by")[:10]),
        "rules": list(FallbackRule.objects.filter(model=model)),
        "transitions": list(BreakerTransition.objects.filter(model=model)[:10]),
    }


# --- prediction logs for rollouts and monitoring ------------------------------------------------


@dataclass(frozen=True)
class VersionStats:
    """A version's answers in a window. `fallbacks` counts every answer of the rules (model errors
    included, as those are answered by the rules too); `errors` the answers with status "error".
    Latency percentiles and the mean score are None when the version answered nothing."""

    requests: int
    errors: int
    fallbacks: int
    p50_ms: float | None
    p99_ms: float | None
    mean_score: float | None
    decline_rate: float | None


def _window_sql(model, *, since, until, environment, versions) -> tuple[str, list]:
    where = "model_id = %s AND created_at >= %s AND created_at < %s AND environment = %s"
    params = [model.pk, since, until, environment]
    if versions is not None:
        where += " AND version = ANY(%s)"
        params.append(list(versions))
    return where, params


def _window(model, *, since, until, environment, versions=None, version=None):
    logs = PredictionLog.objects.filter(
        model=model, created_at__gte=since, created_at__lt=until, environment=environment
    )
    if versions is not None:
        logs = logs.filter(version__in=list(versions))
    if version is not None:
        logs = logs.filter(version=version)
    return logs


def _percentile(values: np.ndarray, q: float) -> float | None:
    return float(np.percentile(values, q)) if len(values) else None


def version_stats(
    model: RegisteredModel,
    *,
    since: datetime,
    until: datetime,
    environment: str = "production",
    versions=None,
) -> dict[int, VersionStats]:
    """Each version's requests, errors, fallbacks, latency p50/p99, mean score and decline rate.

    A version named in `versions` that answered nothing in the window is there with zero requests.
    """
    table = PredictionLog._meta.db_table
    found: dict[int, VersionStats] = {}
    if connection.vendor == "postgresql":
        where, params = _window_sql(
            model, since=since, until=until, environment=environment, versions=versions
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT version, count(*), count(*) FILTER (WHERE status = 'error'),
                       count(*) FILTER (WHERE fallback),
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_ms),
                       percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms),
                       avg(score), avg((decision = %s)::int)
                FROM {table} WHERE {where} GROUP BY version
                """,  # noqa: S608 (the model's table name and fixed conditions; values are parameters)
                [Decision.DECLINE, *params],
            )
            for number, requests, errors, fallbacks, p50, p99, mean_score, decline_rate in cursor.fetchall():
                found[number] = VersionStats(
                    requests, errors, fallbacks, p50, p99, float(mean_score), float(decline_rate)
                )
    else:
        rows = _window(model, since=since, until=until, environment=environment, versions=versions)
        columns = list(rows.values_list("version", "status", "fallback", "latency_ms", "score", "decision"))
        if columns:
            number, status, fallback, latency, score, decision = (
                np.array(c) for c in zip(*columns, strict=True)
            )
            for version in np.unique(number):
                chosen = number == version
                found[int(version)] = VersionStats(
                    requests=int(chosen.sum()),
                    errors=int((status[chosen] == "error").sum()),
                    fallbacks=int(fallback[chosen].astype(bool).sum()),
                    p50_ms=_percentile(latency[chosen].astype(float), 50),
                    p99_ms=_percentile(latency[chosen].astype(float), 99),
                    mean_score=float(score[chosen].astype(float).mean()),
                    decline_rate=float((decision[chosen] == Decision.DECLINE).mean()),
                )
    for number in versions or ():
        found.setdefault(int(number), VersionStats(0, 0, 0, None, None, None, None))
    return found


def version_scores(
    model: RegisteredModel,
    *,
    since: datetime,
    until: datetime,
    versions,
    environment: str = "production",
    limit: int = 50_000,
) -> dict[int, np.ndarray]:
    """Each version's scores of its model's own answers in the window (no rules' answer, no error),
    the latest `limit` of them, in no particular order: what a canary's score comparison ranks."""
    found = {}
    for number in versions:
        rows = (
            _window(model, since=since, until=until, environment=environment, version=int(number))
            .filter(fallback=False)
            .exclude(status="error")
            .order_by("-created_at")
            .values_list("score", flat=True)[:limit]
        )
        found[int(number)] = np.fromiter(rows, dtype=np.float64)
    return found


@dataclass(frozen=True)
class TimeBucket:
    """A version's answers in [start, start + step): the p99 latency is None in an empty bucket."""

    start: datetime
    requests: int
    errors: int
    fallbacks: int
    p99_ms: float | None


MAX_BUCKETS = 10_000


def timeseries(
    model: RegisteredModel, *, since: datetime, until: datetime, step_seconds: int,
    environment: str = "production", versions=None,
) -> dict[int, list[TimeBucket]]:  # fmt: skip
    """Per version, every bucket of `step_seconds` from `since` to `until` (empty ones included, so a
    chart shows the gaps): requests, errors (status "error"), fallbacks, p99 latency.

    A version is in the answer if it answered in the window or is named in `versions`.
    """
    if step_seconds <= 0:
        raise ValueError("step_seconds must be positive")
    count = max(0, math.ceil((until - since).total_seconds() / step_seconds))
    if count > MAX_BUCKETS:
        raise ValueError(f"{count} buckets: choose a longer step (at most {MAX_BUCKETS} buckets)")
    cells: dict[tuple[int, int], tuple[int, int, int, float | None]] = {}
    table = PredictionLog._meta.db_table
    if connection.vendor == "postgresql":
        where, params = _window_sql(
            model, since=since, until=until, environment=environment, versions=versions
        )
        with connection.cursor() as cursor:
            cursor.execute(
                f"""
                SELECT version, floor(extract(epoch FROM created_at - %s) / %s)::int AS bucket, count(*),
                       count(*) FILTER (WHERE status = 'error'), count(*) FILTER (WHERE fallback),
                       percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_ms)
                FROM {table} WHERE {where} GROUP BY version, bucket
                """,  # noqa: S608 (the model's table name and fixed conditions; values are parameters)
                [since, step_seconds, *params],
            )
            for number, bucket, requests, errors, fallbacks, p99 in cursor.fetchall():
                cells[(number, bucket)] = (requests, errors, fallbacks, p99)
    else:
        rows = _window(model, since=since, until=until, environment=environment, versions=versions)
        columns = list(rows.values_list("version", "created_at", "status", "fallback", "latency_ms"))
        if columns:
            number, at, status, fallback, latency = (
                np.array(c, dtype=object) for c in zip(*columns, strict=True)
            )
            bucket = np.array([int((t - since).total_seconds() // step_seconds) for t in at])
            latency = latency.astype(float)
            for key in {(int(v), int(b)) for v, b in zip(number, bucket, strict=True)}:
                chosen = (number == key[0]) & (bucket == key[1])
                cells[key] = (
                    int(chosen.sum()),
                    int((status[chosen] == "error").sum()),
                    int(fallback[chosen].astype(bool).sum()),
                    _percentile(latency[chosen], 99),
                )
    numbers = sorted({number for number, _ in cells} | {int(number) for number in versions or ()})
    return {
        number: [
            TimeBucket(
                since + timedelta(seconds=index * step_seconds), *cells.get((number, index), (0, 0, 0, None))
            )
            for index in range(count)
        ]
        for number in numbers
    }


@dataclass
class LogWindow:
    """The logged answers of a window as numpy columns, in the order they were answered.

    `numeric` holds the numeric features (float64, NaN for a missing value) and `categorical` the
    categorical ones (object arrays of str, None when missing), keyed by feature name in signature
    order. `embedding` is an n x d matrix (NaN rows for items logged without one), or None when no
    item of the window carried one.
    """

    numeric: dict[str, np.ndarray]
    categorical: dict[str, np.ndarray]
    score: np.ndarray
    latency_ms: np.ndarray
    fallback: np.ndarray
    status: np.ndarray
    version: np.ndarray
    created_at: np.ndarray
    transaction_id: np.ndarray
    embedding: np.ndarray | None

    @property
    def n(self) -> int:
        return len(self.score)


def _feature_names(model: RegisteredModel, versions) -> dict[int, tuple[list[str], list[str]]]:
    """(numeric names, categorical names) of each version, in signature order, as the logs hold them."""
    from .validation import features_of

    names = {}
    for number, signature in model.versions.filter(version__in=list(versions)).values_list(
        "version", "signature"
    ):
        features = features_of(signature)
        names[number] = ([f.name for f in features if f.numeric], [f.name for f in features if not f.numeric])
    return names


def _columns_by_name(
    number_of_rows: int, groups: dict[int, np.ndarray], arrays: dict[int, list],
    names: dict[int, list[str]], *, dtype,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Place each version's feature arrays under their names (a version without a feature: NaN/None)."""
    order = []
    for number in sorted(groups, reverse=True):  # the newest version's order first
        order += [name for name in names[number] if name not in order]
    empty = np.nan if dtype is np.float64 else None
    columns = {name: np.full(number_of_rows, empty, dtype=dtype) for name in order}
    for number, rows in groups.items():
        width = len(names[number])
        matrix = np.full((len(rows), width), empty, dtype=dtype)
        for index, values in enumerate(arrays[number]):  # a row of another length keeps what has a name
            matrix[index, : min(width, len(values))] = values[:width]
        for position, name in enumerate(names[number][: matrix.shape[1]]):
            columns[name][rows] = matrix[:, position]
    return columns


def _naive_utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC).replace(tzinfo=None)


def log_window(
    model: RegisteredModel, *, since: datetime, until: datetime, version: int | None = None,
    environment: str = "production", limit: int | None = None,
) -> LogWindow:  # fmt: skip
    """The window's logged answers as numpy columns (the latest `limit` ones if given), oldest first.

    On PostgreSQL the rows come as a binary COPY decoded by numpy in one piece (bench/bench_log_reads.py
    measures it against reading them through the ORM); rows of an unexpected shape (arrays of
    different lengths within a version) and SQLite take the row-by-row way.
    """
    if connection.vendor == "postgresql":
        window = _log_window_copy(
            model, since=since, until=until, version=version, environment=environment, limit=limit
        )
        if window is not None:
            return window
    return _log_window_rows(
        model, since=since, until=until, version=version, environment=environment, limit=limit
    )


def _log_window_rows(
    model: RegisteredModel, *, since: datetime, until: datetime, version: int | None,
    environment: str, limit: int | None,
) -> LogWindow:  # fmt: skip
    """The window read row by row through the ORM (any database, any shape of rows)."""
    logs = _window(model, since=since, until=until, environment=environment, version=version)
    if limit is not None:
        logs = logs.order_by("-created_at", "-id")[:limit]
    else:
        logs = logs.order_by("created_at", "id")
    rows = list(
        logs.values_list(
            "version", "numeric_features", "categorical_features", "score", "latency_ms", "fallback",
            "status", "created_at", "transaction_id", "embedding",
        )
    )  # fmt: skip
    if limit is not None:
        rows.reverse()
    number = np.array([row[0] for row in rows], dtype=np.int64)
    groups = {int(v): np.flatnonzero(number == v) for v in np.unique(number)}
    names = _feature_names(model, groups)
    for v in groups:  # a version without a usable signature: positional names
        if v not in names or not any(names[v]):
            first = rows[groups[v][0]]
            names[v] = (
                [f"numeric_{i}" for i in range(len(first[1]))],
                [f"categorical_{i}" for i in range(len(first[2]))],
            )
    embeddings = [row[9] for row in rows]
    width = max((len(e) for e in embeddings if e), default=0)
    embedding = None
    if width:
        embedding = np.full((len(rows), width), np.nan)
        for index, values in enumerate(embeddings):
            if values:
                embedding[index, : len(values)] = values
    return LogWindow(
        numeric=_columns_by_name(
            len(rows), groups, {v: [rows[i][1] for i in r] for v, r in groups.items()},
            {v: n[0] for v, n in names.items()}, dtype=np.float64,
        ),
        categorical=_columns_by_name(
            len(rows), groups, {v: [rows[i][2] for i in r] for v, r in groups.items()},
            {v: n[1] for v, n in names.items()}, dtype=object,
        ),
        score=np.array([row[3] for row in rows], dtype=np.float64),
        latency_ms=np.array([row[4] for row in rows], dtype=np.float64),
        fallback=np.array([row[5] for row in rows], dtype=bool),
        status=np.array([row[6] for row in rows], dtype=object),
        version=number,
        created_at=np.array([_naive_utc(row[7]) for row in rows], dtype="datetime64[us]"),
        transaction_id=np.array([row[8] for row in rows], dtype=object),
        embedding=embedding,
    )  # fmt: skip


def labelled_window(
    model: RegisteredModel, *, since: datetime, until: datetime, version: int | None = None,
    environment: str = "production", include_fallback: bool = False,
) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """(scores, labels) of the window's answers whose transaction has a label (Feedback), oldest first.

    By default only the model's own answers: a rules-only score says nothing of the model's quality.
    """
    logs = _window(model, since=since, until=until, environment=environment, version=version)
    if not include_fallback:
        logs = logs.filter(fallback=False)
    labels = Feedback.objects.filter(model=model, transaction_id=OuterRef("transaction_id")).values("label")[
        :1
    ]
    rows = list(
        logs.annotate(label=Subquery(labels))
        .filter(label__isnull=False)
        .order_by("created_at", "id")
        .values_list("score", "label")
    )
    return (
        np.array([score for score, _ in rows], dtype=np.float64),
        np.array([label for _, label in rows], dtype=bool),
    )


STATUS_CODES = ["ok", "fallback", "error"]  # as the COPY read codes them: 0, 1, 2
# Rows per aggregated group: an array of PostgreSQL is at most 1 GB, and an embedding has up to 256 numbers.
CHUNK_BITS = 16


class _NullFeatures(Exception):
    """A numeric feature is NULL somewhere in the window: read again with NULLs made NaN (costlier)."""


class _AmbiguousTexts(Exception):
    """A text holds one of the packing's control characters: read the texts again as JSON (costlier)."""


# How texts are packed by string_agg: control characters that no transaction id or category holds. A
# text that does hold one is caught (a count does not add up, or a category equals the NULL marker)
# and the window is read again with the texts as JSON.
_ROW, _FIELD, _NULL = "\x1e", "\x1f", "\x1a"


def _window_query(table: str, where: str, *, nulls_to_nan: bool, texts_as_json: bool) -> str:
    numeric = "array_replace(numeric_features, NULL, 'NaN'::float8)" if nulls_to_nan else "numeric_features"
    if texts_as_json:
        texts = "json_agg(transaction_id), json_agg(categorical_features), 0"
    else:
        texts = (
            "string_agg(transaction_id, E'\\x1e'),"
            " string_agg(array_to_string(categorical_features, E'\\x1f', E'\\x1a'), E'\\x1e'),"
            " count(*) FILTER (WHERE E'\\x1a' = ANY(categorical_features))"
        )
    return f"""
        SELECT version, array_agg(id), array_agg(created_at), array_agg(score), array_agg(latency_ms),
               array_agg(fallback), array_agg(status = 'fallback'), array_agg(status = 'error'),
               count(*) FILTER (WHERE status NOT IN ('ok', 'fallback', 'error')),
               array_agg({numeric}), array_agg(id) FILTER (WHERE embedding IS NOT NULL),
               array_agg(embedding) FILTER (WHERE embedding IS NOT NULL),
               min(cardinality(categorical_features)), max(cardinality(categorical_features)), {texts}
        FROM {table} WHERE {where} GROUP BY version, id >> {CHUNK_BITS}
    """  # noqa: S608 (the model's table name and fixed conditions; values are parameters)


def _log_window_copy(
    model: RegisteredModel, *, since: datetime, until: datetime, version: int | None,
    environment: str, limit: int | None,
) -> LogWindow | None:  # fmt: skip
    """The window as a few rows of arrays (one per version and block of ids), in one scan, decoded by
    numpy and put in answer order here; None when its rows are not of one width per version (then
    `_log_window_rows` reads it).

    The aggregates are unordered: within one aggregation, every aggregate sees the rows in the same
    order, so the columns line up, and sorting a million rows here is cheaper than in the server.
    The cheapest form is tried first (features as stored, texts packed with control characters);
    a window that needs NaN for NULL features or JSON for its texts is read again that way.
    """
    table = PredictionLog._meta.db_table
    where, params = _window_sql(
        model,
        since=since,
        until=until,
        environment=environment,
        versions=None if version is None else [version],
    )
    options = {"nulls_to_nan": False, "texts_as_json": False}
    if limit is not None:  # the oldest of the latest `limit` rows bounds the window
        if limit <= 0:
            return None
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT created_at, id FROM {table} WHERE {where} ORDER BY created_at DESC, id DESC"  # noqa: S608
                " OFFSET %s LIMIT 1",
                [*params, limit - 1],
            )
            first = cursor.fetchone()
        if first is not None:
            where += " AND (created_at, id) >= (%s, %s)"
            params += list(first)
    # Other connections do not see the caller's uncommitted rows: inside a transaction, one connection.
    parts = 1 if connection.in_atomic_block else max(1, settings.SERVING_LOG_READ_CONNECTIONS)
    for _ in range(3):
        try:
            groups = _read_groups(table, where, params, options, parts)
        except (DataError, psycopg.DataError, pgcopy.Unexpected, ValueError):
            return None  # the COPY is psycopg's own: its errors are not Django's
        except _NullFeatures:
            options["nulls_to_nan"] = True
        except _AmbiguousTexts:
            options["texts_as_json"] = True
        else:
            return _log_window_merge(model, groups) if groups else None
    return None


def _read_groups(table: str, where: str, params: list, options: dict, parts: int) -> list[dict]:
    """The window's groups, read over `parts` connections at once (each its share of the id blocks).

    PostgreSQL 15 does not aggregate arrays in parallel, so a million logs cost one backend seconds;
    each connection aggregating a share of the groups puts the server's cores to work, and the COPY
    and numpy decoding release the GIL. Extra connections are opened for the read and closed after.
    """
    if parts == 1:
        return _read_part(connection, _window_query(table, where, **options), params, options)
    shared = f"{where} AND (id >> {CHUNK_BITS}) %% {parts} = %s"

    def part(index: int) -> list[dict]:
        query, arguments = _window_query(table, shared, **options), [*params, index]
        if index == 0:
            return _read_part(connection, query, arguments, options)
        try:  # a pool thread: its own connection (Django's are per thread), closed when done
            return _read_part(connections[connection.alias], query, arguments, options)
        finally:
            connections[connection.alias].close()

    with ThreadPoolExecutor(max_workers=parts - 1, thread_name_prefix="log-window") as pool:
        others = [pool.submit(part, index) for index in range(1, parts)]
        groups = part(0)
        for future in others:
            groups += future.result()
    return groups


def _read_part(db, query: str, params: list, options: dict) -> list[dict]:
    # Arrays of different lengths cannot be aggregated: an error, rolled back to the savepoint. The
    # aggregation holds the window in memory (a hash of a few rows): with the default work_mem it
    # would sort the window on disk first.
    with db.cursor() as cursor, transaction.atomic(using=db.alias):
        cursor.execute(
            "SELECT current_setting('work_mem'), set_config('work_mem', %s, true)",
            [settings.SERVING_LOG_READ_WORK_MEM],
        )
        work_mem = cursor.fetchone()[0]
        stream = b"".join(_copy(cursor, query, params))
        cursor.execute("SELECT set_config('work_mem', %s, true)", [work_mem])
    return [_log_group(row, **options) for row in pgcopy.rows(stream)]


def _copy(cursor, query: str, params: list):
    with cursor.cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT BINARY)", params) as copy:
        yield from copy


def _count(field) -> int:
    return struct.unpack(">q", field)[0]


def _log_group(row: list, *, nulls_to_nan: bool, texts_as_json: bool) -> dict:
    (number, ids, created_at, score, latency, fallback, is_fallback, is_error, other_statuses, numeric,
     embedded, embedding, fewest, most, tids, cats, marker_values) = row  # fmt: skip
    if _count(other_statuses):
        raise pgcopy.Unexpected("a status of another name")
    if struct.unpack_from(">i", numeric, 4)[0]:  # the array's "has NULLs" flag
        raise _NullFeatures
    fewest, most = struct.unpack(">i", fewest)[0], struct.unpack(">i", most)[0]
    if fewest != most:
        raise pgcopy.Unexpected("categorical features of uneven width")
    group = {
        "version": struct.unpack(">i", number)[0],
        "id": pgcopy.array(ids),
        "created_at": pgcopy.array(created_at),
        "score": pgcopy.array(score),
        "latency_ms": pgcopy.array(latency),
        "fallback": pgcopy.array(fallback),
        "status": pgcopy.array(is_fallback).astype(np.int8) + 2 * pgcopy.array(is_error).astype(np.int8),
        "numeric": pgcopy.array(numeric),
        "embedded": None if embedded is None else pgcopy.array(embedded),
        "embedding": None if embedding is None else pgcopy.array(embedding),
    }
    n = len(group["id"])
    if texts_as_json:
        group["transaction_id"] = np.array(json.loads(bytes(tids)), dtype=object)
        group["categorical"] = np.array(json.loads(bytes(cats)), dtype=object).reshape(n, most)
    else:
        if _count(marker_values):
            raise _AmbiguousTexts
        group["transaction_id"] = np.array(bytes(tids).decode().split(_ROW), dtype=object)
        categorical = np.empty((n, 0), dtype=object)
        if most:
            fields = [row.split(_FIELD) for row in bytes(cats).decode().split(_ROW)]
            if len(fields) != n or any(len(values) != most for values in fields):
                raise _AmbiguousTexts
            categorical = np.array(fields, dtype=object).reshape(n, most)
            categorical[categorical == _NULL] = None
        if len(group["transaction_id"]) != n:
            raise _AmbiguousTexts
        group["categorical"] = categorical
    if group["numeric"].ndim != 2:
        raise pgcopy.Unexpected("features of uneven width")
    return group


def _log_window_merge(model: RegisteredModel, groups: list[dict]) -> LogWindow | None:
    """One window from the groups' arrays, in answer order (created_at, then id)."""
    widths = {}
    for group in groups:
        key = (group["numeric"].shape[1], group["categorical"].shape[1])
        if widths.setdefault(group["version"], key) != key:
            return None
    embedding_widths = {group["embedding"].shape[1] for group in groups if group["embedding"] is not None}
    if len(embedding_widths) > 1:
        return None
    names = _feature_names(model, widths)
    for number, (numeric_width, categorical_width) in widths.items():
        numeric_names, categorical_names = names.get(number, ([], []))
        if (len(numeric_names), len(categorical_names)) != (numeric_width, categorical_width):
            names[number] = (
                [f"numeric_{i}" for i in range(numeric_width)],
                [f"categorical_{i}" for i in range(categorical_width)],
            )
    n = sum(len(group["id"]) for group in groups)
    numeric_order, categorical_order = [], []
    for number in sorted(widths, reverse=True):  # the newest version's order first
        numeric_order += [name for name in names[number][0] if name not in numeric_order]
        categorical_order += [name for name in names[number][1] if name not in categorical_order]
    numeric = {name: np.full(n, np.nan) for name in numeric_order}
    categorical = {name: np.full(n, None, dtype=object) for name in categorical_order}
    start = 0
    for group in groups:
        rows = slice(start, start + len(group["id"]))
        for position, name in enumerate(names[group["version"]][0]):
            numeric[name][rows] = group["numeric"][:, position]
        for position, name in enumerate(names[group["version"]][1]):
            categorical[name][rows] = group["categorical"][:, position]
        start = rows.stop

    def column(key):
        return np.concatenate([group[key] for group in groups])

    ids = column("id")
    order = np.lexsort((ids, column("created_at")))
    embedding = None
    if embedding_widths:
        embedding = np.full((n, embedding_widths.pop()), np.nan)
        embedded = np.concatenate([group["embedded"] for group in groups if group["embedded"] is not None])
        by_id = np.argsort(ids)
        embedding[by_id[np.searchsorted(ids[by_id], embedded)]] = np.concatenate(
            [group["embedding"] for group in groups if group["embedding"] is not None]
        )
        embedding = embedding[order]
    return LogWindow(
        numeric={name: values[order] for name, values in numeric.items()},
        categorical={name: values[order] for name, values in categorical.items()},
        score=column("score")[order],
        latency_ms=column("latency_ms")[order],
        fallback=column("fallback")[order],
        status=np.array(STATUS_CODES, dtype=object)[column("status")[order]],
        version=np.concatenate([np.full(len(group["id"]), group["version"]) for group in groups])[order],
        created_at=column("created_at")[order],
        transaction_id=column("transaction_id")[order],
        embedding=embedding,
    )
