"""Canary analysis window statistics over prediction-log rows: ours (numpy) against a pandas groupby.

For each size, a synthetic window of prediction-log columns (version, latency, status, fallback flag,
score; 95 % of the rows on the stable version, 5 % on the canary, as at the first canary step) is
summarised per version by:

- ours: `apps.deployments.analysis.summarise_by_version` (a boolean mask per version, counts with
  `count_nonzero`, nearest-rank percentiles with `np.partition`);
- pandas: what one would write first, a `DataFrame.groupby("version").agg(...)` with size, sums, the
  model answers' mean score and `quantile(0.50)` / `quantile(0.99)` of the latency.

Both must agree (requests, errors, fallbacks, model answers, mean score exactly or to 1e-12; our
nearest-rank p99 between pandas' "lower" and "higher" neighbours); the bench exits with 1 if they do
not. It reports the best of --repeats timings and the ratio ours / pandas (below 1: ours is faster).
Building the DataFrame from the columns is timed apart (the controller holds numpy columns already).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _setup import best_of, machine

from apps.deployments.analysis import WindowStats, summarise_by_version

DEFAULT_SIZES = (100_000, 1_000_000)
QUICK_SIZES = (100_000,)
STABLE, CANARY = 7, 8


def log_window(rows: int, seed: int = 42) -> dict[str, np.ndarray]:
    """Columns as the controller reads them from the prediction log for one window."""
    rng = np.random.default_rng(seed)
    version = rng.choice(np.array([STABLE, CANARY]), size=rows, p=[0.95, 0.05])
    status = rng.choice(np.array(["ok", "fallback", "error"]), size=rows, p=[0.985, 0.01, 0.005])
    return {
        "version": version,
        "latency_ms": rng.gamma(2.0, 4.0, size=rows),
        "status": status,
        "fallback": status == "fallback",
        "score": np.where(status == "error", np.nan, rng.beta(1.0, 20.0, size=rows)),
    }


def ours(columns: dict[str, np.ndarray]) -> dict[int, WindowStats]:
    return summarise_by_version(
        columns["version"], columns["latency_ms"], columns["status"], columns["fallback"], columns["score"]
    )


def frame_of(columns: dict[str, np.ndarray]) -> pd.DataFrame:
    return pd.DataFrame(columns)


def pandas_groupby(frame: pd.DataFrame) -> pd.DataFrame:
    model_answer = (frame["status"] != "error") & ~frame["fallback"] & frame["score"].notna()
    work = frame.assign(
        error=frame["status"] == "error",
        model_score=frame["score"].where(model_answer),
        model_answer=model_answer,
    )
    grouped = work.groupby("version")
    table = grouped.agg(
        requests=("latency_ms", "size"),
        errors=("error", "sum"),
        fallbacks=("fallback", "sum"),
        scored=("model_answer", "sum"),
        score_mean=("model_score", "mean"),
    )
    table["p50"] = grouped["latency_ms"].quantile(0.50)
    table["p99"] = grouped["latency_ms"].quantile(0.99)
    return table


def disagreements(stats: dict[int, WindowStats], table: pd.DataFrame, frame: pd.DataFrame) -> list[str]:
    problems = []
    if set(stats) != set(table.index):
        return [f"versions differ: {sorted(stats)} vs {sorted(table.index)}"]
    latency = frame.groupby("version")["latency_ms"]
    lower, higher = (
        latency.quantile(0.99, interpolation="lower"),
        latency.quantile(0.99, interpolation="higher"),
    )
    for version, ours_stats in stats.items():
        row = table.loc[version]
        for name in ("requests", "errors", "fallbacks", "scored"):
            if getattr(ours_stats, name) != int(row[name]):
                problems.append(f"version {version} {name}: {getattr(ours_stats, name)} vs {int(row[name])}")
        if abs(ours_stats.score_mean - row["score_mean"]) > 1e-12:
            problems.append(f"version {version} score mean: {ours_stats.score_mean} vs {row['score_mean']}")
        p99, low, high = ours_stats.latency_p99_ms, lower[version], higher[version]
        if not low <= p99 <= high:
            problems.append(f"version {version} p99 {p99} not in [{low}, {high}]")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}")
    options = parser.parse_args()
    sizes = options.sizes or (QUICK_SIZES if options.quick else DEFAULT_SIZES)

    print(f"bench_analysis: canary window statistics, ours vs pandas groupby ({machine()})")
    print(f"{'rows':>10} {'ours s':>8} {'pandas s':>9} {'ours/pandas':>12} {'frame s':>8}  canary p99 ms")
    failed = False
    for rows in sizes:
        columns = log_window(rows)
        # Warm-up (imports, first-call costs) before any timing.
        ours({name: column[:1000] for name, column in columns.items()})
        pandas_groupby(frame_of({name: column[:1000] for name, column in columns.items()}))
        ours_seconds, stats = best_of(options.repeats, lambda columns=columns: ours(columns))
        frame_seconds, frame = best_of(options.repeats, lambda columns=columns: frame_of(columns))
        pandas_seconds, table = best_of(options.repeats, lambda frame=frame: pandas_groupby(frame))
        problems = disagreements(stats, table, frame)
        print(
            f"{rows:>10,} {ours_seconds:>8.3f} {pandas_seconds:>9.3f} {ours_seconds / pandas_seconds:>12.2f} "
            f"{frame_seconds:>8.3f}  {stats[CANARY].latency_p99_ms:.2f}"
        )
        for problem in problems:
            print(f"  DISAGREE {problem}", file=sys.stderr)
        failed = failed or bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
