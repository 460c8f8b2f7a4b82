"""The scale curve: how the latency of the card, the deal list and the feed grows with the organisation's size, on
one served app, in one run.

    python -m bench.curve [--database fieldbook_bench] [--orgs "Bench Scale 10k,…"] [--seconds 4] [--json PATH]

**Points.** One organisation per point, all in the same database, served by the same app: by default (`--orgs auto`)
every organisation named "Bench Scale …" (10k, 100k and 1M activities, with proportional companies, contacts and
deals) and "Bench Main" (2M activities) as a fourth point; on a database without them, every organisation in it
stands in. Each point is placed at its organisation's number of activities (counted, not read from its name).

**Requests.** As that organisation's reps (up to `--users` active reps who own a company, taken in turn from each
team, looked up by SQL; signed in through the served app's `/api/v1/auth/login`): `card`
(`GET /api/v1/clients/{id}/card` of a company the rep owns, `--cards` per rep), `deals` (`GET /api/v1/deals`, first
page) and `feed` (`GET /api/v1/feed?scope=org`, first page).

**Server and load.** `bench.servers.app` (the app under uvicorn, one worker, production settings, rate limits nobody
reaches) and `bench.loader.closed_loop` at one connection: per point and path, every URL once unmeasured (its rows
come into PostgreSQL's cache, the viewer's caches into the app's), then `--warmup` seconds unmeasured and `--seconds`
measured (at least `--min-requests`, up to 30 s), the URLs of all the point's reps cycled in a shuffled order.
p50/p95/p99 per point and path; the target (issue 9): p95 at 1M activities at most 1.5 times p95 at 10k, per path.

The report goes between the curve's markers in bench/RESULTS.md (the text around them is kept), the chart to
bench/charts/curve_p95.png, and `--json` writes the numbers.
"""

import argparse
import asyncio
import json
import math
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from rich.console import Console

from bench import common, loader, read_paths, servers

console = Console(width=160)
START, END = "<!-- curve:start -->", "<!-- curve:end -->"
SECTION = "## Scale curve"
PATHS = ("card", "deals", "feed")
SCALE_PREFIX = "Bench Scale"
# Issue 9: p95 at 1M activities at most this many times p95 at 10k.
TARGET_ACTIVITIES, TARGET_RATIO = 1_000_000, 1.5
CHART = "curve_p95.png"


@dataclass
class Point:
    org: str
    org_id: uuid.UUID
    data: dict[str, int]
    users: list[read_paths.User] = field(default_factory=list)
    runs: dict[str, loader.Run] = field(default_factory=dict)
    unmeasured_errors: dict[str, int] = field(default_factory=dict)  # of the pass over every URL

    @property
    def activities(self) -> int:
        return self.data["activities"]

    def numbers(self, path: str) -> dict[str, Any]:
        run = self.runs[path]
        s = loader.summary(run.latencies_ms())
        return {
            "org": self.org,
            "activities": self.activities,
            "path": path,
            "n": len(run.samples),
            "p50": round(s["p50"], 2),
            "p95": round(s["p95"], 2),
            "p99": round(s["p99"], 2),
            "rps": round(run.requests_per_second, 1),
            "errors": len(run.errors),
            "unmeasured_errors": self.unmeasured_errors.get(path, 0),
        }


def requests_of(users: list[read_paths.User], path: str) -> list[list[loader.Request]]:
    if path == "feed":  # the org-wide feed only: in a small organisation a team's is the same
        return [[loader.Request("GET", read_paths.FEED_URLS[0], u.headers, label=path)] for u in users]
    return read_paths.requests_of(users, path)


