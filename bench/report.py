"""The figures as a table, the targets of issue 2 as PASS/MISS lines with their margin, and the
Markdown of docs/benchmarks.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bench.conditions import Conditions
from bench.fleet_qps import FRESHNESS_TARGET_MS, FleetQpsFigures
from bench.fleet_qps import TARGET as FLEET_TARGET
from bench.fleet_qps import lines as fleet_qps_lines
from bench.memory import MemoryFigures
from bench.merchandising import MerchandisingFigures
from bench.merchandising import lines as merchandising_lines
from bench.page_view import PageViewFigures
from bench.page_view import lines as page_view_lines
from bench.recommend import Run
from bench.retrain import RetrainFigures
from bench.track import TrackFigures
from bench.world import WorldFigures


@dataclass(frozen=True)
class Target:
    name: str
    value: float
    limit: float
    at_most: bool  # True: value <= limit passes; False: value >= limit passes
    unit: str

    @property
    def passed(self) -> bool:
        return self.value <= self.limit if self.at_most else self.value >= self.limit

    def line(self) -> str:
        op = "<=" if self.at_most else ">="
        if self.passed:
            spare = (1 - self.value / self.limit) if self.at_most else (self.value / self.limit - 1)
            verdict = f"PASS ({spare:.0%} to spare)"
        else:
            over = (self.value / self.limit - 1) if self.at_most else (1 - self.value / self.limit)
            verdict = f"MISS by {over:.0%}"
        return (
            f"{verdict:<20} {self.name}: {_num(self.value)}{self.unit} "
            f"(target {op} {_num(self.limit)}{self.unit})"
        )


@dataclass
class Results:
    conditions: Conditions
    command: str
    started: str
    seconds: float = 0.0
    world: WorldFigures | None = None
    retrain: RetrainFigures | None = None
    latency: Sequence[Run] = ()
    personalised_share: float = 0.0
    # the same pair at one in flight on the same world stored in PostgreSQL (bench/run.py)
    latency_postgres: Sequence[Run] = ()
    postgres_note: str = ""  # why there is no PostgreSQL pair, when there is none
    throughput: Sequence[Run] = ()
    track: TrackFigures | None = None
    track_postgres: TrackFigures | None = None  # the same measurement on a throwaway PostgreSQL
    memory: MemoryFigures | None = None
    merchandising: MerchandisingFigures | None = None
    page_view: PageViewFigures | None = None
    fleet_qps: FleetQpsFigures | None = None
    k: int = 10
    duration: float = 0.0
    warmup: float = 0.0


def _latency_targets(runs: Sequence[Run], backend: str) -> list[Target]:
    out = []
    by_c: dict[int, dict[str, Run]] = {}
    for run in runs:
        by_c.setdefault(run.result.concurrency, {})[run.label] = run
    for c, pair in sorted(by_c.items()):
        rec, noop = pair.get("Recommend"), pair.get("Health/Check (no-op)")
        if rec and noop:
            out.append(
                Target(
                    f"Recommend p50 / no-op p50 at concurrency {c} ({backend})",
                    rec.result.latency.p50_ms / noop.result.latency.p50_ms,
                    1.5,
                    True,
                    "x",
                )
            )
    return out


def targets(r: Results) -> list[Target]:
    out = _latency_targets(r.latency, "SQLite") + _latency_targets(r.latency_postgres, "PostgreSQL")
    return out + _throughput_targets(r) + _other_targets(r)


def _throughput_targets(r: Results) -> list[Target]:
    out = []
    for run in r.throughput:
        if run.server_processes == 2 and run.result.mode == "closed":
            out.append(
                Target("Recommend QPS, two serving processes", run.result.latency.qps, 2000, False, " QPS")
            )
        if run.server_processes == 2 and run.result.mode == "open":
            out.append(
                Target(
                    f"Recommend p99 at {run.result.rate:.0f} QPS open loop, two processes",
                    run.result.latency.p99_ms,
                    5.0,
                    True,
                    " ms",
                )
            )
    return out


def _other_targets(r: Results) -> list[Target]:
    out = []
    for tr in (r.track, r.track_postgres):
        if tr:
            out.append(
                Target(
                    f"TrackBatch events/s (gRPC, batches of {tr.batch}, {_backend(tr)})",
                    tr.grpc_eps,
                    20_000,
                    False,
                    " ev/s",
                )
            )
            if tr.inflight:  # the same target, as a bulk importer sends: several batches at once
                out.append(
                    Target(
                        f"TrackBatch events/s (gRPC, batches of {tr.batch}, {tr.inflight} calls in flight, "
                        f"{_backend(tr)})",
                        tr.inflight_eps,
                        20_000,
                        False,
                        " ev/s",
                    )
                )
    if r.retrain:
        out.append(Target("full retrain / bare LightFM.fit", r.retrain.ratio, 1.5, True, "x"))
    if r.memory:
        out.append(Target("serving peak RSS per 1M customers", r.memory.gb_per_million, 0.5, True, " GB"))
    if r.merchandising:
        out.append(
            Target(
                "rules and diversity per Recommend, five rules",
                r.merchandising.cost_us / 1000,
                0.1,
                True,
                " ms",
            )
        )
    if r.fleet_qps and r.fleet_qps.arms:
        out.append(
            Target(
                "two replicas on one PostgreSQL: Recommend QPS per server CPU-second / one replica's",
                r.fleet_qps.ratio,
                FLEET_TARGET,
                False,
                "x",
            )
        )
    if r.fleet_qps and r.fleet_qps.freshness_ms:
        out.append(
            Target(
                "freshness across replicas on one PostgreSQL: p99 Track on A -> effect on B",
                r.fleet_qps.freshness_p99_ms,
                FRESHNESS_TARGET_MS,
                True,
                " ms",
            )
        )
    return out


def _metrics_cost(runs: Sequence[Run]) -> list[str]:
    """A sentence comparing the one-in-flight runs with the metrics endpoint on and off."""
    one = {x.label: x.result.latency.p50_ms for x in runs if x.result.concurrency == 1}
    pairs = [
        (name, one.get(name), one.get(f"{name}, metrics on"))
        for name in ("Health/Check (no-op)", "Recommend")
    ]
    said = [f"{name} p50 {off:.2f} -> {on:.2f} ms" for name, off, on in pairs if off and on]
    if not said:
        return []
    return [
        f"With SEENEXT_METRICS_PORT set (a second server, one call in flight): {'; '.join(said)}.",
        "",
    ]


def _track_section(t: TrackFigures) -> list[str]:
    bare, pragmas = ("psycopg", "") if t.backend == "postgresql" else ("sqlite3", ", pragmas")
    return [
        f"## TrackBatch: {t.events:,} demo events in batches of {t.batch:,} ({_backend(t)})",
        "",
        "Event ids as a retailer's systems send them (random 128-bit hex, like a uuid4), not the demo's",
        "sequential ones: every event's id lands on its own page of the unique index (bench/track.py).",
        "",
        "| path | seconds | events/s |",
        "|---|---|---|",
        (
            "| TrackBatch RPC from a client process, one call in flight | "
            f"{t.grpc_seconds:.1f} | {t.grpc_eps:,.0f} |"
        ),
        *(
            [
                f"| TrackBatch RPC from a client process, {t.inflight} calls in flight | "
                f"{t.inflight_seconds:.1f} | {t.inflight_eps:,.0f} |"
            ]
            if t.inflight
            else []
        ),
        f"| EventStore.track_batch in process (no gRPC) | {t.store_seconds:.1f} | {t.store_eps:,.0f} |",
        (
            f"| bare {bare} executemany of the same rows, same schema, indexes{pragmas} | "
            f"{t.bare_seconds:.1f} | {t.bare_eps:,.0f} |"
        ),
        f"| TrackBatch RPC / bare insert | | {t.grpc_eps / t.bare_eps:.2f}x |",
        *(
            [
                f"| TrackBatch RPC, {t.inflight} in flight / bare insert | | "
                f"{t.inflight_eps / t.bare_eps:.2f}x |"
            ]
            if t.inflight
            else []
        ),
        "",
        (
            f"Server CPU per event through gRPC: {t.server_us_per_event:.1f} us"
            + (
                f" ({t.inflight_server_us_per_event:.1f} us with {t.inflight} in flight)"
                if t.inflight
                else ""
            )
            + " (the bare insert's client, one transaction at a time: "
            f"{t.bare_cpu_seconds / t.events * 1e6:.1f} us). Client CPU to send them: "
            f"{t.grpc_client_cpu_seconds:.1f}s. "
            + (
                "Every run lands in a fresh database (CREATE DATABASE); one commit per batch."
                if t.backend == "postgresql"
                else "Every event lands in a fresh file; synchronous=FULL (one fsync per batch commit)."
            )
        ),
        "",
    ]


def _backend(t: TrackFigures) -> str:
    return "PostgreSQL" if t.backend == "postgresql" else "SQLite"


def _num(v: float) -> str:
    if math.isnan(v):
        return "nan"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def _run_row(run: Run) -> str:
    res, lat = run.result, run.result.latency
    load = (
        f"closed, {res.concurrency} in flight"
        if res.mode == "closed"
        else f"open, {res.rate:.0f} QPS scheduled"
    )
    server = " + ".join(f"{c:.2f}" for c in res.server_cpu) or "?"
    lag = f"{res.send_lag_p99_ms:.2f}" if res.mode == "open" else ""
    per_call = (
        f"{sum(res.server_cpu) / lat.qps * 1000:.2f} / {res.client_cpu / lat.qps * 1000:.2f}"
        if lat.qps
        else ""
    )
    return (
        f"| {run.label} | {run.server_processes} | {load} | {res.client_processes} | {lat.qps:,.0f} | "
        f"{lat.p50_ms:.2f} | {lat.p90_ms:.2f} | {lat.p99_ms:.2f} | {lat.max_ms:.1f} | {_errors(res)} | "
        f"{server} | {res.client_cpu:.2f} | {per_call} | {lag} |"
    )


def _errors(res: object) -> str:
    codes = getattr(res, "error_codes", {})
    return ", ".join(f"{n} {code}" for code, n in sorted(codes.items())) or "0"


_RUN_HEADER = (
    "| call | server processes | load | client processes | QPS | p50 ms | p90 ms | p99 ms | max ms | errors "
    "| server CPU (cores) | client CPU (cores) | CPU ms per call, server / client | send lag p99 ms |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"
)


def cpu_ceiling(r: Results) -> tuple[float, float, float] | None:
    """(server ms, client ms, QPS ceiling) per Recommend at the closed-loop two-process run: how many
    calls per second the machine's cores could give if nothing else ran and the CPU cost per call held."""
    for run in r.throughput:
        res = run.result
        if run.server_processes == 2 and res.mode == "closed" and res.latency.qps:
            server_ms = sum(res.server_cpu) / res.latency.qps * 1000
            client_ms = res.client_cpu / res.latency.qps * 1000
            return server_ms, client_ms, r.conditions.cpus * 1000 / (server_ms + client_ms)
    return None


