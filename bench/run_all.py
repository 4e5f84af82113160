"""Run every bench/bench_*.py, each in a process of its own, in a fixed order; print what they print.

`python bench/run_all.py` runs the full sizes (several minutes); `--quick` passes `--quick` to each
bench for smaller sizes. Exits with 1 if any bench failed (a bench fails when its two implementations
disagree, never because of a timing).
"""

import argparse
import subprocess
import sys
import time
from pathlib import Path

from _setup import machine

BENCH = Path(__file__).resolve().parent
# A bench not listed here runs after these, in name order.
ORDER = ["bench_synthetic.py", "bench_training.py", "bench_sync.py"]


def benches() -> list[Path]:
    found = {path.name: path for path in BENCH.glob("bench_*.py")}
    listed = [found.pop(name) for name in ORDER if name in found]
    return listed + [found[name] for name in sorted(found)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a run of a few minutes")
    options = parser.parse_args()

    print(f"Hafnium Portal benchmarks ({machine()})", flush=True)
    failed = []
    for path in benches():
        command = [sys.executable, str(path), *(["--quick"] if options.quick else [])]
        shown = " ".join(["python", path.relative_to(BENCH.parent).as_posix(), *command[2:]])
        print(f"\n$ {shown}", flush=True)
        started = time.perf_counter()
        returncode = subprocess.run(command, cwd=BENCH.parent, check=False).returncode
        print(f"({path.name}: {time.perf_counter() - started:.0f} s, exit {returncode})", flush=True)
        if returncode:
            failed.append(path.name)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
