"""Benchmark: what a Windmill job pays before its first line runs. Each job is a new Python
process that imports its script, so this times whole processes, side by side in one run:
`import httpx, pydantic` (the baseline) and the same with one pydantic model built (the floor
of any job that validates with pydantic), against each webhook entry script's import, and
against the import plus what every event job does before its first call (parse one event,
validate the workspace's settings).

    .venv/bin/python scripts/bench_startup.py [--runs 21]
"""

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE = "import httpx, pydantic"
# What any job that validates with pydantic pays: `import pydantic` alone is lazy, and the
# first model built loads pydantic's schema machinery.
ONE_MODEL = "import httpx\nfrom pydantic import BaseModel\nclass A(BaseModel):\n    x: int\n"
ENTRIES = ("f.marketing.handle_user_event", "f.marketing.stripe_events")
# Import, then parse an event and validate the settings as a job does (no call is made).
FIRST_EVENT = """
import json
import {module}
from f.marketing.lib.contract import parse_event
from f.marketing.lib.settings import load_settings
ROUTING = json.load(open("scripts/examples/routing.resource.json"))["value"]
event = parse_event({{"event": "user.registered", "email": "a@b.co", "name": "A B",
    "plan": "pro", "source": "ads", "marketingConsent": True,
    "timestamp": "2026-11-30T09:00:00Z"}})
values = {{"f/marketing/twenty": {{"base_url": "https://t.example", "api_key": "k"}},
    "f/marketing/mautic": {{"base_url": "https://m.example", "username": "u", "password": "p"}},
    "f/marketing/slack": {{"webhook_url": "https://hooks.slack.com/services/T/B/x"}},
    "f/marketing/routing": ROUTING}}
load_settings(reader=values.get)
"""


def process_seconds(code: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
    return time.perf_counter() - started


def medians(cases: dict[str, str], runs: int) -> dict[str, float]:
    """Median wall time of each case, the cases interleaved so that they share the noise."""
    times: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, code in cases.items():
            times[name].append(process_seconds(code))
    return {name: statistics.median(values) for name, values in times.items()}


def startup_seconds(module: str, runs: int = 7) -> float:
    """A job's start-up: a new process importing the script (for bench_delivery)."""
    return medians({module: f"import {module}"}, runs)[module]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    cases = {
        "import httpx, pydantic (baseline)": BASE,
        "import httpx, one pydantic model": ONE_MODEL,
    }
    for module in ENTRIES:
        name = module.rsplit(".", 1)[1]
        cases[f"import {name}"] = f"import {module}"
        cases[f"import {name}, parse an event, validate settings"] = FIRST_EVENT.format(
            module=module
        )
    results = medians(cases, args.runs)
    base = results["import httpx, pydantic (baseline)"]
    print(f"Whole processes, median of {args.runs}, interleaved ({sys.executable})")
    width = max(len(name) for name in results) + 2
    for name, seconds in results.items():
        print(f"{name:<{width}}{seconds * 1000:7.1f} ms  {seconds / base:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
