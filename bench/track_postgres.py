"""TrackBatch on PostgreSQL (issue 11: >= 20,000 events/s), beside a bare insert of the same rows into
the same schema.

A throwaway PostgreSQL 15 cluster (tests/postgres.py) with a production server's durability: fsync
and synchronous commit on, so an acknowledged batch is on disk as with SQLite's synchronous=FULL.
Every figure gets a fresh database on it; the events are the demo retailer's (tracked with several
identifiers each, so identity resolution is real work). Figures, `events` in batches of `batch`:

- grpc: TrackBatch RPCs from a client process, one call in flight, to a `seenext serve` process;
  and again into a fresh database with `inflight` calls in flight (a bulk importer's way); with
  `--processes N` (N > 1) once more, to `SEENEXT_PROCESSES=N` over `inflight` connections (each
  process converts its own calls: no interpreter lock shared with the call holding the writers' lock);
- service: `Seenext.track_batch` in process (validation, idempotency, identity graph, insert);
- insert_new_events three ways: the storage call alone, on the rows the service stored (how
  models/storage/postgres/events.py chose binary COPY over one INSERT … unnest and pipelined rows);
- bare executemany and bare COPY: psycopg straight into `events`, one transaction per batch, no
  ON CONFLICT, no lock: what the database does with these rows when nothing else is asked of it.

    .venv/bin/python -m bench.track_postgres [--events 50000] [--batch 1000] [--inflight 2] [--processes 2]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg

from bench.track import _serialise, _through_grpc, demo_events
from bench.world import settings_for
from models.service import Seenext
from models.storage import open_storage
from models.storage.events import EventRow
from models.storage.postgres import events as pg_events
from models.storage.rows import EVENT_COLUMNS
from tests.postgres import Cluster


def _step(name: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {name}", flush=True)


def measure(
    events: int = 50_000, batch: int = 1_000, inflight: int = 2, processes: int = 1
) -> dict[str, float]:
    """events/s of every figure (see the module docstring)."""
    evs = demo_events(events)
    work = Path(tempfile.mkdtemp(prefix="track-pg-"))
    cluster = Cluster(durable=True)
    figures: dict[str, float] = {}
    try:
        payloads = _serialise(evs, batch)
        runs = [("grpc TrackBatch", 1, 1, 1)]
        if inflight > 1:
            runs.append((f"grpc TrackBatch, {inflight} calls in flight", inflight, 1, 1))
            if processes > 1:  # each process converts its own calls (its own interpreter lock)
                name = f"grpc TrackBatch, {inflight} in flight on {inflight} connections"
                runs.append((f"{name}, {processes} processes", inflight, processes, inflight))
        for n, (name, calls, serving, connections) in enumerate(runs):
            _step(name)
            folder = work / f"grpc-{n}"
            folder.mkdir()
            seconds, _, _ = _through_grpc(
                folder, cluster.database(), payloads, len(evs), calls, serving, connections
            )
            figures[name] = len(evs) / seconds

        url = cluster.database()
        _step("Seenext.track_batch in process")
        service = Seenext(settings_for(work / "service", database_url=url))
        try:
            started = time.perf_counter()
            for i in range(0, len(evs), batch):
                service.track_batch(evs[i : i + batch])
            figures["service track_batch"] = len(evs) / (time.perf_counter() - started)
        finally:
            service.close()
        rows = _stored_rows(url)

        for way, name in (
            ("copy", "insert_new_events: binary COPY into events (the product's)"),
            ("unnest", "insert_new_events: one INSERT … SELECT FROM unnest(arrays) ON CONFLICT"),
            ("rows", "insert_new_events: one INSERT per row ON CONFLICT, pipelined executemany"),
        ):
            _step(name)
            figures[name] = len(rows) / _timed_insert_events(cluster.database(), rows, batch, way)
        _step("bare inserts")
        figures["bare executemany"] = len(rows) / _timed_bare(cluster.database(), rows, batch, _bare_many)
        figures["bare COPY"] = len(rows) / _timed_bare(cluster.database(), rows, batch, _bare_copy)
    finally:
        cluster.stop()
    return figures


def _stored_rows(url: str) -> list[EventRow]:
    with psycopg.connect(url) as conn:
        found = conn.execute(f"SELECT {EVENT_COLUMNS} FROM events ORDER BY seq").fetchall()
    return [
        EventRow(e, c, ch, t, i, int(q), float(p), s, o, rec, float(at), float(rcv), None)
        for e, c, ch, t, i, q, p, s, o, rec, at, rcv, _ in found
    ]


def _timed_insert_events(url: str, rows: list[EventRow], batch: int, way: str) -> float:
    storage = open_storage(Path("unused"), database_url=url)
    kept = pg_events.WAY
    pg_events.WAY = way
    try:
        started = time.perf_counter()
        for i in range(0, len(rows), batch):
            storage.insert_new_events(rows[i : i + batch])
        return time.perf_counter() - started
    finally:
        pg_events.WAY = kept
        storage.close()


def _plain(rows: list[EventRow]) -> list[tuple[Any, ...]]:
    return [
        (r.event_id, r.customer_id, r.channel, r.type, r.item_id, r.quantity, r.price, r.store_id,
         r.order_id, r.recommendation_id, r.occurred_at, r.received_at, None)
        for r in rows
    ]  # fmt: skip


def _bare_many(conn: psycopg.Connection[Any], chunk: list[tuple[Any, ...]]) -> None:
    marks = ", ".join(["%s"] * 13)
    with conn.cursor() as cur:
        cur.executemany(f"INSERT INTO events ({EVENT_COLUMNS}) VALUES ({marks})", chunk)


def _bare_copy(conn: psycopg.Connection[Any], chunk: list[tuple[Any, ...]]) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY events ({EVENT_COLUMNS}) FROM STDIN") as copy:
        for row in chunk:
            copy.write_row(row)


def _timed_bare(
    url: str, rows: list[EventRow], batch: int, insert: Callable[[psycopg.Connection[Any], list[Any]], None]
) -> float:
    open_storage(Path("unused"), database_url=url).close()  # the same schema and indexes
    values = _plain(rows)
    with psycopg.connect(url) as conn:
        started = time.perf_counter()
        for i in range(0, len(values), batch):
            with conn.transaction():
                insert(conn, values[i : i + batch])
        return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--inflight", type=int, default=2, help="calls in flight of the second gRPC figure")
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="serving processes of a third gRPC figure (2 or more: measured)",
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a stopped run still removes its cluster
    figures = measure(args.events, args.batch, args.inflight, args.processes)
    print(f"\nPostgreSQL 15, durable (fsync on), {args.events:,} demo events in batches of {args.batch:,}\n")
    print("| path | events/s |\n| --- | ---: |")
    for name, eps in figures.items():
        print(f"| {name} | {eps:,.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
