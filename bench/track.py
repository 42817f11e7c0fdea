"""TrackBatch events/s through gRPC, beside the same work without gRPC and without the service.

Four figures over the same events, each into a fresh store with the product's schema and indexes:
- `TrackBatch` RPCs of `batch` events from a client process, one call in flight, to a server process;
- the same RPCs with `inflight` calls in flight (2 by default: a retailer's bulk importer sends several
  batches at once, and the machine has two cores), into a fresh store of their own: the server
  converts and validates one batch while the database inserts and commits another;
- `EventStore.track_batch` in process (validation, idempotency check, identity resolution, insert);
- a bare `executemany` INSERT of the very rows the service stored, one transaction per batch.
The events are the demo retailer's (several identifiers each, so identity resolution is real work), with
the ids a retailer's systems send: random 128-bit hex, as a uuid4 from a web shop or the hash an importer
makes (`stable_id`), not the demo's sequential `ev-00000001`. The difference is the database's: a unique
index on ids in sending order grows at its end, on random ids every event lands on a page of its own, so
a batch's commit writes and syncs more pages (in process, SQLite, 200,000 events: the COMMIT's median
7-8 -> 12-13 ms a batch of 1,000, 12-20% fewer events/s; docs/performance.md).

The store is a fresh SQLite file each time (WAL, synchronous=FULL), or with `database_url` a fresh
database on that PostgreSQL server each time (made with CREATE DATABASE beside the one the URL names,
dropped afterwards; the schema is made by the product's migrations, through its database-URL setting).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench.serving import ServerProcess
from bench.world import settings_for
from models.demo import generator
from models.domain import Event
from models.service import Seenext
from models.storage.sqlite import connection as dbmod
from models.storage.sqlite import migrations

_COLUMNS = (
    "event_id, customer_id, channel, type, item_id, quantity, price, store_id, order_id,"
    " recommendation_id, occurred_at, received_at, attributes"
)


@dataclass(frozen=True)
class TrackFigures:
    events: int
    batch: int
    grpc_seconds: float
    grpc_client_cpu_seconds: float
    store_seconds: float
    bare_seconds: float
    sync_full: bool
    backend: str = "sqlite"  # or "postgresql"
    grpc_server_cpu_seconds: float = 0.0  # the serving process's CPU while the batches went through
    bare_cpu_seconds: float = 0.0  # this process's CPU during the bare insert (the database's is not in it)
    # The same RPCs with `inflight` calls in flight at once (0: not measured).
    inflight: int = 0
    inflight_seconds: float = 0.0
    inflight_server_cpu_seconds: float = 0.0

    @property
    def grpc_eps(self) -> float:
        return self.events / self.grpc_seconds

    @property
    def store_eps(self) -> float:
        return self.events / self.store_seconds

    @property
    def bare_eps(self) -> float:
        return self.events / self.bare_seconds

    @property
    def ratio(self) -> float:
        """TrackBatch through gRPC / the bare insert, events/s: what the service adds, in one number that
        the machine's load moves less than either figure."""
        return self.grpc_eps / self.bare_eps

    @property
    def server_us_per_event(self) -> float:
        """The serving process's CPU per event (decode, convert, validate, resolve, insert, commit)."""
        return self.grpc_server_cpu_seconds / self.events * 1e6

    @property
    def inflight_eps(self) -> float:
        """events/s through gRPC with `inflight` calls in flight (nan when not measured)."""
        return self.events / self.inflight_seconds if self.inflight_seconds else float("nan")

    @property
    def inflight_server_us_per_event(self) -> float:
        return self.inflight_server_cpu_seconds / self.events * 1e6


