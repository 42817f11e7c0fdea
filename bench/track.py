"""TrackBatch events/s through gRPC, beside the same work without gRPC and without the service.

Three figures over the same events, each into a fresh SQLite file with the product's schema,
indexes and pragmas (WAL, synchronous=FULL):
- `TrackBatch` RPCs of `batch` events from a client process, one call in flight, to a server process;
- `EventStore.track_batch` in process (validation, idempotency check, identity resolution, insert);
- a bare `executemany` INSERT of the very rows the service stored, one transaction per batch.
The events are the demo retailer's (several identifiers each, so identity resolution is real work).
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

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

    @property
    def grpc_eps(self) -> float:
        return self.events / self.grpc_seconds

    @property
    def store_eps(self) -> float:
        return self.events / self.store_seconds

    @property
    def bare_eps(self) -> float:
        return self.events / self.bare_seconds


def demo_events(n: int, seed: int = 11) -> list[Event]:
    """The first `n` events (in time order) of a demo retailer big enough to have them."""
    customers = max(20, n // 40)
    while True:
        events = generator.generate(generator.DemoConfig(customers=customers, items=2000, seed=seed)).events
        if len(events) >= n:
            return events[:n]
        customers *= 2


def measure(work_dir: Path, events: int = 200_000, batch: int = 1000) -> TrackFigures:
    evs = demo_events(events)
    payloads = _serialise(evs, batch)

    grpc_dir = Path(tempfile.mkdtemp(prefix="track-grpc-", dir=work_dir))
    with ServerProcess(grpc_dir) as server:
        ctx = mp.get_context("spawn")
        with ctx.Pool(1) as pool:
            seconds, cpu, accepted = pool.apply(_send_all, (server.target, payloads, server.metadata))
    if accepted != len(evs):
        raise RuntimeError(f"TrackBatch accepted {accepted} of {len(evs)} events")

    store_dir = Path(tempfile.mkdtemp(prefix="track-store-", dir=work_dir))
    service = Seenext(settings_for(store_dir))
    try:
        started = time.perf_counter()
        for i in range(0, len(evs), batch):
            service.track_batch(evs[i : i + batch])
        store_seconds = time.perf_counter() - started
    finally:
        service.close()

    bare_seconds = _bare_insert(
        grpc_dir / "seenext.db", Path(tempfile.mkdtemp(prefix="track-bare-", dir=work_dir)), batch
    )
    return TrackFigures(len(evs), batch, seconds, cpu, store_seconds, bare_seconds, sync_full=True)


def _serialise(events: Sequence[Event], batch: int) -> list[bytes]:
    from protos.seenext.v1 import events_pb2
    from server import convert

    def msg(ev: Event) -> events_pb2.Event:
        m = events_pb2.Event(
            event_id=ev.event_id,
            identifiers=[convert.identifier_msg(i) for i in ev.identifiers],
            item_id=ev.item_id,
            quantity=ev.quantity,
            price=ev.price,
            store_id=ev.store_id,
            order_id=ev.order_id,
            attributes=ev.attributes,
        )
        m.channel = convert.channel_value(ev.channel)  # type: ignore[assignment]  # enum fields take ints
        m.type = convert.event_type_value(ev.type)  # type: ignore[assignment]
        if ev.occurred_at is not None:
            m.occurred_at.FromNanoseconds(int(ev.occurred_at * 1e9))
        return m

    return [
        events_pb2.TrackBatchRequest(events=[msg(e) for e in events[i : i + batch]]).SerializeToString()
        for i in range(0, len(events), batch)
    ]


def _send_all(
    target: str, payloads: list[bytes], metadata: tuple[tuple[str, str], ...]
) -> tuple[float, float, int]:
    """In a client process: every batch once, in order, one call in flight. (seconds, cpu, accepted)."""
    import grpc

    from protos.seenext.v1 import events_pb2

    with grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 * 1024 * 1024)]) as ch:
        call = ch.unary_unary(
            "/seenext.v1.EventService/TrackBatch", None, events_pb2.TrackBatchResponse.FromString
        )
        grpc.channel_ready_future(ch).result(timeout=30)
        accepted = 0
        cpu0, started = time.process_time(), time.perf_counter()
        for p in payloads:
            reply = call(p, timeout=120, metadata=metadata)
            if reply.rejected:
                raise RuntimeError(f"TrackBatch rejected {len(reply.rejected)}: {reply.rejected[0]}")
            accepted += reply.accepted
        return time.perf_counter() - started, time.process_time() - cpu0, accepted


def _bare_insert(source: Path, folder: Path, batch: int) -> float:
    """The rows the service stored, inserted again into a fresh file with the same schema and pragmas."""
    src = dbmod.connect(source)
    rows = src.execute(f"SELECT {_COLUMNS} FROM events ORDER BY seq").fetchall()
    src.close()
    conn = dbmod.connect(folder / "bare.db", sync_full=True)
    migrations.migrate(conn)
    sql = f"INSERT INTO events ({_COLUMNS}) VALUES ({', '.join('?' * 13)})"
    started = time.perf_counter()
    for i in range(0, len(rows), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(sql, rows[i : i + batch])
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return seconds