async def points(
    conn: asyncpg.Connection, names: list[str] | None, args: argparse.Namespace
) -> tuple[list[Point], str]:
    """The points, smallest first, and how they were chosen."""
    how = "as asked"
    if names is None:
        rows = await conn.fetch("SELECT name FROM organization WHERE name LIKE $1 ORDER BY name", f"{SCALE_PREFIX}%")
        names = [r["name"] for r in rows]
        how = f'every "{SCALE_PREFIX} …" organisation and "{common.MAIN_ORG}"'
        if names:
            names.append(common.MAIN_ORG)
        else:
            rows = await conn.fetch("SELECT name FROM organization ORDER BY name")
            names = [r["name"] for r in rows]
            how = f"every organisation, as stand-ins (no {SCALE_PREFIX} organisations in this database)"
    out = []
    for name in names:
        org = await read_paths.org_id(conn, name)
        point = Point(name, org, await read_paths.org_data(conn, org))
        point.users = await read_paths.reps(conn, org, args.users, args.cards, args.seed)
        if not point.users:
            raise SystemExit(f'"{name}" has no rep who owns a company.')
        out.append(point)
    return sorted(out, key=lambda p: p.activities), how


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    phases = read_paths.Phases()
    env = read_paths.configure(args.database)
    conn = await asyncpg.connect(common.dsn(args.database), server_settings={"jit": "off"})
    load_before = os.getloadavg()
    found, how = await points(conn, args.orgs, args)
    phases.done(f"fixtures ({len(found)} points)")
    with servers.app(env["FIELDBOOK_DATABASE_URL"], workers=1, extra=read_paths.SERVED) as base:
        phases.done("app server start")
        await read_paths.sign_in(base, [u for p in found for u in p.users])
        phases.done(f"sign-in of {sum(len(p.users) for p in found)} reps")
        for point in found:
            for path in args.paths:
                per_user = requests_of(point.users, path)
                errors = await _once(base, [r for rs in per_user for r in rs])
                run = await loader.closed_loop(
                    base,
                    read_paths.dealer(per_user, 1, args.seed),
                    concurrency=1,
                    seconds=args.seconds,
                    warmup=args.warmup,
                    min_samples=args.min_requests,
                    max_seconds=max(args.seconds, 30.0),
                )
                point.runs[path], point.unmeasured_errors[path] = run, errors
                n = point.numbers(path)
                console.log(
                    f"{point.org:<18} {point.activities:>10,} activities {path:<6}: n={n['n']:<4} p50 "
                    f"{n['p50']:7.1f} ms, p95 {n['p95']:7.1f} ms, errors {n['errors']} (+{errors} before)"
                )
        phases.done("load")
    facts = await read_paths.machine_facts(conn)
    await conn.close()
    phases.done("facts")
    facts["load_before"], facts["load_after"] = load_before, os.getloadavg()
    facts["database"] = args.database
    return {"points": found, "how": how, "facts": facts, "phases": phases.seconds}


async def _once(base: str, requests: list[loader.Request]) -> int:
    """Each request once, one at a time; the number of non-2xx answers."""
    async with loader.session(1) as http:
        statuses = [(await loader.send(http, base, r, time.perf_counter())).status for r in requests]
    return sum(1 for s in statuses if not 200 <= s < 300)


# Reporting


def target(found: list[Point]) -> tuple[Point, Point] | None:
    """The 10k point (the smallest) and the one nearest 1M activities (on a log scale), if there are two."""
    if len(found) < 2:
        return None
    base = found[0]
    top = min(found[1:], key=lambda p: abs(math.log10(max(p.activities, 1)) - math.log10(TARGET_ACTIVITIES)))
    return base, top


def ratios(found: list[Point], paths: list[str]) -> list[dict[str, Any]]:
    pair = target(found)
    if pair is None:
        return []
    base, top = pair
    out = []
    for path in paths:
        low, high = base.numbers(path)["p95"], top.numbers(path)["p95"]
        ratio = high / low if low else math.nan
        out.append(
            {
                "path": path,
                "from": {"org": base.org, "activities": base.activities, "p95": low},
                "to": {"org": top.org, "activities": top.activities, "p95": high},
                "ratio": round(ratio, 3),
                "target": TARGET_RATIO,
                "met": ratio <= TARGET_RATIO,
            }
        )
    return out


