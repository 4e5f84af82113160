"""Times the synthetic transaction generator at 100k and 1M rows (prints rows/s; no pass/fail)."""

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps.training.synthetic import Shift, generate_transactions

SIZES = (100_000, 1_000_000)
REPEATS = 3


def best_seconds(rows: int, shift: Shift | None) -> float:
    timings = []
    for seed in range(REPEATS):
        started = time.perf_counter()
        generate_transactions(rows, seed=seed, shift=shift)
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    generate_transactions(1_000)  # warm imports and caches before timing
    for label, shift in (("reference", None), ("shifted", Shift.of_severity(1.0))):
        for rows in SIZES:
            seconds = best_seconds(rows, shift)
            print(f"synthetic {label:9} {rows:>9,} rows  {seconds:7.3f} s  {rows / seconds:>12,.0f} rows/s")


if __name__ == "__main__":
    main()
