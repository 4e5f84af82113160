"""Drift statistics of a table: ours (apps.monitoring.drift) against a naive numpy/scipy loop, side by side.

Data: a reference of --reference-rows rows (100k) x 20 numeric features of assorted shapes (normal,
log-normal, exponential, uniform, Student t, mixtures), and current windows of 10k / 100k / 1M rows
from the same generators with drift injected in two features (a mean shift, a scale change).

For each window, every feature gets KS (statistic and p-value), PSI and JS over 10 reference-decile bins:

- naive: what one writes first, per feature and per call: the reference deciles, `np.histogram` of the
  reference and of the window, PSI from the shares (same epsilon), `scipy.spatial.distance.jensenshannon`
  squared, and `scipy.stats.ks_2samp` (method "auto");
- ours, cold: `drift.compare_table(reference, window)` (builds the references: sorts each reference column);
- ours, warm: references built once beforehand (`drift.build_reference`, as a drift run gets them from the
  training run), then `summarise_table` (the columns on one thread per CPU, as a drift run's chunk) +
  `compare_summaries`: what a scheduled run costs;
- ours, chunked: the window cut into --chunks pieces, each summarised alone (as on several workers),
  the summaries added and compared: must give exactly the warm result;
- with --postgres (DATABASE_URL naming a migrated PostgreSQL database): the window is first written as
  prediction logs (not timed; removed at the end) and read back the way a drift run reads it,
  `apps.serving.selectors.log_window`, then summarised and compared: "read s" + "stats s" is what a
  one-chunk drift run costs (a chord splits the read over workers); its result must equal the warm one.
- with --evidently: a second table sets ours beside scipy alone (`ks_2samp` per column, no PSI or JS)
  and Evidently 0.7.23's DataDriftPreset (KS, PSI and JS on every column, see bench/_evidently_runner.py)
  on the same tables, one run each. Evidently needs pandas < 3 and pins its own dependencies, so it runs
  in a venv of its own, created once by the bench (--evidently-venv, default var/bench-evidently-venv;
  with uv when it is on PATH, else pip), in a subprocess given the tables as an .npz file; the subprocess
  reports its own time and peak RSS. If the venv cannot be made (no network), the bench says so and
  goes on without Evidently. Its values are not compared with ours (other bins); the columns it flags are
  printed.

The bench exits with 1 if the results disagree: KS statistics must equal scipy's to 1e-12, PSI and JS
must equal the naive ones to 1e-9 (the features are continuous, so no value sits on a decile, where
np.histogram's half-open bins and our right-closed ones would differ), p-values within 2% (see
drift.ks_pvalue on scipy's far tail), and the chunked result must be identical to the warm one. Timings
are the best of --repeats; peak memory is the largest traced allocation (tracemalloc, which numpy
reports to) of one more pass of each, above the data itself.
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.spatial.distance import jensenshannon

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _setup import ROOT, best_of, machine

from apps.monitoring import drift

FEATURES = 20
BINS = 10
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
DRIFTED = {"f03": "mean shift", "f11": "scale change"}
EVIDENTLY_VERSION = "0.7.23"
EVIDENTLY = (f"evidently=={EVIDENTLY_VERSION}", "pandas<3")
RUNNER = Path(__file__).resolve().parent / "_evidently_runner.py"


def generate(rows: int, rng: np.random.Generator, *, drifted: bool) -> dict[str, np.ndarray]:
    shapes = [
        lambda n: rng.normal(0.0, 1.0, n),
        lambda n: rng.lognormal(3.0, 1.0, n),
        lambda n: rng.exponential(2.0, n),
        lambda n: rng.uniform(-5.0, 5.0, n),
        lambda n: rng.standard_t(4, n),
        lambda n: np.where(rng.uniform(size=n) < 0.3, rng.normal(-2.0, 0.5, n), rng.normal(1.0, 1.0, n)),
    ]
    columns = {f"f{i:02d}": shapes[i % len(shapes)](rows) for i in range(FEATURES)}
    if drifted:
        columns["f03"] = columns["f03"] + 1.5  # uniform(-5, 5) moved by 15% of its range
        columns["f11"] = columns["f11"] * 1.5  # a mixture spread out
    return columns


def naive(reference: dict[str, np.ndarray], current: dict[str, np.ndarray]) -> dict[str, tuple]:
    results = {}
    for name, ref in reference.items():
        cur = current[name]
        inner = np.unique(np.quantile(ref, np.arange(1, BINS) / BINS))
        edges = np.concatenate(([-np.inf], inner, [np.inf]))
        p = np.histogram(ref, bins=edges)[0] / ref.size
        q = np.histogram(cur, bins=edges)[0] / cur.size
        pe, qe = np.maximum(p, drift.PSI_EPSILON), np.maximum(q, drift.PSI_EPSILON)
        psi = float(np.sum((qe - pe) * np.log(qe / pe)))
        js = float(jensenshannon(p, q, base=2) ** 2)
        ks = stats.ks_2samp(ref, cur)
        results[name] = (float(ks.statistic), float(ks.pvalue), psi, js)
    return results


def as_tuples(results: dict) -> dict[str, tuple]:
    return {name: (r.ks, r.ks_pvalue, r.psi, r.js) for name, r in results.items()}


def warm(references: dict, current: dict[str, np.ndarray]) -> dict:
    return drift.compare_summaries(references, drift.summarise_table(references, current))


def chunked(references: dict, current: dict[str, np.ndarray], chunks: int) -> dict:
    summaries = {}
    for name, built in references.items():
        parts = [built.summarise(piece) for piece in np.array_split(current[name], chunks)]
        merged = parts[0]
        for part in parts[1:]:
            merged = merged + part
        summaries[name] = merged
    return drift.compare_summaries(references, summaries)


def peak_mib(action) -> float:
    tracemalloc.start()
    try:
        action()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def disagreements(ours: dict[str, tuple], theirs: dict[str, tuple]) -> list[str]:
    problems = []
    for name, (ks, p, psi, js) in ours.items():
        t_ks, t_p, t_psi, t_js = theirs[name]
        if abs(ks - t_ks) > 1e-12:
            problems.append(f"{name}: KS {ks!r} != scipy {t_ks!r}")
        if not np.isclose(p, t_p, rtol=2e-2, atol=1e-300):
            problems.append(f"{name}: KS p-value {p!r} vs scipy {t_p!r}")
        if abs(psi - t_psi) > 1e-9 or abs(js - t_js) > 1e-9:
            problems.append(f"{name}: PSI/JS {psi!r}/{js!r} vs naive {t_psi!r}/{t_js!r}")
    return problems


def evidently_python(venv: Path) -> Path | None:
    """The python of a venv holding EVIDENTLY, made on first use and kept; None (and why) if it cannot be."""
    python = venv / "bin" / "python"
    check = [str(python), "-c", f"import evidently; assert evidently.__version__ == {EVIDENTLY_VERSION!r}"]
    if python.exists() and subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return python
    print(f"creating {venv} with {' '.join(EVIDENTLY)} (once; kept for later runs)", flush=True)
    uv = shutil.which("uv")
    install = [uv, "pip", "install", "--python", str(python)] if uv else [str(python), "-m", "pip", "install"]
    for command in ([sys.executable, "-m", "venv", str(venv)], [*install, *EVIDENTLY], check):
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
            print(f"Evidently left out: {' '.join(command[:4])} failed: {' '.join(tail)}", flush=True)
            return None
    return python


def run_evidently(python: Path, reference: dict[str, np.ndarray], current: dict[str, np.ndarray]) -> dict:
    """Run bench/_evidently_runner.py in Evidently's venv on these tables; its JSON report."""
    names = sorted(reference)
    with tempfile.TemporaryDirectory(prefix="bench-drift-") as folder:
        tables = Path(folder) / "tables.npz"
        np.savez(
            tables,
            names=np.array(names),
            reference=np.column_stack([reference[name] for name in names]),
            current=np.column_stack([current[name] for name in names]),
        )
        command = [str(python), str(RUNNER), str(tables)]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def scipy_ks(reference: dict[str, np.ndarray], current: dict[str, np.ndarray]) -> dict:
    return {name: stats.ks_2samp(ref, current[name]) for name, ref in reference.items()}


