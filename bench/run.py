"""`make bench`: run every bench/bench_*.py and write one table to bench/RESULTS.md.

Each benchmark module exposes `run() -> list[dict]` with keys name, value, unit, goal
(and optionally `met`, a bool). A benchmark that fails is reported as such, not hidden.
"""

import datetime as dt
import importlib
import os
import platform
import sys
import time
import traceback
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        mem = ""
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores ({cpu}){mem}, Python {platform.python_version()}; "
        f"load average at the start {load} (1/5/15 min; other work shares the machine)"
    )


def main(selected: list[str]) -> int:
    sys.path.insert(0, str(BENCH_DIR.parent))
    rows, failures = [], 0
    machine = _machine()  # before the benchmarks load it
    modules = sorted(p.stem for p in BENCH_DIR.glob("bench_*.py"))
    if selected:
        modules = [m for m in modules if any(s in m for s in selected)]
    for name in modules:
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        try:
            results = importlib.import_module(f"bench.{name}").run()
        except Exception:
            failures += 1
            traceback.print_exc()
            rows.append({"bench": name, "name": "FAILED", "value": "-", "unit": "", "goal": ""})
            continue
        for row in results:
            rows.append({"bench": name, **row})
            print(f"   {row['name']}: {row['value']} {row.get('unit', '')}", flush=True)
        print(f"   ({time.perf_counter() - started:.1f} s)")
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {machine}  ",
        f"Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        "",
        "| benchmark | measure | value | unit | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        met = r.get("met")
        met_text = "" if met is None else ("yes" if met else "**no**")
        lines.append(
            f"| {r['bench']} | {r['name']} | {r['value']} | {r.get('unit', '')} "
            f"| {r.get('goal', '')} | {met_text} |"
        )
    (BENCH_DIR / "RESULTS.md").write_text("\n".join(lines) + "\n")
    print(f"Wrote {BENCH_DIR / 'RESULTS.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
