"""`python -m bench.fleet`: what the fleet work (issue 11) promises, measured on real server processes.

1. Recommend p50 beside the no-op p50 (grpc.health.v1 Health/Check) on one server, one request in
   flight, 20k items: before (SEENEXT_STATE_CACHE_SIZE=0, one customer-state statement per request) and
   after (customer states in memory, kept fresh by the change feed). Target: ratio <= 1.5.
2. Freshness across two replicas on one store: a PURCHASE tracked on A of an item B is showing the
   customer; the time from A's acknowledgement until B's Recommend no longer offers it (B is asked
   back to back). Target: p99 <= 1 s.

Both replicas here share one SQLite file (the same cross-process problem as replicas on one PostgreSQL).
`--work DIR` keeps (and reuses) the world; `--toy` checks the benchmark runs (the figures mean nothing).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import grpc
import numpy as np

from bench import retrain, world
from bench.conditions import Conditions
from bench.recommend import noop_and_recommend, requests
from bench.serving import ServerProcess
from models.service import Seenext
from protos.seenext.v1 import (
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)


def latency(data: Path, customers: Sequence[str], k: int, duration: float, warmup: float) -> dict[str, float]:
    """p50 (ms) of the no-op and of Recommend, one in flight, with and without customer states in memory."""
    out: dict[str, float] = {}
    payloads = requests(customers, k)
    for label, cache in (("before", 0), ("after", 20_000)):
        with ServerProcess(data, state_cache_size=cache) as server:
            noop, recommend = noop_and_recommend(server, payloads, duration, warmup)
            for name, (_, result) in (("noop", noop), ("recommend", recommend)):
                out[f"{label}_{name}_p50_ms"] = result.latency.p50_ms
                out[f"{label}_{name}_p99_ms"] = result.latency.p99_ms
    return out


def freshness(data: Path, customers: Sequence[str], k: int, trials: int) -> list[float]:
    """Seconds from a Track acknowledged by replica A to its effect on replica B, one per trial."""
    with ServerProcess(data) as a, ServerProcess(data) as b:
        return freshness_between(a, b, customers, k, trials)


def freshness_between(
    a: ServerProcess, b: ServerProcess, customers: Sequence[str], k: int, trials: int
) -> list[float]:
    """The trials on two running replicas: for each customer, the first item B shows is bought on A;
    the time from A's acknowledgement until B stops offering it (B asked back to back)."""
    seconds: list[float] = []
    with grpc.insecure_channel(a.target) as cha, grpc.insecure_channel(b.target) as chb:
        track = events_pb2_grpc.EventServiceStub(cha)
        on_a = recommendation_pb2_grpc.RecommendationServiceStub(cha)
        on_b = recommendation_pb2_grpc.RecommendationServiceStub(chb)

        def top(who: common_pb2.Identifier, on: str = "b") -> list[str]:
            stub, metadata = (on_a, a.metadata) if on == "a" else (on_b, b.metadata)
            reply = stub.Recommend(
                recommendation_pb2.RecommendRequest(who=who, channel=common_pb2.CHANNEL_WEB, k=k),
                timeout=10,
                metadata=metadata,
            )
            return [i.item_id for i in reply.items]

        for n, c in enumerate(customers[:trials]):
            who = common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=c)
            shown = top(who)
            top(who)  # B holds the customer's state in memory now
            if not shown:
                continue
            event = events_pb2.Event(
                event_id=f"fresh-{n}-{time.time_ns()}",
                channel=common_pb2.CHANNEL_WEB,
                type=common_pb2.EVENT_TYPE_PURCHASE,
                item_id=shown[0],
                identifiers=[who],
            )
            track.Track(events_pb2.TrackRequest(event=event), timeout=10, metadata=a.metadata)
            acked = time.perf_counter()
            if shown[0] in top(who, "a"):
                continue  # bought again when due (a consumable): no effect to wait for, on A either
            while shown[0] in top(who):
                if time.perf_counter() - acked > 10:
                    raise RuntimeError(f"B still offers {shown[0]} to {c} 10 s after A acknowledged it")
            seconds.append(time.perf_counter() - acked)
    return seconds


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fleet", description=__doc__)
    parser.add_argument("--toy", action="store_true", help="tiny sizes, to check the benchmark runs")
    parser.add_argument("--work", type=Path, help="use (and keep) this folder; a world there is reused")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds measured per latency run")
    parser.add_argument("--trials", type=int, default=200, help="freshness trials (one customer each)")
    args = parser.parse_args(argv)
    items, customers, sample = (300, 150, 50) if args.toy else (20_000, 10_000, 1_000)
    duration, warmup = (1.0, 0.3) if args.toy else (args.duration, 2.0)
    trials = min(args.trials, 20) if args.toy else args.trials
    conditions = Conditions.now()
    work = args.work or Path(tempfile.mkdtemp(prefix="seenext-fleet-"))
    data = work / "world"
    if not (data / "seenext.db").exists():
        print(f"world: {items:,} items, {customers:,} customers", file=sys.stderr, flush=True)
        world.build(data, items, customers)
    if not (data / "models" / "CURRENT").exists():
        print("training", file=sys.stderr, flush=True)
        retrain.measure(data, **({"epochs": 2} if args.toy else {}))
    with Seenext(world.settings_for(data)) as service:
        known = world.known_customers(service, sample)
        events = service.count_events()
    print("latency: before and after", file=sys.stderr, flush=True)
    lat = latency(data, known, 10, duration, warmup)
    print("freshness across two replicas", file=sys.stderr, flush=True)
    fresh = np.array(freshness(data, known, 10, trials)) * 1000.0
    conditions.finish()

    print("# Fleet: Recommend beside the no-op, and freshness across replicas\n")
    print("\n".join(conditions.lines()))
    print(f"\nWorld: {items:,} items, {customers:,} demo customers, {events:,} events; k=10, channel WEB,")
    print(
        f"{len(known):,} known customers by CUSTOMER_ID; {duration:.0f} s measured per run after "
        f"{warmup:.0f} s"
    )
    print("warm-up; one request in flight, one client process; both servers `python -m server serve`.\n")
    print("| | no-op p50 ms | Recommend p50 ms | ratio | Recommend p99 ms |")
    print("| --- | --- | --- | --- | --- |")
    for label, what in (("before", "one statement per request"), ("after", "states in memory")):
        noop, r = lat[f"{label}_noop_p50_ms"], lat[f"{label}_recommend_p50_ms"]
        p99 = lat[f"{label}_recommend_p99_ms"]
        print(f"| {label} ({what}) | {noop:.3f} | {r:.3f} | {r / noop:.2f}x | {p99:.3f} |")
    if len(fresh):
        print(
            f"\nFreshness, Track on A -> effect on B ({len(fresh)} trials, one SQLite file, feed polled "
            f"every 0.1 s): p50 {np.percentile(fresh, 50):.0f} ms, p99 {np.percentile(fresh, 99):.0f} ms, "
            f"max {fresh.max():.0f} ms"
        )
    if not args.work:
        print(f"\n(data in {work}; remove it when done)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