def demo_events(n: int, seed: int = 11) -> list[Event]:
    """The first `n` events (in time order) of a demo retailer big enough to have them, each with a random
    32-hex-digit event_id (seeded: the same ids every run) in place of the demo's sequential one."""
    customers = max(20, n // 40)
    while True:
        events = generator.generate(generator.DemoConfig(customers=customers, items=2000, seed=seed)).events
        if len(events) >= n:
            break
        customers *= 2
    rng = random.Random(seed)
    return [replace(e, event_id=f"{rng.getrandbits(128):032x}") for e in events[:n]]


def measure(
    work_dir: Path, events: int = 200_000, batch: int = 1000, database_url: str = "", inflight: int = 2
) -> TrackFigures:
    """`database_url`: empty for SQLite files in `work_dir`, or postgresql://… (a server the caller runs).
    `inflight`: calls in flight of the second gRPC figure (0 or 1: not measured)."""
    evs = demo_events(events)
    payloads = _serialise(evs, batch)

    with _fresh_store(work_dir, "grpc", database_url) as (grpc_dir, grpc_url):
        seconds, cpu, server_cpu = _through_grpc(grpc_dir, grpc_url, payloads, len(evs), 1)
        rows = _stored_rows(grpc_dir, grpc_url)

    inflight_seconds = inflight_server_cpu = 0.0
    if inflight > 1:
        with _fresh_store(work_dir, "inflight", database_url) as (many_dir, many_url):
            inflight_seconds, _, inflight_server_cpu = _through_grpc(
                many_dir, many_url, payloads, len(evs), inflight
            )
            # No event lost or stored twice (which customer an event lands on may differ: batches in
            # flight at once may commit in another order, and the identity graph's guard is ordered).
            ids = sorted(r[0] for r in _stored_rows(many_dir, many_url))
            if ids != sorted(r[0] for r in rows):
                raise RuntimeError(f"{inflight} calls in flight stored other events than one at a time")

    with _fresh_store(work_dir, "store", database_url) as (store_dir, store_url):
        service = Seenext(settings_for(store_dir, **_url_setting(store_url)))
        try:
            started = time.perf_counter()
            for i in range(0, len(evs), batch):
                service.track_batch(evs[i : i + batch])
            store_seconds = time.perf_counter() - started
        finally:
            service.close()

    with _fresh_store(work_dir, "bare", database_url) as (bare_dir, bare_url):
        bare_seconds, bare_cpu = _bare_insert(rows, bare_dir, bare_url, batch)
    return TrackFigures(
        len(evs),
        batch,
        seconds,
        cpu,
        store_seconds,
        bare_seconds,
        sync_full=True,
        backend="postgresql" if database_url else "sqlite",
        grpc_server_cpu_seconds=server_cpu,
        bare_cpu_seconds=bare_cpu,
        inflight=inflight if inflight > 1 else 0,
        inflight_seconds=inflight_seconds,
        inflight_server_cpu_seconds=inflight_server_cpu,
    )


def _through_grpc(
    folder: Path,
    url: str,
    payloads: list[bytes],
    events: int,
    inflight: int,
    processes: int = 1,
    connections: int = 1,
) -> tuple[float, float, float]:
    """Every payload through a fresh server of `processes` processes from a client process, `inflight`
    calls at once over `connections` connections. (seconds, client CPU seconds, server CPU seconds)."""
    with ServerProcess(folder, processes, **_url_setting(url)) as server:
        ctx = mp.get_context("spawn")
        with ctx.Pool(1) as pool:
            pool.apply(_ping, (server.target,))  # the client's imports and connection, before the clock
            server_cpu0 = sum(server.cpu_seconds().values())
            seconds, cpu, accepted = pool.apply(
                _send_all, (server.target, payloads, server.metadata, inflight, connections)
            )
            server_cpu = sum(server.cpu_seconds().values()) - server_cpu0
    if accepted != events:
        raise RuntimeError(f"TrackBatch accepted {accepted} of {events} events ({inflight} in flight)")
    return seconds, cpu, server_cpu


def _url_setting(url: str) -> dict[str, Any]:
    # The PostgreSQL backend's database-URL setting (models/settings.py `database_url`); none on SQLite.
    return {"database_url": url} if url else {}


@contextmanager
def _fresh_store(work_dir: Path, name: str, database_url: str) -> Iterator[tuple[Path, str]]:
    """A fresh data folder, and on PostgreSQL a fresh database beside the URL's (dropped at the end)."""
    folder = Path(tempfile.mkdtemp(prefix=f"track-{name}-", dir=work_dir))
    if not database_url:
        yield folder, ""
        return
    import psycopg  # only on PostgreSQL (the backend's own dependency)

    database = f"seenext_bench_{name}_{os.getpid()}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{database}"')
        admin.execute(f'CREATE DATABASE "{database}"')
    try:
        yield folder, urlsplit(database_url)._replace(path=f"/{database}").geturl()
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def _serialise(events: Sequence[Event], batch: int) -> list[bytes]:
    from protos.seenext.v1 import events_pb2
    from server import convert

    return [
        events_pb2.TrackBatchRequest(
            events=[convert.event_msg(e) for e in events[i : i + batch]]
        ).SerializeToString()
        for i in range(0, len(events), batch)
    ]


def _ping(target: str) -> None:
    import grpc

    with grpc.insecure_channel(target) as ch:
        grpc.channel_ready_future(ch).result(timeout=30)


def _send_all(
    target: str,
    payloads: list[bytes],
    metadata: tuple[tuple[str, str], ...],
    inflight: int = 1,
    connections: int = 1,
) -> tuple[float, float, int]:
    """In a client process: every batch once, in order, `inflight` calls at once (a new one sent as soon
    as one is answered), over `connections` connections taken in turn (one is what one channel makes;
    a server of several processes gets each connection in one of them). (seconds, cpu, accepted)."""
    import threading

    import grpc

    from protos.seenext.v1 import events_pb2

    options = [("grpc.max_send_message_length", 64 * 1024 * 1024)]
    if connections > 1:
        options.append(("grpc.use_local_subchannel_pool", 1))  # a connection of its own per channel
    channels = [grpc.insecure_channel(target, options=options) for _ in range(max(1, connections))]
    try:
        calls = [
            ch.unary_unary(
                "/seenext.v1.EventService/TrackBatch", None, events_pb2.TrackBatchResponse.FromString
            )
            for ch in channels
        ]
        for ch in channels:
            grpc.channel_ready_future(ch).result(timeout=30)
        accepted = 0

        def answered(reply: Any) -> int:
            if reply.rejected:
                raise RuntimeError(f"TrackBatch rejected {len(reply.rejected)}: {reply.rejected[0]}")
            return int(reply.accepted)

        cpu0, started = time.process_time(), time.perf_counter()
        if inflight <= 1:
            for n, p in enumerate(payloads):
                accepted += answered(calls[n % len(calls)](p, timeout=120, metadata=metadata))
        else:
            # A new call as soon as any is answered (the slot is freed by the answer's callback).
            slots = threading.Semaphore(inflight)
            futures = []
            for n, p in enumerate(payloads):
                slots.acquire()
                future = calls[n % len(calls)].future(p, timeout=120, metadata=metadata)
                future.add_done_callback(lambda _: slots.release())
                futures.append(future)
            accepted = sum(answered(f.result()) for f in futures)
        return time.perf_counter() - started, time.process_time() - cpu0, accepted
    finally:
        for ch in channels:
            ch.close()


def _stored_rows(folder: Path, database_url: str) -> list[tuple[Any, ...]]:
    """The events a run stored, as rows of the events table, in the order they were stored."""
    sql = f"SELECT {_COLUMNS} FROM events ORDER BY seq"
    if database_url:
        import psycopg

        with psycopg.connect(database_url) as conn:
            return list(conn.execute(sql).fetchall())
    src = dbmod.connect(folder / "seenext.db")
    try:
        return list(src.execute(sql).fetchall())
    finally:
        src.close()


def _bare_insert(
    rows: Sequence[tuple[Any, ...]], folder: Path, database_url: str, batch: int
) -> tuple[float, float]:
    """The rows the service stored, inserted again into a fresh store with the same schema (and, on
    SQLite, the same pragmas): one transaction per batch, as the service commits one per TrackBatch.
    (seconds, this process's CPU seconds)."""
    if database_url:
        import psycopg
        from psycopg.types.json import Jsonb

        Seenext(settings_for(folder, **_url_setting(database_url))).close()  # the product's migrations
        sql = f"INSERT INTO events ({_COLUMNS}) VALUES ({', '.join(['%s'] * 13)})"
        rows = [tuple(Jsonb(v) if isinstance(v, dict) else v for v in r) for r in rows]  # a jsonb column
        with psycopg.connect(database_url) as pg:
            cpu0, started = time.process_time(), time.perf_counter()
            for i in range(0, len(rows), batch):
                with pg.transaction(), pg.cursor() as cur:
                    cur.executemany(sql, rows[i : i + batch])
            return time.perf_counter() - started, time.process_time() - cpu0
    conn = dbmod.connect(folder / "bare.db", sync_full=True, writer=True)  # the service writer's pragmas
    migrations.migrate(conn)
    sql = f"INSERT INTO events ({_COLUMNS}) VALUES ({', '.join('?' * 13)})"
    cpu0, started = time.process_time(), time.perf_counter()
    for i in range(0, len(rows), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[i : i + batch])
        conn.execute("COMMIT")
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu0
    conn.close()
    return seconds, cpu
