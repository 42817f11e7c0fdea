"""`python -m bench.run` (`make bench`): every measurement in one run, printed and written to
docs/benchmarks.md. `--toy` runs the same code at a size that takes well under a minute (for trying
it out; the figures mean nothing), and writes nowhere unless --out is given.
"""

from __future__ import annotations

import argparse
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from bench import fleet_qps, memory, merchandising, page_view, recommend, report, retrain, track, world
from bench.conditions import Conditions
from models.service import Seenext

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Scale:
    items: int = 20_000  # catalogue of the world (Recommend ranks all of them)
    customers: int = 30_000  # demo customers: about 1M item events
    k: int = 10
    sample: int = 1_000  # known customers the load draws from
    duration: float = 8.0  # seconds measured per load run
    warmup: float = 2.0
    concurrency_high: int = 8
    throughput_concurrency: int = 16
    open_rate: float = 1000.0
    merchandising_calls: int = 1_000  # Recommend calls timed per configuration and round
    track_events: int = 200_000
    track_batch: int = 1_000
    # TrackBatch calls in flight of the second figure (one in flight is always measured)
    track_inflight: int = 2
    memory_customers: int = 1_000_000
    fleet_customers: int = 5_000  # the PostgreSQL world of the two-replica measurement (same items)
    fleet_rounds: int = 3  # one replica, two replicas, alternately, this many times
    freshness_trials: int = 200  # purchases on replica A watched on replica B (same PostgreSQL)
    epochs: int | None = None  # None: the product default (Settings.epochs)


