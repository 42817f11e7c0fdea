"""`python -m bench.fleet_qps`: two replicas on one PostgreSQL cost no more CPU per Recommend than one
(issue 11: Recommend QPS per server core within 10 % of one replica's, each process's CPU reported).

A throwaway PostgreSQL 15 cluster (tests/postgres.py) holds the demo retailer; one training publishes
the model into the shared models folder; two `seenext serve` replicas (SEENEXT_DATABASE_URL set, each
on its own port, the default SEENEXT_WORKERS) serve it. Then, alternately and `rounds` times:

- arm one: the load generators (two processes, `concurrency` calls in flight in all) send
  Recommend for known customers to replica A only;
- arm two: the same load, half to A and half to B.

Per arm: calls/s, every replica's CPU seconds over the measured window (utime + stime from
/proc/<pid>/stat), the PostgreSQL processes' CPU (postmaster and its children) for context, and
QPS per server CPU-second = calls / CPU seconds of the replicas that served. The target is the ratio
two/one of that figure >= 0.90. This machine's two cores cannot show linear QPS with the load
generator beside the servers, so the figure is CPU per call, not QPS. B runs in arm one too (idle:
it follows the event log); its CPU there is reported, not charged to the one replica.

Then freshness across the two replicas (issue 11: p99 <= 1 s): for each of `freshness_trials` known
customers, the first item B shows them is bought on A; the time from A's acknowledgement until B no
longer offers it (bench/fleet.py's method, here on PostgreSQL).

    .venv/bin/python -m bench.fleet_qps [--toy] [--duration 5] [--rounds 3] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bench.conditions import Conditions
from bench.fleet import freshness_between
from bench.load import LoadResult, run_load
from bench.recommend import RECOMMEND, requests
from bench.serving import ServerProcess
from bench.world import known_customers, settings_for
from models.demo import generator
from models.service import Seenext
from tests.postgres import Cluster

_TICKS = os.sysconf("SC_CLK_TCK")
TARGET = 0.90  # two replicas' QPS per server CPU-second / one replica's
FRESHNESS_TARGET_MS = 1000.0  # p99 from an acknowledged Track on A to its effect on B


@dataclass(frozen=True)
class Arm:
    """One measured window: the load on one replica ("one") or spread over two ("two")."""

    replicas: int
    qps: float
    replica_cpu: tuple[float, ...]  # CPU seconds over the window of A, B (B idle in arm one)
    postgres_cpu: float  # CPU seconds of every PostgreSQL process over the window
    client_cpu: float  # cores used by the load generators
    duration: float
    errors: int

    @property
    def serving_cpu(self) -> float:
        """CPU seconds of the replicas that served the load (A in arm one, A and B in arm two)."""
        return sum(self.replica_cpu[: self.replicas])

    @property
    def qps_per_cpu(self) -> float:
        """Calls answered per CPU-second of the serving replicas."""
        return self.qps * self.duration / self.serving_cpu if self.serving_cpu else 0.0


@dataclass
class FleetQpsFigures:
    items: int
    customers: int
    events: int
    concurrency: int
    duration: float
    warmup: float
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    arms: list[Arm] = field(default_factory=list)
    freshness_ms: list[float] = field(default_factory=list)  # Track on A -> its effect on B, per trial

    @property
    def freshness_p99_ms(self) -> float:
        return float(np.percentile(self.freshness_ms, 99)) if self.freshness_ms else 0.0

    def of(self, replicas: int) -> list[Arm]:
        return [a for a in self.arms if a.replicas == replicas]

    @property
    def ratios(self) -> list[float]:
        """Per round: two replicas' QPS per CPU-second / one replica's (the rounds ran back to back)."""
        return [
            two.qps_per_cpu / one.qps_per_cpu
            for one, two in zip(self.of(1), self.of(2), strict=True)
            if one.qps_per_cpu
        ]

    @property
    def ratio(self) -> float:
        """Median of the per-CPU-second figures, two over one."""
        one = statistics.median(a.qps_per_cpu for a in self.of(1))
        return statistics.median(a.qps_per_cpu for a in self.of(2)) / one if one else 0.0


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # a backend that ended inside the window: its CPU is lost, a small undercount
    return (int(fields[11]) + int(fields[12])) / _TICKS


def postgres_pids(cluster: Cluster) -> list[int]:
    """The postmaster and its children (backends, walwriter, checkpointer, …)."""
    master = int((cluster.data / "postmaster.pid").read_text().split()[0])
    pids = [master]
    for task in Path(f"/proc/{master}/task").iterdir():
        try:
            pids += [int(p) for p in (task / "children").read_text().split()]
        except OSError:
            continue
    return pids


def _postgres_cpu(cluster: Cluster) -> dict[int, float]:
    return {pid: _cpu_seconds(pid) for pid in postgres_pids(cluster)}


def _delta(before: dict[int, float], after: dict[int, float]) -> float:
    # A backend born inside the window counts from zero: its whole life is in the window.
    return sum(v - before.get(pid, 0.0) for pid, v in after.items())


def _snapshots(replicas: Sequence[ServerProcess], cluster: Cluster, marks: list[dict]) -> Callable:
    """A `server_cpu` callable for run_load that records every replica's and PostgreSQL's CPU at the
    window's start and end (run_load calls it exactly then)."""

    def snap() -> dict[int, float]:
        cpu = [_cpu_seconds(r.proc.pid) for r in replicas]
        marks.append({"replicas": cpu, "postgres": _postgres_cpu(cluster)})
        return {r.proc.pid: c for r, c in zip(replicas, cpu, strict=True)}

    return snap