def _ms(value: float) -> str:
    return read_paths._ms(value)


def table(found: list[Point], paths: list[str]) -> list[str]:
    head = ["organisation", "activities", "companies", "deals", "path", "n", "p50", "p95", "p99", "p95 / smallest's"]
    lines = ["| " + " | ".join(head) + " |", "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for point in found:
        for path in paths:
            n, first = point.numbers(path), found[0].numbers(path)
            row = [point.org, f"{point.activities:,}", f"{point.data['companies']:,}", f"{point.data['deals']:,}"]
            row += [path, str(n["n"]), _ms(n["p50"]), _ms(n["p95"]), _ms(n["p99"])]
            row.append(f"{n['p95'] / first['p95']:.2f}" if first["p95"] else "-")
            lines.append("| " + " | ".join(row) + " |")
    return lines


def data_table(found: list[Point]) -> list[str]:
    keys = list(found[0].data) if found else []
    lines = ["| organisation | " + " | ".join(keys) + " | reps signed in |", "|---|" + "---:|" * (len(keys) + 1)]
    for p in found:
        lines.append(f"| {p.org} | " + " | ".join(f"{p.data[k]:,}" for k in keys) + f" | {len(p.users)} |")
    return lines


def target_lines(found: list[Point], paths: list[str]) -> list[str]:
    rs = ratios(found, paths)
    if not rs:
        return ["One point only: no ratio."]
    lines = [
        f"| path | p95 at {rs[0]['from']['activities']:,} ({rs[0]['from']['org']}) | p95 at "
        f"{rs[0]['to']['activities']:,} ({rs[0]['to']['org']}) | ratio | target ≤ {TARGET_RATIO} |",
        "|---|---:|---:|---:|---|",
    ]
    for r in rs:
        lines.append(
            f"| {r['path']} | {_ms(r['from']['p95'])} ms | {_ms(r['to']['p95'])} ms | {r['ratio']:.2f} | "
            f"{'✓' if r['met'] else '✗'} |"
        )
    return lines


def nominal(activities: int) -> str:
    """The size a point stands for: its activities to one significant figure (1,000,037 and 1,012,704: 1000000)."""
    if activities <= 0:
        return "0"
    return str(round(activities, -math.floor(math.log10(activities))))


def _count(value: int) -> str:
    return f"{round(value / 1e6, 1):g}M" if value >= 1e6 else f"{round(value / 1e3):g}k"


def chart(found: list[Point], paths: list[str], directory: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    directory.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    xs = [p.activities for p in found]
    for path, color in zip(paths, ("#d9622b", "#4a7ab5", "#5a9e4b", "#8e5ea2"), strict=False):
        ax.plot(xs, [p.numbers(path)["p95"] for p in found], marker="o", color=color, label=f"{path} p95")
        ax.plot(xs, [p.numbers(path)["p50"] for p in found], ls=":", color=color, alpha=0.7, label=f"{path} p50")
    ax.set_xscale("log")
    ax.set_xticks(xs, [_count(x) for x in xs])
    ax.minorticks_off()
    ax.set_xlabel("activities in the organisation (log scale)")
    ax.set_ylabel("latency (ms), one connection")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, ncol=len(paths))
    ax.set_title("Scale curve: p95 (solid) and p50 (dotted) per path", fontsize=10)
    fig.tight_layout()
    target = directory / CHART
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target


INTRO = """How the latency of the card, the deal list and the feed grows from an organisation with 10k activities to
one with 2M, on the same served app and database (`bench/curve.py`, whose docstring says what it sends).

```sh
.venv/bin/python -m bench.curve                 # ~1.5 min
.venv/bin/python -m bench.curve --seconds 2 --no-write
```"""


def markdown(result: dict[str, Any], args: argparse.Namespace, command: str, wall: float, png: Path) -> str:
    found, facts = result["points"], result["facts"]
    phases = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in result["phases"].items())
    return "\n".join(
        [
            START,
            f"_Generated by `{command}` at {facts['at']} in {wall:.0f} s; the text between the markers is rewritten "
            "on each run._",
            "",
            "### Machine and data",
            "",
            *read_paths.machine_lines(facts),
            f"- database `{facts['database']}`, {facts['database_bytes'] / 1024**3:.2f} GiB; points: {result['how']}",
            f"- per point and path: every URL once, then {args.warmup:g} s of warm-up and {args.seconds:g} s measured "
            f"(at least {args.min_requests} requests) at one connection",
            f"- wall time: {phases}",
            "",
            *data_table(found),
            "",
            "### Target: p95 at 1M activities ≤ 1.5 times p95 at 10k",
            "",
            *target_lines(found, args.paths),
            "",
            "### Latency (ms)",
            "",
            *table(found, args.paths),
            "",
            f"![p95 against activities]({os.path.relpath(png, args.results.parent)})",
            END,
        ]
    )


