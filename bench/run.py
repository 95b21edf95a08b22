"""`make bench`: run every bench/bench_*.py and write one table to bench/RESULTS.md.

Each benchmark module exposes `run() -> list[dict]` with keys name, value, unit, goal
(and optionally `met`, a bool). A benchmark that fails is reported as such, not hidden.

`python -m bench.run proxy ingest` runs only the named benchmarks; the rows of the others
are kept from the previous RESULTS.md, each with the time it was measured.
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


HEADER = "| benchmark | measure | value | unit | goal | met | measured |"


def _previous_rows(path: Path) -> dict[str, list[str]]:
    """Table lines of the last RESULTS.md by benchmark, each ending with its measured time."""
    if not path.exists():
        return {}
    text = path.read_text()
    file_date = next(
        (
            line.removeprefix("Date: ").strip()
            for line in text.splitlines()
            if line.startswith("Date: ")
        ),
        "",
    )
    kept: dict[str, list[str]] = {}
    for line in text.splitlines():
        if not line.startswith("| ") or line.startswith("| benchmark |"):
            continue
        if line.count(" | ") == 5:  # written before the measured column existed
            line = f"{line} {file_date} |"
        kept.setdefault(line.split(" | ", 1)[0].removeprefix("| "), []).append(line)
    return kept


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
    results_path = BENCH_DIR / "RESULTS.md"
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    table = {name: [] for name in modules}
    for r in rows:
        met = r.get("met")
        met_text = "" if met is None else ("yes" if met else "**no**")
        table[r["bench"]].append(
            f"| {r['bench']} | {r['name']} | {r['value']} | {r.get('unit', '')} "
            f"| {r.get('goal', '')} | {met_text} | {now} |"
        )
    if selected:  # keep what the benchmarks not run this time measured last
        for name, lines in _previous_rows(results_path).items():
            table.setdefault(name, lines)
    lines = [
        "# Benchmark results",
        "",
        f"Machine: {machine}  ",
        f"Date: {now}" + (f" (this run: {', '.join(modules)})" if selected else ""),
        "",
        HEADER,
        "|---|---|---|---|---|---|---|",
    ]
    for name in sorted(table):
        lines.extend(table[name])
    results_path.write_text("\n".join(lines) + "\n")
    print(f"Wrote {BENCH_DIR / 'RESULTS.md'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
