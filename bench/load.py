"""Load generators: gRPC clients in their own processes, closed-loop or open-loop.

Closed loop: each worker keeps `concurrency` requests in flight, sending the next as one returns;
latency is measured per request, throughput is what completes in the window.
Open loop: each worker sends on a fixed schedule whatever the replies do, and latency is measured
from the *scheduled* send time, so a stall delays every request behind it in the figures too
(no coordinated omission). Requests are pre-serialised bytes and replies are not parsed, so the
clients spend as little CPU as they can — they still share the machine's cores with the server,
which `LoadResult.client_cpu` reports.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from queue import Empty

import numpy as np

from bench.stats import Latency

START_SLACK = 0.5  # seconds between "go" and the start of the warm-up, so every worker starts together


@dataclass(frozen=True)
class WorkerSpec:
    target: str
    method: str  # e.g. "/seenext.v1.RecommendationService/Recommend"
    payloads: Sequence[bytes]  # serialised requests, taken in a seeded random order
    warmup: float
    duration: float
    concurrency: int = 1  # closed loop: requests in flight in this worker
    rate: float = 0.0  # open loop: requests per second of this worker (0 = closed loop)
    phase: float = 0.0  # open loop: offset of this worker's schedule, seconds
    channels: int = 1  # separate connections (SO_REUSEPORT spreads connections, not calls)
    seed: int = 0
    timeout: float = 10.0
    metadata: tuple[tuple[str, str], ...] = ()  # e.g. the API key


@dataclass
class WorkerResult:
    latencies: np.ndarray  # seconds, of the requests sent (or scheduled) in the window, failed ones too
    completed: int  # requests completed inside the window
    errors: dict[str, int]  # failed requests of the window by status code
    cpu_seconds: float  # this client's CPU time over the window
    send_lag: np.ndarray = field(default_factory=lambda: np.zeros(0))  # open loop: sent minus scheduled


@dataclass(frozen=True)
class LoadResult:
    mode: str  # "closed" or "open"
    concurrency: int
    rate: float
    client_processes: int
    latency: Latency
    client_cpu: float  # cores used by the load generators during the window
    server_cpu: tuple[float, ...]  # cores used by each serving process during the window
    send_lag_p99_ms: float = 0.0
    error_codes: dict[str, int] = field(default_factory=dict)


def run_load(
    target: str,
    method: str,
    payloads: Sequence[bytes],
    *,
    duration: float,
    warmup: float,
    concurrency: int = 0,
    rate: float = 0.0,
    client_processes: int = 1,
    channels: int = 1,
    seed: int = 7,
    server_cpu: object = None,
    metadata: tuple[tuple[str, str], ...] = (),
) -> LoadResult:
    """Runs `client_processes` workers together (closed loop if `rate` is 0) and merges their figures.

    `server_cpu`, when given, is a callable returning {pid: cpu seconds} of the serving processes.
    """
    if (concurrency > 0) == (rate > 0):
        raise ValueError(f"give either concurrency or rate, got concurrency={concurrency} rate={rate}")
    procs = max(1, min(client_processes, concurrency) if concurrency else client_processes)
    specs = []
    for w in range(procs):
        share = concurrency // procs + (1 if w < concurrency % procs else 0) if concurrency else 0
        specs.append(
            WorkerSpec(
                target,
                method,
                payloads,
                warmup,
                duration,
                concurrency=share,
                rate=rate / procs if rate else 0.0,
                phase=w / rate if rate else 0.0,
                channels=channels,
                seed=seed + w,
                metadata=metadata,
            )
        )
    ctx = mp.get_context("spawn")  # a fresh interpreter: gRPC must not be forked after use
    ready: mp.Queue = ctx.Queue()
    results: mp.Queue = ctx.Queue()
    gos = [ctx.Queue() for _ in specs]
    workers = [
        ctx.Process(target=_worker_main, args=(s, ready, g, results), daemon=True)
        for s, g in zip(specs, gos, strict=True)
    ]
    for p in workers:
        p.start()
    try:
        _wait_ready(ready, workers)
        begin = time.monotonic() + START_SLACK
        for g in gos:
            g.put(begin)
        start, end = begin + warmup, begin + warmup + duration
        cpu_of = server_cpu if callable(server_cpu) else None
        _sleep_until(start)
        cpu0 = cpu_of() if cpu_of else {}
        _sleep_until(end)
        cpu1 = cpu_of() if cpu_of else {}
        parts: list[WorkerResult] = []
        for _ in workers:
            part = results.get(timeout=duration + warmup + 120)
            if isinstance(part, str):
                raise RuntimeError(f"a load worker failed: {part}")
            parts.append(part)
    finally:
        for proc in workers:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
    lat = np.concatenate([p.latencies for p in parts]) if parts else np.zeros(0)
    errors: dict[str, int] = {}
    for part in parts:
        for code, n in part.errors.items():
            errors[code] = errors.get(code, 0) + n
    summary = Latency.of(lat, duration, errors=sum(errors.values()))
    completed = sum(p.completed for p in parts)
    summary = Latency(
        completed,
        duration,
        completed / duration,
        summary.p50_ms,
        summary.p90_ms,
        summary.p99_ms,
        summary.max_ms,
        summary.errors,
    )
    lag = np.concatenate([p.send_lag for p in parts]) if parts else np.zeros(0)
    return LoadResult(
        mode="open" if rate else "closed",
        concurrency=concurrency,
        rate=rate,
        client_processes=procs,
        latency=summary,
        client_cpu=sum(p.cpu_seconds for p in parts) / duration,
        server_cpu=tuple((cpu1[pid] - cpu0.get(pid, 0.0)) / duration for pid in sorted(cpu1)),
        send_lag_p99_ms=float(np.percentile(lag, 99) * 1000) if len(lag) else 0.0,
        error_codes=errors,
    )


def _wait_ready(ready: mp.Queue, workers: list, timeout: float = 120.0) -> None:
    """Every worker connected, or the reason one did not (a worker that died is noticed at once)."""
    deadline = time.monotonic() + timeout
    waiting = len(workers)
    while waiting:
        try:
            msg = ready.get(timeout=0.5)
        except Empty:
            dead = [p for p in workers if p.exitcode is not None]
            if dead:
                raise RuntimeError(
                    f"a load worker exited with {dead[0].exitcode} before it was ready"
                ) from None
            if time.monotonic() > deadline:
                raise TimeoutError(f"load workers not ready after {timeout:.0f}s") from None
            continue
        if isinstance(msg, str):
            raise RuntimeError(f"a load worker failed to start: {msg}")
        waiting -= 1


def _sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        time.sleep(delay)


def _worker_main(spec: WorkerSpec, ready: mp.Queue, go: mp.Queue, results: mp.Queue) -> None:
    try:
        result = asyncio.run(_work(spec, ready, go))
    except BaseException as exc:
        with contextlib.suppress(Exception):
            ready.put_nowait(f"{type(exc).__name__}: {exc}")
        results.put(f"{type(exc).__name__}: {exc}")
        return
    results.put(result)


async def _work(spec: WorkerSpec, ready: mp.Queue, go: mp.Queue) -> WorkerResult:
    import grpc  # imported in the worker only

    channels = [
        grpc.aio.insecure_channel(spec.target, options=[("grpc.use_local_subchannel_pool", 1)])
        for _ in range(spec.channels)
    ]
    calls = [
        ch.unary_unary(spec.method, None, None) for ch in channels
    ]  # bytes in, bytes out: no (de)serialising
    for ch in channels:
        await asyncio.wait_for(ch.channel_ready(), timeout=30)
    order = list(spec.payloads)
    random.Random(spec.seed).shuffle(order)
    ready.put(True)
    begin = await asyncio.get_running_loop().run_in_executor(None, go.get)
    start, end = begin + spec.warmup, begin + spec.warmup + spec.duration
    await asyncio.sleep(max(0.0, begin - time.monotonic()))
    try:
        if spec.rate > 0:
            return await _open_loop(spec, calls, order, begin, start, end)
        return await _closed_loop(spec, calls, order, start, end)
    finally:
        for ch in channels:
            await ch.close(None)


async def _closed_loop(
    spec: WorkerSpec, calls: list, order: list[bytes], start: float, end: float
) -> WorkerResult:
    lat: list[float] = []
    counts = {"completed": 0, "next": 0}
    errors: dict[str, int] = {}
    cpu: dict[str, float] = {}

    async def one_stream(n: int) -> None:
        call = calls[n % len(calls)]
        while True:
            t0 = time.monotonic()
            if t0 >= end:
                return
            i = counts["next"]
            counts["next"] = i + 1
            failure = await _attempt(call, order[i % len(order)], spec)
            ok = failure is None
            t1 = time.monotonic()
            if t0 >= start:
                lat.append(t1 - t0)  # a failed call's wait is counted too
                if failure is not None:
                    errors[failure] = errors.get(failure, 0) + 1
            if ok and start <= t1 <= end:
                counts["completed"] += 1

    async def cpu_marks() -> None:
        await asyncio.sleep(max(0.0, start - time.monotonic()))
        cpu["start"] = time.process_time()
        await asyncio.sleep(max(0.0, end - time.monotonic()))
        cpu["end"] = time.process_time()

    await asyncio.gather(cpu_marks(), *(one_stream(n) for n in range(spec.concurrency)))
    return WorkerResult(np.array(lat), counts["completed"], errors, cpu["end"] - cpu["start"])


async def _open_loop(
    spec: WorkerSpec, calls: list, order: list[bytes], begin: float, start: float, end: float
) -> WorkerResult:
    lat: list[float] = []
    lag: list[float] = []
    counts = {"completed": 0}
    errors: dict[str, int] = {}
    pending: set[asyncio.Task] = set()
    interval = 1.0 / spec.rate
    cpu: dict[str, float] = {}

    async def one(call: object, payload: bytes, scheduled: float) -> None:
        sent = time.monotonic()
        failure = await _attempt(call, payload, spec)
        ok = failure is None
        done = time.monotonic()
        if scheduled >= start:
            lat.append(done - scheduled)  # from the scheduled time: a late send counts against us
            lag.append(sent - scheduled)
            if failure is not None:
                errors[failure] = errors.get(failure, 0) + 1
        if ok and start <= done <= end:
            counts["completed"] += 1

    i = 0
    while True:
        scheduled = begin + spec.phase + i * interval
        if scheduled >= end:
            break
        now = time.monotonic()
        if scheduled > now:
            await asyncio.sleep(scheduled - now)
        if "start" not in cpu and scheduled >= start:
            cpu["start"] = time.process_time()
        task = asyncio.create_task(one(calls[i % len(calls)], order[i % len(order)], scheduled))
        pending.add(task)
        task.add_done_callback(pending.discard)
        i += 1
    await asyncio.sleep(max(0.0, end - time.monotonic()))
    cpu["end"] = time.process_time()
    if pending:
        await asyncio.wait(pending, timeout=spec.timeout + 1)
    if pending:  # cannot happen with a deadline on every call; never dropped silently if it does
        errors["UNFINISHED"] = len(pending)
    return WorkerResult(
        np.array(lat), counts["completed"], errors, cpu["end"] - cpu.get("start", cpu["end"]), np.array(lag)
    )


async def _attempt(call: object, payload: bytes, spec: WorkerSpec) -> str | None:
    """None when the call succeeds, else its status code name (DEADLINE_EXCEEDED, UNAVAILABLE, …)."""
    try:
        await call(payload, timeout=spec.timeout, metadata=spec.metadata)  # type: ignore[operator]
    except Exception as exc:
        code = getattr(exc, "code", None)
        return code().name if callable(code) else type(exc).__name__
    return None


__all__ = ["LoadResult", "WorkerSpec", "run_load"]