def _arm(
    replicas: int,
    servers: Sequence[ServerProcess],
    cluster: Cluster,
    payloads: list[bytes],
    concurrency: int,
    duration: float,
    warmup: float,
) -> Arm:
    """One window of load on `replicas` replicas. In arm two each replica has its own generator and
    window (the two start within a second of each other, inside the warm-up): each replica's CPU is
    read over the window of the load it served, so an offset between them does not skew the figure."""
    marks: list[list[dict]] = [[] for _ in range(replicas)]
    results: list[LoadResult | BaseException] = [RuntimeError("no result")] * replicas
    if replicas == 1:
        # Two generator processes on A, as arm two has one per replica: the same client side.
        results[0] = run_load(
            servers[0].target, RECOMMEND, payloads, duration=duration, warmup=warmup,
            concurrency=concurrency, client_processes=2, server_cpu=_snapshots(servers, cluster, marks[0]),
            metadata=servers[0].metadata,
        )  # fmt: skip
    else:

        def drive(i: int) -> None:
            try:
                results[i] = run_load(
                    servers[i].target, RECOMMEND, payloads, duration=duration, warmup=warmup,
                    concurrency=concurrency // 2, client_processes=1, seed=7 + i,
                    server_cpu=_snapshots(servers, cluster, marks[i]), metadata=servers[i].metadata,
                )  # fmt: skip
            except BaseException as exc:  # re-raised in the main thread below
                results[i] = exc

        threads = [threading.Thread(target=drive, args=(i,)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for r in results:
        if isinstance(r, BaseException):
            raise r
    for s in servers:
        s.check_alive()
    done = [r for r in results if isinstance(r, LoadResult)]
    # Replica i's CPU over the window of the generator that drove it (A's window for an idle B).
    windows = [marks[min(i, replicas - 1)] for i in range(len(servers))]
    return Arm(
        replicas=replicas,
        qps=sum(r.latency.qps for r in done),
        replica_cpu=tuple(w[-1]["replicas"][i] - w[0]["replicas"][i] for i, w in enumerate(windows)),
        postgres_cpu=_delta(marks[0][0]["postgres"], marks[0][-1]["postgres"]),
        client_cpu=sum(r.client_cpu for r in done),
        duration=duration,
        errors=sum(r.latency.errors for r in done),
    )


def _step(name: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {name}", file=sys.stderr, flush=True)


def measure(
    work: Path,
    items: int = 20_000,
    customers: int = 5_000,
    sample: int = 1_000,
    duration: float = 5.0,
    warmup: float = 1.0,
    rounds: int = 3,
    concurrency: int = 4,
    freshness_trials: int = 200,
    epochs: int | None = None,
    durable: bool = False,
    cluster: Cluster | None = None,
) -> FleetQpsFigures:
    """Builds the world in a throwaway cluster (or a new database on `cluster`, left running), trains
    once, runs the arms alternately `rounds` times."""
    own = cluster is None
    cluster = cluster or Cluster(durable=durable)
    try:
        url = cluster.database()
        data = work / "fleet-qps"
        data.mkdir(parents=True, exist_ok=True)
        _step(f"world: {items:,} items, {customers:,} customers, into PostgreSQL")
        retailer = generator.generate(
            generator.DemoConfig(customers=customers, items=items, days=400, seed=42)
        )
        overrides: dict[str, object] = {"database_url": url}
        if epochs:
            overrides["epochs"] = epochs
        with Seenext(settings_for(data, **overrides)) as service:
            counts = generator.seed(service, retailer)
            _step("training once")
            service.train()
            known = known_customers(service, sample)
            events = service.count_events()
        payloads = requests(known, 10)
        figures = FleetQpsFigures(
            counts["items"], customers, events, concurrency, duration, warmup, os.getloadavg()
        )
        _step("two replicas on the database")
        with ServerProcess(data, database_url=url) as a, ServerProcess(data, database_url=url) as b:
            for n in range(rounds):
                for replicas in (1, 2):
                    _step(f"round {n + 1}/{rounds}: {'one replica' if replicas == 1 else 'two replicas'}")
                    figures.arms.append(
                        _arm(replicas, (a, b), cluster, payloads, concurrency, duration, warmup)
                    )
            _step(f"freshness across the replicas: {freshness_trials} purchases on A, watched on B")
            figures.freshness_ms = [s * 1000.0 for s in freshness_between(a, b, known, 10, freshness_trials)]
        figures.load_after = os.getloadavg()
        return figures
    finally:
        if own:
            cluster.stop()


def _spread(values: Sequence[float]) -> str:
    return f"{statistics.median(values):,.0f} (min {min(values):,.0f}, max {max(values):,.0f})"


def lines(f: FleetQpsFigures) -> list[str]:
    """The figures as text: conditions, one line per arm, medians, the target."""
    load = "/".join(f"{v:.2f}" for v in f.load_before), "/".join(f"{v:.2f}" for v in f.load_after)
    out = [
        f"cores: {os.cpu_count()}; load average before {load[0]}, after {load[1]}",
        f"world: {f.items:,} items, {f.customers:,} demo customers, {f.events:,} events in PostgreSQL 15",
        f"load: Recommend k=10 for known customers, closed loop, {f.concurrency} in flight from two "
        f"generator processes; {f.warmup:g} s warm-up, {f.duration:g} s measured per arm; arms alternate",
        "",
        "arm          QPS   CPU s A (util)  CPU s B (util)  PG CPU s  client cores  QPS/server CPU-s  errors",
    ]
    for a in f.arms:
        util = [f"{c:5.2f} ({c / a.duration:4.0%})" for c in a.replica_cpu]
        idle = " idle" if a.replicas == 1 else "     "
        out.append(
            f"{'one replica' if a.replicas == 1 else 'two replicas':<12} {a.qps:5,.0f}   {util[0]}   "
            f"{util[1]}{idle} {a.postgres_cpu:6.2f}   {a.client_cpu:10.2f}   {a.qps_per_cpu:14,.0f}  "
            f"{a.errors:6d}"
        )
    one, two = f.of(1), f.of(2)
    ratio = f.ratio
    verdict = "PASS" if ratio >= TARGET else "MISS"
    out += [
        "",
        f"one replica:  QPS {_spread([a.qps for a in one])}; QPS per server CPU-second "
        f"{_spread([a.qps_per_cpu for a in one])}",
        f"two replicas: QPS {_spread([a.qps for a in two])}; QPS per server CPU-second "
        f"{_spread([a.qps_per_cpu for a in two])}",
        "ratio two/one per round: " + ", ".join(f"{r:.2f}" for r in f.ratios),
        f"{verdict}: two replicas' QPS per server CPU-second / one replica's = {ratio:.2f} "
        f"(medians; target >= {TARGET:.2f})",
    ]
    if f.freshness_ms:
        fresh = np.array(f.freshness_ms)
        verdict = "PASS" if f.freshness_p99_ms <= FRESHNESS_TARGET_MS else "MISS"
        out += [
            "",
            f"freshness, a PURCHASE tracked on A until B no longer offers it ({len(fresh)} trials, the "
            "change "
            f"feed polled every 0.1 s): p50 {np.percentile(fresh, 50):.0f} ms, p99 "
            f"{f.freshness_p99_ms:.0f} ms, max {fresh.max():.0f} ms",
            f"{verdict}: freshness p99 {f.freshness_p99_ms:.0f} ms (target <= {FRESHNESS_TARGET_MS:.0f} ms)",
        ]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet_qps", description=__doc__)
    parser.add_argument("--toy", action="store_true", help="tiny sizes, to check the benchmark runs")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds measured per arm")
    parser.add_argument("--rounds", type=int, default=3, help="times each arm runs (alternately)")
    parser.add_argument("--concurrency", type=int, default=4, help="Recommend calls in flight in all")
    parser.add_argument("--durable", action="store_true", help="fsync and synchronous commit on")
    args = parser.parse_args(argv)
    conditions = Conditions.now()
    with tempfile.TemporaryDirectory(prefix="seenext-fleet-qps-") as tmp:
        if args.toy:
            figures = measure(
                Path(tmp), items=300, customers=150, sample=50, duration=0.5, warmup=0.2, rounds=1,
                concurrency=args.concurrency, epochs=2, durable=args.durable, freshness_trials=10,
            )  # fmt: skip
        else:
            figures = measure(
                Path(tmp), duration=args.duration, rounds=args.rounds, concurrency=args.concurrency,
                durable=args.durable,
            )  # fmt: skip
    conditions.finish()
    print("# Two replicas on one PostgreSQL: Recommend QPS per server CPU-second\n")
    print("\n".join(conditions.lines()))
    print("\n".join(lines(figures)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
