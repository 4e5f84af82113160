"""Scoring latency of the demo pipeline: sklearn's predict_proba against the compiled scorer (Treelite).

One demo pipeline (apps.training.pipeline.train on synthetic transactions) is compiled with
apps.serving.runtime.compile_pipeline, then each path scores one row and 1,000-row batches, many calls
each, alternated call by call so that the machine's noise falls on both alike:

- pipeline: `pipeline.predict_proba` on a DataFrame built beforehand (the pipeline at its best);
- pyfunc: `PyfuncScorer.predict_proba(rows)` from request dicts (what the fallback path costs a request:
  the DataFrame is built from the JSON features, then the pipeline);
- trees: the classifier alone on the encoded numpy rows (`HistGradientBoostingClassifier.predict_proba`);
- compiled: `CompiledScorer.predict_proba(rows)` from request dicts (encoding included).

p50 and p99 per call, and the ratio of each to compiled. The parity (max abs difference of fraud
probabilities over the holdout) must be within the gate, else the bench fails (exit 1).
"""

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

# The inference workers' setting (issue 8): OpenMP's default spins a thread per core per call, which
# on a shared 2-core machine makes one-row predictions of the pipeline slower by orders of magnitude.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _setup import machine

ROWS = 40_000  # the demo's training size (apps.training.services.DEMO_ROWS)
QUICK_ROWS = 20_000
BATCH = 1_000


def percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.asarray(samples) * 1000
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=None, help=f"training rows (default {ROWS})")
    parser.add_argument("--calls", type=int, default=None, help="calls per path for one row (default 2000)")
    parser.add_argument("--quick", action="store_true", help="fewer rows and calls")
    options = parser.parse_args()
    rows = options.rows or (QUICK_ROWS if options.quick else ROWS)
    one_row_calls = options.calls or (500 if options.quick else 2_000)
    batch_calls = max(20, one_row_calls // 20)

    from apps.serving import runtime
    from apps.training import pipeline as training
    from apps.training.synthetic import FEATURES, generate_transactions

    warnings.filterwarnings("ignore", message="X does not have valid feature names")
    print(f"bench_serving_runtime: {machine()}, load average {os.getloadavg()[0]:.1f}")
    frame = generate_transactions(rows, seed=1)
    result = training.train(frame, seed=1, bootstrap=0)
    pipeline = result.pipeline
    schema = [{"name": column["name"], "type": column["dtype"]} for column in result.schema]
    started = time.perf_counter()
    scorer = runtime.compile_pipeline(pipeline, schema)
    compile_seconds = time.perf_counter() - started
    pyfunc = runtime.PyfuncScorer(pipeline, runtime.features_from_schema(schema))
    _, holdout = training.split(frame, seed=1)
    diff = runtime.parity(pipeline, scorer, holdout)
    print(
        f"demo pipeline: {rows} rows, {pipeline.named_steps['model'].n_iter_} trees; compiled in "
        f"{compile_seconds * 1000:.0f} ms; parity over {len(holdout)} holdout rows: max abs diff {diff:.2e} "
        f"(gate {runtime.PARITY_TOLERANCE:g})"
    )

    inputs = holdout[FEATURES].reset_index(drop=True)
    request_rows = runtime._request_rows(inputs)
    encoded = pipeline.named_steps["preprocess"].transform(inputs).to_numpy(dtype=np.float64)
    trees = pipeline.named_steps["model"]
    paths = {
        "pipeline": lambda i, n: pipeline.predict_proba(inputs.iloc[i : i + n]),
        "pyfunc": lambda i, n: pyfunc.predict_proba(request_rows[i : i + n]),
        "trees": lambda i, n: trees.predict_proba(encoded[i : i + n]),
        "compiled": lambda i, n: scorer.predict_proba(request_rows[i : i + n]),
    }
    table = []
    for label, size, calls in (("1 row", 1, one_row_calls), (f"{BATCH} rows", BATCH, batch_calls)):
        timings = {name: [] for name in paths}
        starts = np.random.default_rng(0).integers(0, len(inputs) - size, calls)
        for path in paths.values():  # warm up
            path(0, size)
        for start in starts:
            for name, path in paths.items():
                began = time.perf_counter()
                path(int(start), size)
                timings[name].append(time.perf_counter() - began)
        compiled_p50, compiled_p99 = percentiles(timings["compiled"])
        for name in paths:
            p50, p99 = percentiles(timings[name])
            table.append((label, name, calls, p50, p99, p50 / compiled_p50, p99 / compiled_p99))

    print(f"\n{'batch':<10} {'path':<9} {'calls':>6} {'p50 ms':>9} {'p99 ms':>9} {'p50 / compiled':>15} "
          f"{'p99 / compiled':>15}")  # fmt: skip
    for label, name, calls, p50, p99, ratio50, ratio99 in table:
        print(f"{label:<10} {name:<9} {calls:>6} {p50:>9.3f} {p99:>9.3f} {ratio50:>15.1f} {ratio99:>15.1f}")
    if not diff <= runtime.PARITY_TOLERANCE:
        print(f"FAILED: the compiled scorer differs from the pipeline by {diff:.3g}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
