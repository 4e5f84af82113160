"""Velocity features of the synthetic generator: ours (one searchsorted) against pandas' rolling windows.

For each size, the generator makes a frame (timed whole, for context), then both implementations count,
for every transaction, the customer's transactions in the hour and the day before it, on that frame:

- ours: `apps.training.synthetic._velocity`, the generator's own step (sort once, searchsorted per window);
- pandas: what one would write first, a groupby on the customer with a time-based rolling count.

Both must give the counts the generator put in the frame; the bench exits with 1 if they do not. It
reports the best of --repeats timings and the ratio ours / pandas (below 1: ours is faster).
"""

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _setup import best_of, machine

from apps.training import synthetic

WINDOWS = {"txn_count_1h": synthetic.SECONDS_PER_HOUR, "txn_count_24h": synthetic.SECONDS_PER_DAY}
DEFAULT_SIZES = (100_000, 1_000_000)
QUICK_SIZES = (100_000,)


def ours(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    customer = frame["customer_id"].to_numpy()
    event_time = frame["event_time"]
    second = ((event_time - event_time.min()) // pd.Timedelta(seconds=1)).to_numpy(dtype=np.int64)
    counts = synthetic._velocity(customer, second, int(second.max()) + 1, tuple(WINDOWS.values()))
    return dict(zip(WINDOWS, counts, strict=True))


def pandas_rolling(frame: pd.DataFrame) -> dict[str, np.ndarray]:
    ordered = frame[["customer_id", "event_time"]].sort_values(["customer_id", "event_time"], kind="stable")
    ordered["one"] = 1
    position = ordered.index.to_numpy()
    counts = {}
    for column, seconds in WINDOWS.items():
        rolling = ordered.groupby("customer_id", sort=True).rolling(f"{seconds}s", on="event_time")["one"]
        # A rolling window ends at its own row, so of several transactions in the same second only the
        # last counts them all; the feature counts them all for each of them.
        window = ordered.assign(window=rolling.count().to_numpy().astype(np.int64))
        tied = window.groupby(["customer_id", "event_time"], sort=False)["window"].transform("max")
        count = np.empty(len(frame), dtype=np.int64)
        count[position] = tied.to_numpy()
        counts[column] = count
    return counts


def disagreements(frame: pd.DataFrame, counts: dict[str, np.ndarray]) -> int:
    return sum(int((frame[column].to_numpy() != count).sum()) for column, count in counts.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES, help="rows per frame")
    parser.add_argument("--repeats", type=int, default=3, help="timings per implementation (best kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES} only")
    options = parser.parse_args()
    sizes = QUICK_SIZES if options.quick else options.sizes

    print(f"bench_synthetic: velocity features, ours vs pandas groupby-rolling ({machine()})")
    synthetic.generate_transactions(1_000)  # imports and first-call costs, before any timing
    pandas_rolling(synthetic.generate_transactions(1_000))
    header = (
        f"{'rows':>10} {'generate s':>11} {'rows/s':>11} {'ours s':>8} {'pandas s':>9} "
        f"{'ours/pandas':>12} {'agree':>6}"
    )
    print(header)
    print("-" * len(header))
    failed = False
    for rows in sizes:
        generate_s, frame = best_of(
            options.repeats, lambda rows=rows: synthetic.generate_transactions(rows, seed=options.seed)
        )
        ours_s, ours_counts = best_of(options.repeats, lambda frame=frame: ours(frame))
        pandas_s, pandas_counts = best_of(options.repeats, lambda frame=frame: pandas_rolling(frame))
        wrong = disagreements(frame, ours_counts) + disagreements(frame, pandas_counts)
        failed |= wrong > 0
        print(
            f"{rows:>10,} {generate_s:>11.3f} {rows / generate_s:>11,.0f} {ours_s:>8.3f} {pandas_s:>9.3f} "
            f"{ours_s / pandas_s:>12.3f} {'yes' if not wrong else f'NO ({wrong})':>6}"
        )
    if failed:
        print("the two implementations disagree on some counts", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
