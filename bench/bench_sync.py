"""Time of a registry sync of 1,000 MLflow versions: first mirror, incremental sync, naive full re-mirror.

Setup (reported, not part of any ratio): a fresh MLflow store (bench/_setup.py) gets --versions versions
spread over --models registered models, made with the plain MlflowClient the way a data scientist
registers outside the portal: a run, a few metrics and params, a version from the run.

Then, on an empty portal:

- (a) `registry_sync()` mirrors every version (one run fetch and one artifact listing per version);
- (b) `registry_sync()` again, with nothing new: versions already mirrored are not fetched again;
- (c) the alternative, a naive full re-mirror: what the sync would do without the "already mirrored"
  shortcut, i.e. fetch every version's run and validation artifact and update its row each time.

(b) is what the periodic sync (every minute) costs in the steady state; (c) is what it would cost
without the shortcut. MLflow client calls and SQL queries are counted for each.
"""

import argparse
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _setup import best_of, machine, mlflow_store_setup, portal_setup, stopwatch

TEAM_SLUG = "fraud-analytics"


def registered_outside_the_portal(*, models: int, versions: int, validation_json: bool) -> int:
    """Versions made with the plain MlflowClient, round-robin over the models; returns how many."""
    from django.conf import settings
    from mlflow import MlflowClient
    from mlflow.entities import Metric, Param

    from apps.registry.services import TEAM_TAG

    experiment_id = mlflow_store_setup()
    mlflow_client = MlflowClient(settings.MLFLOW_TRACKING_URI, settings.MLFLOW_TRACKING_URI)
    names = [f"bench-sync-{number:02d}" for number in range(models)]
    for name in names:
        mlflow_client.create_registered_model(name, tags={TEAM_TAG: TEAM_SLUG})
    for number in range(versions):
        run = mlflow_client.create_run(experiment_id)
        run_id = run.info.run_id
        auc = 0.80 + (number % 100) / 1000
        mlflow_client.log_batch(
            run_id,
            metrics=[
                Metric("roc_auc", auc, 0, 0),
                Metric("pr_auc", auc / 3, 0, 0),
                Metric("brier", 0.012, 0, 0),
            ],
            params=[Param("model", "HistGradientBoostingClassifier"), Param("seed", str(number))],
        )
        if validation_json:
            validation = {"confidence_intervals": {"roc_auc": [auc - 0.01, auc + 0.01]}}
            mlflow_client.log_dict(run_id, validation, "validation.json")
        mlflow_client.set_terminated(run_id)
        mlflow_client.create_model_version(
            names[number % models], source=f"{run.info.artifact_uri}/model", run_id=run_id
        )
    return versions


def naive_full_sync() -> int:
    """registry_sync without its shortcut: every version's run is fetched and its row updated, every time.

    It calls the sync's own per-version step (`sync.run_details`, `version_mirror`) so that the only
    difference from `registry_sync` is the shortcut.
    """
    from django.db import transaction

    from apps.accounts.models import Team
    from apps.registry import gateway, services

    refreshed = 0
    for remote_model in gateway.registered_models():
        team = Team.objects.filter(slug=remote_model.tags.get(services.TEAM_TAG, "")).first()
        model = services.model_ensure(name=remote_model.name, team=team, description=remote_model.description)
        for remote in gateway.model_versions(model.name):
            details = services.sync.run_details(remote.run_id)
            with transaction.atomic():
                services.version_mirror(model=model, remote=remote, **details)
            refreshed += 1
        if not model.aliases_pending:
            services.sync._check_aliases(model, remote_model.aliases)
    return refreshed


