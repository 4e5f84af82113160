"""Time to generate, train, log and register a model through the portal, against plain MLflow usage.

For each size, in one run on a throwaway portal and MLflow store (bench/_setup.py):

- portal: `synthetic_dataset_create` (generate, write Parquet, hash, register the dataset version), then
  `model_train` (fit, holdout evaluation with bootstrap intervals and curves, reference profile, one
  MLflow run with the model, its signature and the JSON evidence, a registered version, its artifact
  hash, the portal's mirror rows and the model card);
- plain: what a data scientist might do without the portal: generate the same frame in memory, fit the
  same pipeline (`pipeline.build_pipeline`) on the same training split, and
  `mlflow.sklearn.log_model(..., registered_model_name=...)` with the same input example. Nothing else.

The phases of the portal are timed by wrapping the functions it calls; the ratio portal / plain shows
what the governance evidence costs. Each path runs --repeats times per size, alternated, and each phase
is reported at its best (shortest) time: other work on a shared machine only ever adds time.
"""

import argparse
import io
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr
from functools import wraps
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _setup import machine, mlflow_store_setup, portal_setup, stopwatch

DEFAULT_SIZES = (100_000, 1_000_000)
QUICK_SIZES = (100_000,)
WARM_UP_ROWS = 20_000
PORTAL_MODEL = "bench-portal"
PLAIN_MODEL = "bench-plain"


class PhaseClock:
    """Seconds spent in each wrapped function, summed over calls, while `watching` is active.

    A target (owner, name, within) counts only the calls made inside the target labelled `within`.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.active: list[str] = []

    def _timed(self, label: str, function, within: str | None):
        @wraps(function)
        def timed(*args, **kwargs):
            if within is not None and within not in self.active:
                return function(*args, **kwargs)
            self.active.append(label)
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - started
                self.active.pop()

        return timed

    @contextmanager
    def watching(self, targets: dict[str, tuple]) -> Iterator["PhaseClock"]:
        # vars(): a class keeps its descriptor (sklearn's available_if), put back as it was.
        originals = [(owner, name, vars(owner)[name]) for owner, name, *_ in targets.values()]
        for label, (owner, name, *within) in targets.items():
            setattr(owner, name, self._timed(label, getattr(owner, name), *within or [None]))
        try:
            yield self
        finally:
            for owner, name, original in originals:
                setattr(owner, name, original)


def portal_run(*, actor, rows: int, seed: int, model_name: str = PORTAL_MODEL) -> dict[str, float]:
    from sklearn.pipeline import Pipeline

    from apps.registry import gateway
    from apps.training import pipeline, services, synthetic

    clock = PhaseClock()
    targets = {
        "frame": (synthetic, "generate_transactions"),
        "train": (pipeline, "train"),
        "score": (Pipeline, "predict_proba", "train"),
        "evaluate": (pipeline, "evaluate"),
        "profile": (pipeline, "reference_profile"),
        "log": (gateway, "log_training"),
        "register": (services, "_register"),
        "create_version": (gateway, "create_version"),
        "signature": (gateway, "model_signature"),
        "artifact_hash": (gateway, "artifact_sha256"),
    }
    with clock.watching(targets):
        with stopwatch() as generate:
            dataset = services.synthetic_dataset_create(actor=actor, rows=rows, seed=seed)
        with stopwatch() as train:
            outcome = services.model_train(actor=actor, model_name=model_name, dataset=dataset, seed=seed)
    if outcome.version is None:
        raise SystemExit(f"the quality gate refused the model at {rows} rows: {outcome.run.reason}")
    s = clock.seconds
    return {
        "frame": s["frame"],
        "dataset": generate["seconds"] - s["frame"],
        "fit": s["train"] - s["score"] - s["evaluate"] - s["profile"],
        "score": s["score"],
        "evaluate": s["evaluate"],
        "profile": s["profile"],
        "log": s["log"],
        "create_version": s["create_version"],
        "signature_hash": s["signature"] + s["artifact_hash"],
        "mirror_card": s["register"] - s["create_version"] - s["signature"] - s["artifact_hash"],
        "load_other": train["seconds"] - s["train"] - s["log"] - s["register"],
    }


def plain_run(*, rows: int, seed: int, model_name: str = PLAIN_MODEL) -> dict[str, float]:
    import mlflow
    from django.conf import settings

    from apps.registry import gateway
    from apps.training import pipeline, synthetic

    with stopwatch() as generate:
        frame = synthetic.generate_transactions(rows, seed=seed)
    with stopwatch() as fit:
        train_df, holdout_df = pipeline.split(frame, seed=seed)
        model = pipeline.build_pipeline(random_state=seed)
        model.fit(train_df[synthetic.FEATURES], train_df[synthetic.LABEL])
    # The input example the portal logs: five holdout rows, categories as strings.
    input_example = (
        holdout_df[synthetic.FEATURES]
        .head(5)
        .astype({name: object for name in synthetic.CATEGORICAL_FEATURES})
        .reset_index(drop=True)
    )
    experiment_id = gateway.ensure_store()  # the bench's store; its artifacts stay in the temp folder
    with stopwatch() as log:
        mlflow.set_tracking_uri(settings.MLFLOW_TRACKING_URI)
        # redirect_stderr: MLflow prints "Successfully registered model..." between the tables.
        with mlflow.start_run(experiment_id=experiment_id), redirect_stderr(io.StringIO()):
            # MLflow's default format (skops) refuses the gradient-boosted trees; the portal's format.
            mlflow.sklearn.log_model(
                model,
                name="model",
                input_example=input_example,
                registered_model_name=model_name,
                serialization_format="cloudpickle",
            )
    return {"frame": generate["seconds"], "fit": fit["seconds"], "log": log["seconds"]}


# (label, key in the portal's figures, key in the plain figures); the generate phase is the first two.
ROWS = [
    ("generate the frame", "frame", "frame"),
    ("  Parquet, hashes, dataset version", "dataset", None),
    ("split, fit", "fit", "fit"),
    ("  score holdout and train split", "score", None),
    ("  evaluate: metrics, bootstrap CIs, curves", "evaluate", None),
    ("  reference profile", "profile", None),
    ("MLflow run: params, metrics, JSON, model", "log", "log"),
    ("  register the version in MLflow", "create_version", None),
    ("  signature, artifact hash", "signature_hash", None),
    ("  mirror rows, model card", "mirror_card", None),
    ("  load Parquet, training run row", "load_other", None),
]
GENERATE = {"frame", "dataset"}


def best_phases(runs: list[dict[str, float]]) -> dict[str, float]:
    """Each phase's shortest time over the runs: on a shared machine, the least disturbed figure."""
    return {key: min(run[key] for run in runs) for key in runs[0]}


