"""`make bench`: every benchmark scenario in one run, then the targets of issue 9 checked from what they measured.

    python -m bench.run [--only read_paths,curve,...] [--reload]

In order, each in a process of its own (so one's memory and event loop never weigh on the next):

1. data: `fieldbook bench-data --scale large` into the PostgreSQL database `fieldbook_bench` (kept when it already
   holds this generator's data for this scale and seed; `--reload` makes it again);
2. read_paths: card, deal list, board and feed over HTTP at 1, 10 and 50 connections, next to a raw-asyncpg endpoint
   serving the same statements (`bench/read_paths.py`);
3. curve: p95 of card, list and feed at 10k, 100k, 1M (and the main organisation's 2M) activities (`bench/curve.py`);
4. sync: the morning pull storm and the reconnect push storm, next to their raw-asyncpg baselines (`bench/sync.py`);
5. insights: leaderboard and funnel next to their SQL (`bench/insights.py`);
6. mixed: 50 simulated field managers for 60 s on PostgreSQL (2 workers) and on SQLite (small scale)
   (`bench/mixed.py`).

Each writes its own section of bench/RESULTS.md (tables, and PNG charts under bench/charts/) and its key numbers as
JSON; this module then writes the "Targets" section at the top of the file from those numbers alone."""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import common

RESULTS = Path(__file__).with_name("RESULTS.md")
OUT = Path(__file__).with_name("out")
MARKERS = ("<!-- targets:start -->", "<!-- targets:end -->")
DATABASE = common.DEFAULT_DATABASE


@dataclass(frozen=True)
class Step:
    name: str
    argv: list[str]
    json: bool = True  # whether it writes `--json OUT/<name>.json`


def steps(args: argparse.Namespace) -> list[Step]:
    python = [sys.executable, "-m"]
    url = common.sqlalchemy_url(DATABASE)
    data = [str(Path(sys.executable).with_name("fieldbook")), "bench-data", "--scale", "large", "--database-url", url]
    data += ["--replace"] + ([] if args.reload else ["--if-changed"])
    return [
        Step("data", data, json=False),
        Step("read_paths", [*python, "bench.read_paths"]),
        Step("curve", [*python, "bench.curve"]),
        Step("sync", [*python, "bench.sync"]),
        Step("insights", [*python, "bench.insights"], json=False),
        Step("mixed", [*python, "bench.mixed", "--db", "both"]),
    ]


def run_step(step: Step) -> float:
    argv = [*step.argv, *(["--json", str(OUT / f"{step.name}.json")] if step.json else [])]
    print(f"\n=== {step.name}: {' '.join(argv[1:])}", flush=True)
    started = time.perf_counter()
    subprocess.run(argv, check=True, env=os.environ)
    return time.perf_counter() - started


# The targets


@dataclass(frozen=True)
class Target:
    what: str
    goal: str
    measured: str
    met: bool | None  # None: not measured in this run


def _load(name: str) -> dict[str, Any] | None:
    path = OUT / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _ratio(value: float) -> str:
    return f"{value:.2f}x"


def read_path_targets(found: dict[str, Any]) -> list[Target]:
    """Throughput through the app ≥ 0.8x the raw endpoint's, for card, list and feed at every concurrency."""
    targets = []
    for path in ("card", "deals", "feed"):
        cells = found["paths"].get(path, {})
        ratios = {c: cell["app"]["rps"] / cell["raw"]["rps"] for c, cell in cells.items() if cell["raw"]["rps"]}
        if not ratios:
            targets.append(Target(f"{path} throughput, app / raw", "≥ 0.80x", "not measured", None))
            continue
        shown = ", ".join(f"{_ratio(r)} at {c}" for c, r in ratios.items())
        targets.append(Target(f"{path} throughput, app / raw", "≥ 0.80x", shown, min(ratios.values()) >= 0.8))
    return targets


def curve_targets(found: dict[str, Any]) -> list[Target]:
    """p95 at 1M activities ≤ 1.5x p95 at 10k, for card, list and feed."""
    targets = []
    for path, points in found["paths"].items():
        small, big = points.get("10000"), points.get("1000000")
        if not small or not big:
            continue
        ratio = big["p95"] / small["p95"]
        measured = f"{big['p95']:.1f} / {small['p95']:.1f} ms = {_ratio(ratio)}"
        targets.append(Target(f"{path} p95 at 1M / at 10k activities", "≤ 1.50x", measured, ratio <= 1.5))
    return targets


def sync_targets(found: dict[str, Any]) -> list[Target]:
    """Pull pages through the app ≥ 0.8x the PostgreSQL-built JSON baseline (records per second, same run)."""
    ratio = found["pull"]["app"]["records_per_s"] / found["pull"]["sql"]["records_per_s"]
    page = found["pull"]["sql"]["page_p50_ms"] / found["pull"]["app"]["page_p50_ms"]
    measured = f"records/s {_ratio(ratio)}, page p50 {_ratio(page)}"
    return [Target("sync pull, app / PostgreSQL-built JSON", "≥ 0.80x", measured, min(ratio, page) >= 0.8)]


def mixed_targets(found: dict[str, Any]) -> list[Target]:
    """p95 ≤ 100 ms with no error, on each database."""
    targets = []
    for database, result in found["databases"].items():
        measured = f"p95 {result['p95']:.0f} ms, {result['errors']} errors of {result['requests']:,}"
        met = result["p95"] <= 100 and result["errors"] == 0
        targets.append(Target(f"mixed load, {database}", "p95 ≤ 100 ms, 0 errors", measured, met))
    return targets


CHECKS: dict[str, Callable[[dict[str, Any]], list[Target]]] = {
    "read_paths": read_path_targets,
    "curve": curve_targets,
    "sync": sync_targets,
    "mixed": mixed_targets,
}


def section(targets: list[Target], timings: dict[str, float], command: str) -> str:
    cores = os.cpu_count()
    verdict = {True: "**met**", False: "**not met**", None: "not run"}
    lines = [
        MARKERS[0],
        f"_Generated by `{command}` at {datetime.now(UTC).isoformat(timespec='seconds')} on {platform.node()} "
        f"({cores} cores, Python {platform.python_version()}); the text between the markers is rewritten on each "
        "run. Each ratio compares two sides measured in the same run._",
        "",
        "| target | goal | measured | |",
        "|---|---|---|---|",
        *(f"| {t.what} | {t.goal} | {t.measured} | {verdict[t.met]} |" for t in targets),
        "",
        "Wall time per step: "
        + ", ".join(f"{name} {seconds:.0f} s" for name, seconds in timings.items())
        + f"; {sum(timings.values()) / 60:.1f} min in all.",
        MARKERS[1],
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", help="comma-separated steps to run (default: all); the targets use what exists")
    parser.add_argument("--reload", action="store_true", help="make the large data set again even if it is current")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    chosen = set(args.only.split(",")) if args.only else None
    timings = {s.name: run_step(s) for s in steps(args) if chosen is None or s.name in chosen}
    targets = [t for name, check in CHECKS.items() if (found := _load(name)) for t in check(found)]
    command = "make bench" if chosen is None else f"python -m bench.run --only {args.only}"
    text = section(targets, timings, command)
    common.write_section(RESULTS, MARKERS, text, "## Targets (issue 9)")
    print(text)


if __name__ == "__main__":
    main()