@contextmanager
def counted(calls: Counter) -> Iterator[Counter]:
    """Count MLflow client calls (by method; artifact downloads too) and SQL queries ("sql")."""
    import mlflow
    from django.db import connection

    from apps.registry import gateway

    original_client, original_download = gateway.client, mlflow.artifacts.download_artifacts

    class CountingClient:
        def __init__(self, inner):
            self._inner = inner

        def __getattr__(self, name):
            attribute = getattr(self._inner, name)
            if not callable(attribute):
                return attribute

            def call(*args, **kwargs):
                calls[name] += 1
                return attribute(*args, **kwargs)

            return call

    def download_artifacts(*args, **kwargs):
        calls["download_artifacts"] += 1
        return original_download(*args, **kwargs)

    def query(execute, sql, params, many, context):
        calls["sql"] += 1
        return execute(sql, params, many, context)

    gateway.client = lambda: CountingClient(original_client())
    mlflow.artifacts.download_artifacts = download_artifacts
    try:
        with connection.execute_wrapper(query):
            yield calls
    finally:
        gateway.client, mlflow.artifacts.download_artifacts = original_client, original_download


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--versions", type=int, default=1_000, help="MLflow versions to mirror")
    parser.add_argument("--models", type=int, default=10, help="registered models they are spread over")
    parser.add_argument("--repeats", type=int, default=3, help="timings of the incremental sync (best kept)")
    parser.add_argument(
        "--validation-json",
        action="store_true",
        help="log a validation.json with each run, as portal-trained runs have (the sync downloads it)",
    )
    parser.add_argument("--quick", action="store_true", help="200 versions over 2 models")
    options = parser.parse_args()
    if options.quick:
        options.versions, options.models = 200, 2

    print(f"bench_sync: registry sync of {options.versions:,} MLflow versions ({machine()})")
    portal_setup()

    from apps.accounts.services import team_ensure
    from apps.registry import services
    from apps.registry.models import ModelVersion, SyncRun

    team_ensure(name="Fraud Analytics", slug=TEAM_SLUG)
    with stopwatch() as store:
        mlflow_store_setup()
    with stopwatch() as setup:
        total = registered_outside_the_portal(
            models=options.models, versions=options.versions, validation_json=options.validation_json
        )
    artifacts = "with a validation.json each" if options.validation_json else "no artifacts"
    print(
        f"setup (untimed): MLflow store {store['seconds']:.1f} s; {total:,} versions in {options.models} "
        f"models ({artifacts}) with the plain MlflowClient in {setup['seconds']:.1f} s"
    )

    first_calls, second_calls, naive_calls = Counter(), Counter(), Counter()
    with counted(first_calls), stopwatch() as first:
        first_sync = services.registry_sync()
    with counted(second_calls):
        second_s, second_sync = best_of(options.repeats, services.registry_sync)
    second_calls = Counter({name: count // options.repeats for name, count in second_calls.items()})
    with counted(naive_calls), stopwatch() as naive:
        refreshed = naive_full_sync()

    checks = [
        (first_sync.status == SyncRun.Status.SUCCEEDED, f"first sync failed: {first_sync.error}"),
        (second_sync.status == SyncRun.Status.SUCCEEDED, f"second sync failed: {second_sync.error}"),
        (first_sync.versions_created == total, f"first sync mirrored {first_sync.versions_created}"),
        (second_sync.versions_created == 0, f"second sync mirrored {second_sync.versions_created}"),
        (ModelVersion.objects.count() == total, f"{ModelVersion.objects.count()} versions in the portal"),
        (refreshed == total, f"naive re-mirror refreshed {refreshed}"),
    ]
    failures = [message for ok, message in checks if not ok]
    if failures:
        print("the syncs did not do what was expected: " + "; ".join(failures), file=sys.stderr)
        return 1

    header = f"{'':<44} {'versions':>9} {'seconds':>8} {'versions/s':>11} {'MLflow calls':>13} {'SQL':>7}"
    print(header)
    print("-" * len(header))
    for label, mirrored, seconds, calls in (
        ("(a) first sync: mirror everything", first_sync.versions_created, first["seconds"], first_calls),
        ("(b) second sync: nothing new", second_sync.versions_created, second_s, second_calls),
        ("(c) alternative: naive full re-mirror", refreshed, naive["seconds"], naive_calls),
    ):
        mlflow_calls = sum(count for name, count in calls.items() if name != "sql")
        print(
            f"{label:<44} {mirrored:>9,} {seconds:>8.2f} {total / seconds:>11,.0f} "
            f"{mlflow_calls:>13,} {calls['sql']:>7,}"
        )
    print("versions/s: versions checked per second (every sync lists all of them)")
    print(f"(b)/(a) incremental / first sync:        {second_s / first['seconds']:.4f}")
    print(f"(b)/(c) incremental / naive re-mirror:    {second_s / naive['seconds']:.4f}")
    print(f"(a)/(c) first sync / naive re-mirror:     {first['seconds'] / naive['seconds']:.2f}")
    for label, calls in (("(a)", first_calls), ("(b)", second_calls), ("(c)", naive_calls)):
        detail = ", ".join(f"{name} {count:,}" for name, count in sorted(calls.items()) if name != "sql")
        print(f"MLflow calls {label}: {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