def _merchandising_and_fleet_sections(r: Results) -> list[str]:
    lines: list[str] = []
    if r.merchandising:
        lines += [
            "## Merchandising rules and diversity, in process (bench/merchandising.py)",
            "",
            "```",
            *merchandising_lines(r.merchandising),
            "```",
            "",
        ]
    if r.page_view:
        lines += [
            "## A page's Recommends with the customer's scores kept, through gRPC (bench/page_view.py)",
            "",
            "```",
            *page_view_lines(r.page_view),
            "```",
            "",
        ]
    if r.fleet_qps:
        lines += [
            "## Two replicas on one PostgreSQL: CPU per call and freshness (bench/fleet_qps.py)",
            "",
            "```",
            *fleet_qps_lines(r.fleet_qps),
            "```",
            "",
        ]
    return lines


def markdown(r: Results) -> str:
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `{r.command}` on {r.started} in {r.seconds / 60:.1f} minutes. Do not edit by hand:",
        "run `make bench` again. Methods and caveats are below the figures.",
        "",
        "## Conditions",
        "",
        *[f"- {line}" for line in r.conditions.lines()],
        "- the servers, the load generators and this script share the machine's cores: client CPU is",
        "  reported beside every load run; other work on the machine shows in the load average.",
        "- data folder: a temporary folder on the same disk as the repository; SQLite WAL, synchronous=FULL.",
    ]
    if r.world:
        w = r.world
        lines += [
            (
                f"- world: demo retailer, {w.items:,} items, {w.customers:,} customers, {w.events:,} events "
                f"({w.item_events:,} with an item); generated in {w.generate_seconds:.0f}s, "
                f"seeded through EventStore.track_batch in {w.seed_seconds:.0f}s "
                f"({w.events / w.seed_seconds:,.0f} events/s)."
            ),
        ]
    lines += ["", "## Targets", "", "```", *[t.line() for t in targets(r)], "```", ""]
    if r.latency:
        lines += [
            f"## Recommend beside the transport floor (k={r.k}, {r.world.items if r.world else '?'} items)",
            "",
            (
                f"Known customers drawn with a fixed seed; {r.personalised_share:.0%} of a checked sample "
                "were answered from their own model vector (strategy includes `personalised`) with "
                f"{r.k} distinct items. Each run: {r.warmup:g}s warm-up, then {r.duration:g}s measured; "
                "the latency pairs start once every sampled customer's state is in the server's memory "
                "(one Recommend each, as a serving process holds its working set)."
            ),
            "",
            _RUN_HEADER,
            *[_run_row(x) for x in r.latency],
            "",
            *_metrics_cost(r.latency),
        ]
    if r.latency_postgres or r.postgres_note:
        lines += [
            "## Recommend beside the transport floor on PostgreSQL (one in flight)",
            "",
            "The same world seeded into a throwaway PostgreSQL 15 cluster on this machine (fsync on); one",
            "`seenext serve` process with SEENEXT_DATABASE_URL set, customer states in memory as on SQLite.",
            "",
        ]
        if r.latency_postgres:
            lines += [_RUN_HEADER, *[_run_row(x) for x in r.latency_postgres], ""]
        if r.postgres_note:
            lines += [r.postgres_note, ""]
    if r.throughput:
        lines += [
            "## Recommend throughput: one and two serving processes (SO_REUSEPORT)",
            "",
            (
                "Closed loop: as many requests as the server completes. Open loop: a paced sender; "
                "latency from the"
            ),
            (
                "*scheduled* send time, so a stalled server or client is charged in full "
                "(send lag = how late the"
            ),
            "client itself sent).",
            "",
            _RUN_HEADER,
            *[_run_row(x) for x in r.throughput],
            "",
        ]
        ceiling = cpu_ceiling(r)
        if ceiling:
            lines += [
                (
                    f"CPU per Recommend with two serving processes: {ceiling[0]:.2f} ms in the server "
                    f"and {ceiling[1]:.2f} ms in the load generator, so {r.conditions.cpus} cores could "
                    f"give at most ~{ceiling[2]:,.0f} QPS here with nothing else running."
                ),
                "",
            ]
    lines += _merchandising_and_fleet_sections(r)
    for t in (r.track, r.track_postgres):
        if t:
            lines += _track_section(t)
    if r.retrain:
        t2 = r.retrain
        lines += [
            f"## Full retrain on {t2.item_events:,} interactions",
            "",
            (
                f"{t2.item_events:,} item events in the store become a {t2.users:,} x {t2.items:,} "
                f"matrix with {t2.matrix_nnz:,} non-zero (customer, item) pairs. LightFM {t2.loss}, "
                f"{t2.components} components, {t2.epochs} epochs, {t2.threads} threads, "
                "user and item features as the product builds them."
            ),
            "",
            "| step | seconds |",
            "|---|---|",
            (
                "| `Seenext.train()` in all (eval_holdout_days=0: no evaluation fit) | "
                f"{t2.train_seconds:.1f} |"
            ),
            f"| - of which dataset.build | {t2.build_seconds:.1f} |",
            f"| - of which LightFM.fit | {t2.fit_seconds:.1f} |",
            f"| - of which reading the log, the artifact, publishing | {t2.other_seconds:.1f} |",
            f"| bare `LightFM.fit` of the same matrices | {t2.bare_fit_seconds:.1f} |",
            "",
            (
                f"Work outside the fit: {t2.train_seconds - t2.fit_seconds:.1f}s, "
                f"{(t2.train_seconds - t2.fit_seconds) / t2.bare_fit_seconds:.0%} of the bare fit. "
                "The two fits are single runs of the same work minutes apart; "
                "their difference is the machine's noise."
            ),
            "",
        ]
    if r.memory:
        m = r.memory
        lines += [
            "## Serving memory",
            "",
            (
                f"The world's model widened to {m.customers:,} customers "
                f"(random vectors, {m.dim} dimensions; ids {m.id_bytes} bytes each in the artifact, "
                f"{m.artifact_mb:,.0f} MB on disk) and {m.items:,} items, "
                "served by one process and read after warm-up Recommend traffic."
            ),
            "",
            "| model | customers | VmHWM (peak) MB | VmRSS MB |",
            "|---|---|---|---|",
            (
                f"| the world's own | {m.baseline_customers:,} | {m.baseline_hwm_kb / 1024:,.0f} | "
                f"{m.baseline_rss_kb / 1024:,.0f} |"
            ),
            f"| widened | {m.customers:,} | {m.hwm_kb / 1024:,.0f} | {m.rss_kb / 1024:,.0f} |",
            "",
            (
                f"Peak per 1M customers: {m.gb_per_million:.2f} GB for the whole process, "
                f"{m.marginal_gb_per_million:.2f} GB above the baseline server."
            ),
            "",
        ]
    lines += [
        "## Method",
        "",
        "- Servers are `python -m server serve` processes with SEENEXT_* settings on a free port, used after",
        "  the standard health check answers SERVING. `SEENEXT_PROCESSES=2` starts two processes on one port",
        "  with SO_REUSEPORT; the load generators open several connections so the kernel spreads them.",
        "- Load generators are Python grpc.aio clients in their own processes, sending pre-serialised",
        "  requests and not parsing replies. On a 2-core machine they take CPU from the server: the",
        "  client CPU column says how much.",
        "- The no-op is grpc.health.v1 Health/Check on the same server: the floor of a Python gRPC call.",
        "- API keys are checked as in production (SEENEXT_AUTH=1, a keys file with one key): every call",
        "  carries it; Health is open by design, so the no-op floor does not include the key check.",
        (
            "- Nothing here is part of `make test`; "
            "tests/bench only checks that each measurement runs at a toy size."
        ),
        "- What the profiles showed, what was fixed (with before/after) and why the missed targets are",
        "  missed: docs/performance.md.",
        "",
    ]
    return "\n".join(lines)