TOY = Scale(
    items=300,
    customers=150,
    sample=50,
    duration=1.0,
    warmup=0.3,
    concurrency_high=2,
    throughput_concurrency=4,
    open_rate=100.0,
    merchandising_calls=100,
    track_events=3_000,
    memory_customers=20_000,
    fleet_customers=150,
    fleet_rounds=1,
    freshness_trials=10,
    epochs=2,
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--toy", action="store_true", help="tiny sizes, to check the benchmark itself runs")
    parser.add_argument(
        "--out",
        type=Path,
        help="where to write the Markdown (default docs/benchmarks.md; with --toy, nowhere)",
    )
    parser.add_argument("--duration", type=float, help="seconds measured per load run")
    parser.add_argument("--epochs", type=int, help="LightFM epochs of the retrain (default: the product's)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data folder")
    parser.add_argument(
        "--work",
        type=Path,
        help="use (and keep) this folder; a world already built there is "
        "reused (for working on one measurement)",
    )
    parser.add_argument("--only", nargs="+", choices=STEPS, default=list(STEPS), help="measurements to run")
    parser.add_argument(
        "--database-url",
        default="",
        help="postgresql://… of a server to run the TrackBatch and the PostgreSQL latency measurements on "
        "(fresh databases are made and dropped there); default: `track` on SQLite files, `track-postgres` "
        "and the PostgreSQL latency pair on a throwaway PostgreSQL 15 cluster (tests/postgres.py)",
    )
    parser.add_argument(
        "--track-inflight",
        type=int,
        help="TrackBatch calls in flight of the second TrackBatch figure (default 2; 1: only one in flight)",
    )
    args = parser.parse_args(argv)
    scale = TOY if args.toy else Scale()
    if args.track_inflight:
        scale = replace(scale, track_inflight=args.track_inflight)
    if args.duration:
        scale = replace(scale, duration=args.duration)
    if args.epochs:
        scale = replace(scale, epochs=args.epochs)
    out = args.out if args.out else (None if args.toy else ROOT / "docs" / "benchmarks.md")
    args_text = shlex.join(sys.argv[1:] if argv is None else list(argv))
    command = f"python -m bench.run {args_text}" if args_text else "make bench"  # make bench runs it bare
    work = args.work or Path(tempfile.mkdtemp(prefix="seenext-bench-"))
    work.mkdir(parents=True, exist_ok=True)  # a --work folder named for the first time
    try:
        results = run_all(scale, work, command, steps=args.only, database_url=args.database_url)
    finally:
        if args.keep or args.work:
            print(f"data kept in {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    text = report.markdown(results)
    print(text)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"written to {out}", file=sys.stderr)
    return 0


STEPS = (
    "retrain",
    "latency",
    "throughput",
    "merchandising",
    "page_view",
    "track",
    "track-postgres",
    "memory",
    "fleet_qps",
)


def run_all(
    scale: Scale,
    work: Path,
    command: str = "python -m bench.run",
    steps: Sequence[str] = STEPS,
    database_url: str = "",
) -> report.Results:
    t0 = time.perf_counter()
    results = report.Results(
        Conditions.now(),
        command,
        time.strftime("%Y-%m-%d %H:%M %Z"),
        k=scale.k,
        duration=scale.duration,
        warmup=scale.warmup,
    )

    def step(name: str) -> None:
        print(f"[{time.perf_counter() - t0:6.0f}s] {name}", file=sys.stderr, flush=True)

    data = work / "world"
    customers, items = _world(scale, data, steps, results, step)
    if "latency" in steps:
        step(f"Recommend and the no-op at concurrency 1 and {scale.concurrency_high}")
        results.latency, results.personalised_share = recommend.latency_runs(
            data, customers, scale.k, scale.duration, scale.warmup, concurrencies=(1, scale.concurrency_high)
        )
        step("Recommend and the no-op at concurrency 1 on PostgreSQL (the same world, seeded there)")
        results.latency_postgres, results.postgres_note = postgres_latency(scale, work, database_url)
    if "throughput" in steps:
        step("Recommend throughput with 1 and 2 serving processes")
        results.throughput = recommend.throughput_runs(
            data,
            customers,
            scale.k,
            scale.duration,
            scale.warmup,
            concurrency=scale.throughput_concurrency,
            rate=scale.open_rate,
        )
    if "merchandising" in steps:
        step("rules and diversity in process: five rules, before and after")
        results.merchandising = merchandising.measure(
            data, customers[:300], scale.k, scale.merchandising_calls
        )
    if "page_view" in steps:
        step("a page's three Recommends through gRPC, with and without the customer's scores kept")
        results.page_view = page_view.measure(data, customers[:300], items, scale.k)
    if "track" in steps:
        step(f"TrackBatch of {scale.track_events:,} events ({'PostgreSQL' if database_url else 'SQLite'})")
        results.track = track.measure(
            work, scale.track_events, scale.track_batch, database_url, scale.track_inflight
        )
    if "track-postgres" in steps:
        step(f"TrackBatch of {scale.track_events:,} events (PostgreSQL)")
        results.track_postgres = _track_postgres(work, scale, database_url)
    if "memory" in steps:
        step(f"serving memory with {scale.memory_customers:,} customers")
        results.memory = memory.measure(data, customers, scale.memory_customers, scale.k)
    if "fleet_qps" in steps:
        step("Recommend CPU per call and freshness: one and two replicas on one PostgreSQL")
        results.fleet_qps = fleet_qps.measure(
            work,
            items=scale.items,
            customers=scale.fleet_customers,
            sample=scale.sample,
            duration=scale.duration,
            warmup=scale.warmup,
            rounds=scale.fleet_rounds,
            freshness_trials=scale.freshness_trials,
            epochs=scale.epochs,
        )
    results.conditions.finish()
    results.seconds = time.perf_counter() - t0
    step("done")
    return results


def _world(
    scale: Scale, data: Path, steps: Sequence[str], results: report.Results, step: Callable[[str], None]
) -> tuple[list[str], list[str]]:
    """The benchmark world in `data` (built and trained when missing, or retrained when asked), and the
    known customers the load draws from and the items their pages show; none when only the TrackBatch
    steps run (they make their own fresh stores)."""
    overrides = {"epochs": scale.epochs} if scale.epochs else {}
    if not set(steps) - {"track", "track-postgres"}:
        return [], []
    if not (data / "seenext.db").exists():
        step(f"world: demo retailer with {scale.items:,} items and {scale.customers:,} customers")
        results.world = world.build(data, scale.items, scale.customers)
    if "retrain" in steps or not (data / "models" / "CURRENT").exists():
        step("retrain on the world's item events, and a bare fit")
        results.retrain = retrain.measure(data, **overrides)
    service = Seenext(world.settings_for(data))
    try:
        return world.known_customers(service, scale.sample), page_view.page_items(service, 300)
    finally:
        service.close()


def _track_postgres(work: Path, scale: Scale, database_url: str) -> track.TrackFigures:
    """TrackBatch on PostgreSQL (issue 11's target is for both backends): on the server of
    --database-url, else on a throwaway cluster as durable as a production one (fsync and synchronous
    commit on), started here and removed afterwards."""
    if database_url:
        return track.measure(work, scale.track_events, scale.track_batch, database_url, scale.track_inflight)
    from tests.postgres import Cluster  # the tests' throwaway cluster (PostgreSQL 15 binaries)

    cluster = Cluster(durable=True)
    try:
        return track.measure(
            work, scale.track_events, scale.track_batch, cluster.database(), scale.track_inflight
        )
    finally:
        cluster.stop()


def postgres_latency(scale: Scale, work: Path, database_url: str) -> tuple[list[recommend.Run], str]:
    """The no-op and Recommend at one in flight on the benchmark world seeded into a fresh PostgreSQL
    database: on `database_url`'s server, else on a throwaway cluster (tests/postgres.py). Returns the
    runs, or none and why."""
    cluster = None
    if not database_url:
        from tests.postgres import Cluster  # the benchmark's throwaway cluster, as bench/track_postgres

        try:
            cluster = Cluster(durable=True)
        except RuntimeError as e:
            return [], f"Not measured: {e}"
        database_url = cluster.admin_url
    try:
        with track._fresh_store(work, "latency_postgres", database_url) as (folder, conninfo):
            url = conninfo  # the fresh database's URL on the same server (the setting takes a URL)
            data = folder / "world"
            data.mkdir(parents=True, exist_ok=True)
            world.build(data, scale.items, scale.customers, database_url=url)
            overrides: dict[str, object] = {"database_url": url}
            if scale.epochs:
                overrides["epochs"] = scale.epochs
            with Seenext(world.settings_for(data, **overrides)) as service:
                service.train()
                customers = world.known_customers(service, scale.sample)
            runs, _ = recommend.latency_runs(
                data,
                customers,
                scale.k,
                scale.duration,
                scale.warmup,
                concurrencies=(1,),
                with_metrics=False,
                database_url=url,
            )
            return runs, ""
    finally:
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    sys.exit(main())
