"""Recommend through gRPC beside the transport floor (grpc.health.v1 Health/Check on the same server).

The server runs as `python -m server serve` in its own process(es) on the benchmark world; the
requests are Recommend(k) for known customers drawn with a fixed seed, by CUSTOMER_ID, channel WEB.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from bench.load import LoadResult, run_load
from bench.serving import ServerProcess, free_port
from protos.seenext.v1 import common_pb2, recommendation_pb2, recommendation_pb2_grpc

RECOMMEND = "/seenext.v1.RecommendationService/Recommend"
HEALTH = "/grpc.health.v1.Health/Check"
HEALTH_REQUEST = b""  # HealthCheckRequest(service="") serialises to nothing


@dataclass(frozen=True)
class Run:
    """One load run: what was called, how the load was made, how many processes served it."""

    label: str  # "Recommend" or "Health/Check (no-op)"
    server_processes: int
    result: LoadResult


def requests(customers: Sequence[str], k: int) -> list[bytes]:
    return [
        recommendation_pb2.RecommendRequest(
            who=common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=c),
            channel=common_pb2.CHANNEL_WEB,
            k=k,
        ).SerializeToString()
        for c in customers
    ]


def check_answers(
    target: str, customers: Sequence[str], k: int, metadata: tuple[tuple[str, str], ...] = ()
) -> float:
    """Share of sampled customers answered personally (their model vector is scored on every such
    request; a short list may hold only what they looked at) with k distinct items.

    (The load's replies are not parsed, so this is checked on a sample.)"""
    good = 0
    sample = list(customers[:20])
    with grpc.insecure_channel(target) as ch:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(ch)
        for c in sample:
            reply = stub.Recommend(
                recommendation_pb2.RecommendRequest(
                    who=common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=c),
                    channel=common_pb2.CHANNEL_WEB,
                    k=k,
                ),
                timeout=10,
                metadata=metadata,
            )
            ids = [i.item_id for i in reply.items]
            # the home placement may lead with accessories of what they own and with what they looked at
            # and did not buy ("complements+looked_at+personalised"); a short list can be all looked-at
            personal = {"personalised", "looked_at"} & set(reply.strategy.split("+"))
            good += bool(personal) and len(ids) == k and len(set(ids)) == k
    return good / len(sample)


def latency_runs(
    data_dir: Path,
    customers: Sequence[str],
    k: int,
    duration: float,
    warmup: float,
    concurrencies: Sequence[int] = (1, 8),
    client_processes: int = 2,
    with_metrics: bool = True,
    database_url: str = "",
) -> tuple[list[Run], float]:
    """One serving process: no-op and Recommend at each concurrency, back to back; then, with
    `with_metrics`, both at one in flight on a server with SEENEXT_METRICS_PORT set. `database_url`:
    the servers' store (empty: the SQLite file in `data_dir`).

    Returns (runs, personalised share)."""
    payloads = requests(customers, k)
    runs = []
    with ServerProcess(data_dir, database_url=database_url) as server:
        personalised = check_answers(server.target, customers, k, server.metadata)
        for c in concurrencies:
            for label, result in noop_and_recommend(server, payloads, duration, warmup, c, client_processes):
                runs.append(Run(label, 1, result))
    if with_metrics:  # the same pair at one in flight with the Prometheus endpoint on: what counting costs
        with ServerProcess(data_dir, metrics_port=free_port(), database_url=database_url) as server:
            for label, result in noop_and_recommend(server, payloads, duration, warmup):
                runs.append(Run(f"{label}, metrics on", 1, result))
    return runs, personalised


def warm_states(target: str, payloads: Sequence[bytes], metadata: tuple[tuple[str, str], ...] = ()) -> None:
    """One Recommend per distinct request, before a measured run: every sampled customer's state is then
    in the server's memory (models/serving/state_cache.py), as a serving process's steady state holds its
    working set, instead of the first ~1,000 calls of a freshly started server reading it from the store.

    Without it, a run of a few thousand calls over 1,000 customers measured a mix: a third to a half of
    its calls were first reads (~0.6 ms more each on SQLite), so its p50 depended on the run's length."""
    with grpc.insecure_channel(target) as ch:
        call = ch.unary_unary(RECOMMEND, None, None)
        for body in dict.fromkeys(payloads):
            call(body, timeout=10, metadata=metadata)


def noop_and_recommend(
    server: ServerProcess,
    payloads: Sequence[bytes],
    duration: float,
    warmup: float,
    concurrency: int = 1,
    client_processes: int = 1,
) -> list[tuple[str, LoadResult]]:
    """The no-op (Health/Check) then Recommend on one server, back to back, under the same load, once the
    requests' customer states are in the server's memory (`warm_states`)."""
    warm_states(server.target, payloads, server.metadata)
    out = []
    for label, method, body in (
        ("Health/Check (no-op)", HEALTH, [HEALTH_REQUEST]),
        ("Recommend", RECOMMEND, payloads),
    ):
        result = run_load(
            server.target,
            method,
            body,
            duration=duration,
            warmup=warmup,
            concurrency=concurrency,
            client_processes=client_processes,
            server_cpu=server.cpu_seconds,
            metadata=server.metadata,
        )
        server.check_alive()
        out.append((label, result))
    return out


def throughput_runs(
    data_dir: Path,
    customers: Sequence[str],
    k: int,
    duration: float,
    warmup: float,
    concurrency: int = 16,
    rate: float = 1000.0,
    client_processes: int = 2,
    channels: int = 4,
    server_processes: Sequence[int] = (1, 2),
    open_loop_processes: Sequence[int] = (2,),
) -> list[Run]:
    """Most Recommend QPS closed-loop for 1 and 2 serving processes, then p99 at a fixed open-loop rate
    (two processes only by default: one cannot keep up with 1,000 QPS, and its queue says nothing new)."""
    payloads = requests(customers, k)
    runs = []
    for n in server_processes:
        with ServerProcess(data_dir, processes=n) as server:
            closed = run_load(
                server.target,
                RECOMMEND,
                payloads,
                duration=duration,
                warmup=warmup,
                concurrency=concurrency,
                client_processes=client_processes,
                channels=channels,
                server_cpu=server.cpu_seconds,
                metadata=server.metadata,
            )
            server.check_alive()
            runs.append(Run("Recommend", n, closed))
            if n not in open_loop_processes:
                continue
            opened = run_load(
                server.target,
                RECOMMEND,
                payloads,
                duration=duration,
                warmup=warmup,
                rate=rate,
                client_processes=client_processes,
                channels=channels,
                server_cpu=server.cpu_seconds,
                metadata=server.metadata,
            )
            server.check_alive()
            runs.append(Run("Recommend", n, opened))
    return runs
