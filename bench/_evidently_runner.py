"""Evidently's DataDriftPreset on bench_drift's tables, run by bench_drift.py --evidently in Evidently's venv.

Why a separate interpreter: Evidently 0.7.23 needs pandas < 3 and pins its own dependencies, which the
portal's venv must not inherit; a subprocess also gives Evidently's peak memory alone.

Usage: <evidently venv>/bin/python _evidently_runner.py tables.npz  (arrays "reference", "current",
rows x features, and "names"). Prints one JSON object on stdout.

One Report of three DataDriftPresets, method="ks", "psi" and "jensenshannon" (the preset takes one
method per column; left alone it would pick Wasserstein distance for numeric columns over 1,000 rows),
so every feature gets KS, PSI and JS, as ours does. Evidently's PSI and JS bin the reference and the
current values together into Sturges equal-width bins (about 22 at 1M + 1M rows), not reference
deciles, so their values differ from ours and are not compared; the columns each method flags are
reported. Timed: building the Datasets from the DataFrames and Report.run (which also builds Evidently's
widgets; no HTML is written). Memory: the process's peak RSS during the timed part, in total and above
the RSS when it starts (interpreter, libraries, DataFrames). The peak is reset first (Linux: "5" into
/proc/self/clear_refs), since loading the .npz leaves a high-water mark of its own; where that cannot be
done, ru_maxrss is used and the growth is understated.
"""

import contextlib
import gc
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from evidently import DataDefinition, Dataset, Report, __version__
from evidently.presets import DataDriftPreset

METHODS = ("ks", "psi", "jensenshannon")


def rss_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak) from /proc/self/status; the peak falls back on ru_maxrss."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main() -> None:
    with np.load(sys.argv[1]) as tables:
        names = [str(name) for name in tables["names"]]
        reference = pd.DataFrame(tables["reference"], columns=names)
        current = pd.DataFrame(tables["current"], columns=names)
    gc.collect()
    with contextlib.suppress(OSError):
        Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    before = rss_mib("VmRSS")
    started = time.perf_counter()
    definition = DataDefinition(numerical_columns=names)
    report = Report([DataDriftPreset(method=method) for method in METHODS])
    snapshot = report.run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    seconds = time.perf_counter() - started
    peak = rss_mib("VmHWM")
    flagged = {method: [] for method in METHODS}
    for result in snapshot.dict()["metrics"]:
        config = result["config"]
        if config.get("type", "").endswith("ValueDrift"):
            threshold, value = config["threshold"], result["value"]
            # Evidently's rule: a p-value (KS) under the threshold, a distance (PSI, JS) at or above it.
            drifted = value < threshold if config["method"] == "ks" else value >= threshold
            if drifted:
                flagged[config["method"]].append(config["column"])
    json.dump(
        {
            "version": __version__,
            "pandas": pd.__version__,
            "seconds": seconds,
            "peak_rss_mib": peak,
            "rss_growth_mib": peak - before,
            "flagged": {method: sorted(columns) for method, columns in flagged.items()},
        },
        sys.stdout,
    )


if __name__ == "__main__":
    main()