def postgres_window(current: dict[str, np.ndarray], references: dict) -> tuple[float, float, dict]:
    """Write the window as prediction logs, read it back with log_window, summarise and compare."""
    import json
    import os
    import uuid
    from datetime import timedelta

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hafnium_portal.settings")
    import django

    django.setup()
    from django.db import connection
    from django.utils import timezone

    from apps.registry.models import ModelVersion, RegisteredModel
    from apps.serving import partitions
    from apps.serving.models import PredictionLog
    from apps.serving.selectors import log_window

    if connection.vendor != "postgresql":
        sys.exit("--postgres: set DATABASE_URL to a migrated PostgreSQL database")
    names = sorted(current)
    signature = {"inputs": json.dumps([{"type": "double", "name": name, "required": True} for name in names])}
    model = RegisteredModel.objects.create(name=f"bench-drift-{uuid.uuid4().hex[:8]}")
    ModelVersion.objects.create(model=model, version=1, signature=signature, registered_at=timezone.now())
    rows = len(current[names[0]])
    end = timezone.now()
    matrix = np.column_stack([current[name] for name in names])
    partitions.partitions_ensure({(end - timedelta(seconds=1)).date(), end.date()})
    try:
        with (
            connection.cursor() as cursor,
            cursor.copy(
                "COPY serving_predictionlog (request_id, transaction_id, entity_id, model_id, version, "
                "numeric_features, categorical_features, score, decision, fallback, latency_ms, status, "
                "created_at, environment) FROM STDIN"
            ) as copy,
        ):
            for i in range(rows):
                copy.write_row(
                    (f"bench-{model.pk}-{i}", f"t-{i}", "", model.pk, 1, matrix[i].tolist(), [], 0.1,
                     "approve", False, 1.0, "ok", end - timedelta(microseconds=rows - i), "production")
                )  # fmt: skip
        started = time.perf_counter()
        window = log_window(model, since=end - timedelta(days=1), until=end + timedelta(seconds=1), version=1)
        read = time.perf_counter() - started
        started = time.perf_counter()
        results = drift.compare_summaries(references, drift.summarise_table(references, window.numeric))
        statistics = time.perf_counter() - started
        assert window.n == rows
    finally:
        PredictionLog.objects.filter(model=model).delete()
        model.delete()
    return read, statistics, results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="current window rows")
    parser.add_argument("--reference-rows", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=8)
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}, one repeat")
    parser.add_argument(
        "--postgres", action="store_true", help="also read each window from PostgreSQL (DATABASE_URL)"
    )
    parser.add_argument(
        "--evidently", action="store_true", help="also time scipy's ks_2samp alone and Evidently's preset"
    )
    parser.add_argument("--evidently-venv", type=Path, default=ROOT / "var" / "bench-evidently-venv")
    options = parser.parse_args()
    sizes = options.sizes or (QUICK_SIZES if options.quick else DEFAULT_SIZES)
    repeats = 1 if options.quick else options.repeats

    print(
        f"bench_drift: {FEATURES} features, reference {options.reference_rows:,} rows, {BINS} bins "
        f"({machine()})"
    )
    rng = np.random.default_rng(20261202)
    reference = generate(options.reference_rows, rng, drifted=False)
    seconds_build, references = best_of(
        repeats, lambda: {n: drift.build_reference(v, bins=BINS) for n, v in reference.items()}
    )
    print(f"building the references once (sort, deciles): {seconds_build:.3f} s\n")
    print(
        "| window rows | naive s | ours cold s | ours warm s | chunked s | naive / warm | naive / cold "
        "| naive MiB | warm MiB | agree |"
        + (" PostgreSQL read s | stats s | read + stats s |" if options.postgres else "")
    )
    print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | :---: |"
          + (" ---: | ---: | ---: |" if options.postgres else ""))  # fmt: skip
    failed = False
    python = evidently_python(options.evidently_venv) if options.evidently else None
    beside = []  # with --evidently: the second table's rows, printed at the end
    for size in sizes:
        current = generate(size, rng, drifted=True)
        seconds_naive, theirs = best_of(repeats, lambda: naive(reference, current))  # noqa: B023
        seconds_cold, cold = best_of(repeats, lambda: drift.compare_table(reference, current, bins=BINS))  # noqa: B023
        seconds_warm, ours = best_of(repeats, lambda: warm(references, current))  # noqa: B023
        seconds_chunked, merged = best_of(repeats, lambda: chunked(references, current, options.chunks))  # noqa: B023
        memory_naive = peak_mib(lambda: naive(reference, current))  # noqa: B023
        memory_warm = peak_mib(lambda: warm(references, current))  # noqa: B023
        problems = disagreements(as_tuples(ours), theirs) + disagreements(as_tuples(cold), theirs)
        if merged != ours:
            problems.append("the chunked result differs from the whole window's")
        database = ""
        if options.postgres:
            read, statistics, from_database = postgres_window(current, references)
            if from_database != ours and as_tuples(from_database) != as_tuples(ours):
                problems.append("the window read from PostgreSQL gives another result")
            database = f" {read:.3f} | {statistics:.3f} | {read + statistics:.3f} |"
        flagged = sorted(name for name, result in ours.items() if result.verdict == drift.DRIFT)
        if flagged != sorted(DRIFTED):
            problems.append(f"flagged {flagged}, drift was injected in {sorted(DRIFTED)}")
        print(
            f"| {size:,} | {seconds_naive:.3f} | {seconds_cold:.3f} | {seconds_warm:.3f} "
            f"| {seconds_chunked:.3f} "
            f"| {seconds_naive / seconds_warm:.1f} | {seconds_naive / seconds_cold:.1f} "
            f"| {memory_naive:.0f} | {memory_warm:.0f} | {'yes' if not problems else 'NO'} |{database}",
            flush=True,
        )
        for problem in problems:
            print(f"  disagreement: {problem}", file=sys.stderr)
        failed = failed or bool(problems)
        if options.evidently:
            seconds_ks, _ = best_of(repeats, lambda: scipy_ks(reference, current))  # noqa: B023
            row = f"| {size:,} | {seconds_warm:.3f} | {seconds_cold:.3f} | {memory_warm:.0f} "
            row += f"| {seconds_ks:.3f} |"
            if python:
                them = run_evidently(python, reference, current)
                flags = " / ".join(",".join(columns) or "-" for columns in them["flagged"].values())
                row += (
                    f" {them['seconds']:.1f} | {them['peak_rss_mib']:.0f} | {them['rss_growth_mib']:.0f} "
                    f"| {them['seconds'] / seconds_warm:.0f} | {them['seconds'] / seconds_cold:.0f} "
                    f"| {flags} |"
                )
            beside.append(row)
    print(f"\nflagged as drift in every window: {', '.join(f'{k} ({v})' for k, v in DRIFTED.items())}")
    if beside:
        header = "| window rows | ours warm s | ours cold s | ours warm MiB | scipy ks_2samp s |"
        rule = "| ---: | ---: | ---: | ---: | ---: |"
        if python:
            header += (
                " Evidently s | Evidently peak RSS MiB | RSS growth MiB | Evidently / warm | Evidently / cold"
                " | Evidently flags (KS / PSI / JS) |"
            )
            rule += " ---: | ---: | ---: | ---: | ---: | --- |"
        which = f"Evidently {EVIDENTLY_VERSION}" if python else "Evidently (left out, see above)"
        print(f"\nbeside scipy alone and {which}, one run each:\n\n{header}\n{rule}")
        print("\n".join(beside))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
