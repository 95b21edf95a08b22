"""The shared data set (bench/dataset.py): generated once with COPY, reused by the other
benchmarks. Reports its size and how long the generation took (when it was generated)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run() -> list[dict]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run(
        [sys.executable, "-m", "bench.dataset", "--json"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    details = json.loads(done.stdout.strip().splitlines()[-1])
    counts = ", ".join(f"{v:,} {k}" for k, v in details["counts"].items())
    state = "cached from an earlier run" if details["cached"] else "generated now"
    return [
        {
            "name": f"data set generation, scale {details['scale']:g} ({state}): {counts}; "
            f"COPY {details['load_seconds']} s, then indexes and ANALYZE",
            "value": details["seconds"],
            "unit": "s",
            "goal": "once, then cached",
        }
    ]