def totals(figures: dict[str, float]) -> tuple[float, float]:
    generate = sum(seconds for key, seconds in figures.items() if key in GENERATE)
    return generate, sum(figures.values()) - generate


def report(rows: int, repeats: int, portal: dict[str, float], plain: dict[str, float]) -> None:
    print(f"\n{rows:,} rows (best of {repeats} per phase; totals are sums of the phases)")
    header = f"{'phase':<44} {'portal s':>9} {'plain s':>9}"
    print(header)
    print("-" * len(header))
    for label, portal_key, plain_key in ROWS:
        plain_text = f"{plain[plain_key]:>9.2f}" if plain_key else f"{'-':>9}"
        print(f"{label:<44} {portal[portal_key]:>9.2f} {plain_text}")
    print("-" * len(header))
    (portal_generate, portal_train), (plain_generate, plain_train) = totals(portal), totals(plain)
    for label, ours, theirs in (
        ("generate (synthetic_dataset_create)", portal_generate, plain_generate),
        ("train, log, register (model_train)", portal_train, plain_train),
        ("total", portal_generate + portal_train, plain_generate + plain_train),
    ):
        print(f"{label:<44} {ours:>9.2f} {theirs:>9.2f}   portal/plain {ours / theirs:5.2f}")
    extra = portal_generate + portal_train - plain_generate - plain_train
    print(f"{'governance evidence adds':<44} {extra:>+9.2f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES, help="rows per dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--repeats", type=int, default=3, help="runs of each path per size, alternated (best phase kept)"
    )
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES} only")
    options = parser.parse_args()
    sizes = QUICK_SIZES if options.quick else options.sizes

    print(f"bench_training: generate, train, log, register: portal vs plain MLflow ({machine()})")
    portal_setup()
    with stopwatch() as store:
        mlflow_store_setup()

    from django.contrib.auth import get_user_model

    actor = get_user_model().objects.create_user(username="bench", password=None)
    # Imports (mlflow.sklearn, pyarrow), first writes to both stores and the model registry: untimed.
    with stopwatch() as warm_up:
        portal_run(actor=actor, rows=WARM_UP_ROWS, seed=1, model_name="bench-warm-up-portal")
        plain_run(rows=WARM_UP_ROWS, seed=1, model_name="bench-warm-up-plain")
    print(
        f"setup (untimed): MLflow store {store['seconds']:.1f} s, warm-up at {WARM_UP_ROWS:,} rows "
        f"{warm_up['seconds']:.1f} s"
    )
    for rows in sizes:
        runs = {"portal": [], "plain": []}
        # Each repeat on a dataset of its own seed, the paths taking turns to go first.
        for repeat in range(options.repeats):
            seed = options.seed + repeat
            for path in ("portal", "plain") if repeat % 2 == 0 else ("plain", "portal"):
                if path == "portal":
                    runs[path].append(portal_run(actor=actor, rows=rows, seed=seed))
                else:
                    runs[path].append(plain_run(rows=rows, seed=seed))
        report(rows, options.repeats, best_phases(runs["portal"]), best_phases(runs["plain"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