def to_json(result: dict[str, Any], args: argparse.Namespace, command: str, wall: float) -> dict[str, Any]:
    found = result["points"]
    return {
        "benchmark": "curve",
        "command": command,
        "at": result["facts"]["at"],
        "wall_s": round(wall, 1),
        "how": result["how"],
        "points": [{"org": p.org, "data": p.data} for p in found],
        # Per path, per point named by its size to one significant figure (9,994 activities: "10000"): n, p50/p95/p99
        # (ms), rps, errors, and the organisation and its exact count of activities.
        "paths": {path: {nominal(p.activities): p.numbers(path) for p in found} for path in args.paths},
        "ratios": ratios(found, args.paths),
        "phases_s": {k: round(v, 1) for k, v in result["phases"].items()},
        "load_before": result["facts"]["load_before"],
        "load_after": result["facts"]["load_after"],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.curve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", default=common.DEFAULT_DATABASE)
    parser.add_argument(
        "--orgs",
        type=lambda v: None if v == "auto" else [name.strip() for name in v.split(",") if name.strip()],
        default=None,
        help='comma-separated organisation names, or "auto"',
    )
    parser.add_argument("--paths", type=read_paths._csv(str), default=list(PATHS), help=",".join(PATHS))
    parser.add_argument("--users", type=int, default=8, help="reps per point")
    parser.add_argument("--cards", type=int, default=5, help="cards per rep")
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per point and path")
    parser.add_argument("--warmup", type=float, default=0.5, help="unmeasured seconds first")
    parser.add_argument("--min-requests", type=int, default=50, help="measure on until so many (at most 30 s)")
    common.output_options(parser, read_paths.RESULTS, read_paths.CHARTS)
    args = parser.parse_args(argv)
    if unknown := set(args.paths) - set(PATHS):
        parser.error(f"--paths: unknown {', '.join(sorted(unknown))}")
    started = time.perf_counter()
    result = asyncio.run(measure(args))
    wall = time.perf_counter() - started
    command = ("python -m bench.curve " + " ".join(argv if argv is not None else sys.argv[1:])).strip()
    for line in target_lines(result["points"], args.paths) + table(result["points"], args.paths):
        console.print(line, markup=False, highlight=False)
    console.print(f"Done in {wall:.0f} s")
    if args.json:
        args.json.write_text(json.dumps(to_json(result, args, command, wall), indent=2) + "\n")
    if not args.no_write:
        png = chart(result["points"], args.paths, args.charts)
        section = markdown(result, args, command, wall, png)
        common.write_section(args.results, (START, END), section, f"{SECTION}\n\n{INTRO}")
        console.print(f"Written to {args.results}")


if __name__ == "__main__":
    main()
