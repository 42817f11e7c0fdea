"""`python -m bench.fuzz` (`make fuzz`): the long fuzz and fault campaign of issue 10.

It runs the fuzz suite of `make test` (tests/fuzz) with many more requests per RPC and more memory
rounds, then the Forget kill -9 campaign (tests/server/test_forget_kill.py) with at least 20 kill
points, and prints the figures as the Markdown table docs/reliability.md keeps: calls per RPC, the
statuses they got, rules broken, server memory before and after, and where it ran. The figures are
also written to var/fuzz/ (report.md, report.json, and each step's output).

The knobs are pytest's environment (FUZZ_EXAMPLES, FUZZ_MEMORY_ROUNDS, FUZZ_MEMORY_EXAMPLES,
FUZZ_SEED, FUZZ_REPORT; FORGET_KILL_RUNS, FORGET_KILL_SEED), never SEENEXT_ variables: the server
process inherits this environment and refuses SEENEXT_ names it does not know.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FORGET_KILL = ROOT / "tests/server/test_forget_kill.py"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--examples", type=int, default=1000, help="generated requests per RPC, and raw bodies"
    )
    parser.add_argument(
        "--memory-rounds", type=int, default=10, help="fuzz rounds between the memory readings"
    )
    parser.add_argument("--memory-examples", type=int, default=25, help="requests per RPC in a memory round")
    parser.add_argument(
        "--forget-kill-runs", type=int, default=20, help="kill -9 points of the Forget campaign"
    )
    parser.add_argument("--seed", type=int, default=20251, help="base seed of the fuzz suite")
    parser.add_argument("--out", type=Path, default=ROOT / "var/fuzz", help="folder for the report")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    where = machine()  # before the run: the commit the figures belong to
    report_json = args.out / "report.json"

    fuzz_env = {
        "FUZZ_EXAMPLES": str(args.examples),
        "FUZZ_MEMORY_ROUNDS": str(args.memory_rounds),
        "FUZZ_MEMORY_EXAMPLES": str(args.memory_examples),
        "FUZZ_SEED": str(args.seed),
        "FUZZ_REPORT": str(report_json),
    }
    steps = [("fuzz suite", ["tests/fuzz"], fuzz_env)]
    if FORGET_KILL.exists():
        kill_env = {"FORGET_KILL_RUNS": str(args.forget_kill_runs)}
        steps.append(("Forget under kill -9", [str(FORGET_KILL.relative_to(ROOT)), "-s"], kill_env))
    else:
        print(f"{FORGET_KILL.relative_to(ROOT)} is not there yet: the Forget kill campaign is skipped")

    results = {}
    for name, paths, env in steps:
        started = time.monotonic()
        log = args.out / f"{name.split()[0].lower()}.log"
        print(
            f"== {name}: {' '.join(f'{k}={v}' for k, v in env.items())} pytest {' '.join(paths)}", flush=True
        )
        with open(log, "w") as out:
            code = subprocess.call(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--timeout=0", *paths],
                cwd=ROOT,
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        results[name] = (code, time.monotonic() - started, log)
        tail = log.read_text(errors="replace").strip().splitlines()[-1:]
        print(
            f"   exit {code} in {time.monotonic() - started:.0f} s: {' '.join(tail)} (log: {log})", flush=True
        )

    tally = json.loads(report_json.read_text()) if report_json.exists() else {}
    kill_log = results.get("Forget under kill -9")
    text = render(where, tally, results, kill_log[2].read_text(errors="replace") if kill_log else "")
    (args.out / "report.md").write_text(text)
    print(text)
    return max((code for code, _, _ in results.values()), default=0)


def machine() -> str:
    """Date, cores, memory and the commit the figures belong to."""
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    return (
        f"{datetime.date.today().isoformat()}, {os.cpu_count()} cores, {mem_kb / 1024**2:.0f} GB RAM, "
        f"commit {commit or '?'}{' with uncommitted changes' if dirty.strip() else ''}"
    )


def render(where: str, tally: dict[str, Any], results: dict[str, Any], kill_output: str) -> str:
    lines = [f"Fuzz campaign: {where}.", ""]
    for name, (code, seconds, _) in results.items():
        lines.append(
            f"- {name}: {'passed' if code == 0 else f'FAILED (exit {code})'} in {seconds / 60:.1f} min"
        )
    if tally:
        m = tally.get("memory", {})
        n = m["rounds"] + m.get("warmup_rounds", 1) if m else 0
        rounds = f", plus {n} memory rounds of {tally['memory_examples']} each" if m else ""
        lines += [
            "",
            f"Calls per RPC: {tally['examples']:,} generated requests and {tally['examples']:,} raw bodies"
            f"{rounds} (seed {tally['seed']}; a request type with few distinct values, such as the empty "
            "TrainRequest, is sent once per distinct value):",
            "",
        ]
        lines += table(tally)
        lines += ["", *memory(tally.get("memory", {})), *broken(tally.get("violations", []))]
    kills = forget_kill_summary(kill_output)
    if kills:
        lines += ["", "Forget under kill -9:", "", *[f"    {line}" for line in kills]]
    return "\n".join(lines) + "\n"


def forget_kill_summary(output: str) -> list[str]:
    """The lines tests/server/test_forget_kill.py prints under -s: the kills, then where they landed."""
    lines = output.splitlines()
    start = next((i for i, line in enumerate(lines) if "kills (seed" in line), None)
    if start is None:
        return []
    summary = [lines[start].strip()]
    for line in lines[start + 1 :]:
        if not line.strip()[:1].isdigit():
            break
        summary.append(line.strip())
    return summary


def table(tally: dict[str, Any]) -> list[str]:
    """One row per RPC: calls through the stub and raw bodies, with the statuses each got."""
    rows = [
        "| RPC | requests | their statuses | raw bodies | their statuses |",
        "| --- | ---: | --- | ---: | --- |",
    ]
    rpcs = sorted({key.split(" ", 1)[1] for key in tally["calls"]})
    totals: Counter[str] = Counter()
    statuses_seen: dict[str, Counter[str]] = {"message": Counter(), "raw": Counter()}
    for rpc in rpcs:
        cells = []
        for kind in ("message", "raw"):
            statuses = Counter(tally["calls"].get(f"{kind} {rpc}", {}))
            totals[kind] += sum(statuses.values())
            statuses_seen[kind].update(statuses)
            count = f"{sum(statuses.values()):,}"
            if kind == "raw" and "undecodable" in tally:
                count += f" ({tally['undecodable'].get(rpc, 0):,} undecodable)"
            cells += [count, ", ".join(f"{s} {n:,}" for s, n in statuses.most_common())]
        rows.append(f"| {rpc} | {' | '.join(cells)} |")
    undecodable = sum(tally.get("undecodable", {}).values())
    seen = {k: ", ".join(f"{s} {n:,}" for s, n in c.most_common()) for k, c in statuses_seen.items()}
    rows.append(
        f"| **all {len(rpcs)}** | **{totals['message']:,}** | {seen['message']} | "
        f"**{totals['raw']:,}** ({undecodable:,} undecodable) | {seen['raw']} |"
    )
    return rows


def memory(m: dict[str, Any]) -> list[str]:
    if not m:
        return ["Memory: not measured (the memory test did not run)."]
    warmup = [m.get("rss_start_kb", 0), *m.get("rss_warmup_kb", [])]
    return [
        f"Server memory (VmRSS of the server process): {m['rss_before_kb'] / 1024:.0f} MB after "
        f"{m.get('warmup_rounds', 1)} warm-up round(s) (from the start: "
        f"{', '.join(f'{kb / 1024:.0f}' for kb in warmup)} MB), "
        f"{m['rss_after_kb'] / 1024:.0f} MB after {m['rounds']} more rounds of "
        f"{m['calls_per_round']:,} calls ({m['growth']:+.1%}: the target, within 10 %, is "
        f"{'met' if m['growth'] <= 0.10 else 'missed'}); peak {m['hwm_kb'] / 1024:.0f} MB; "
        f"after each round: {', '.join(f'{kb / 1024:.0f}' for kb in m.get('rss_per_round_kb', []))} MB; "
        f"the data folder (store and model versions) ends at {m.get('data_mb', 0):.1f} MB."
    ]


def broken(violations: list[dict[str, Any]]) -> list[str]:
    if not violations:
        return ["", "Rules broken: none."]
    out = ["", "Rules broken:", ""]
    for v in sorted(violations, key=lambda v: -v["count"]):
        what = f"{v['rpc']} ({v['kind']}) [{v['rule']}] x{v['count']}"
        out.append(f"- {what}: {v['details'][:200]} — e.g. {v['example'][:200]}")
    return out


if __name__ == "__main__":
    sys.exit(main())
