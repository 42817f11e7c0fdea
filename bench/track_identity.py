"""TrackBatch throughput with the identity graph: the demo retailer's events in batches of 1,000.

    .venv/bin/python bench/track_identity.py [--customers 1000] [--runs 3] [--grpc]

Prints events/s for a fresh store (every customer new, merges included), for the same events again
(every identifier known), and with --grpc through a server process with API keys on. Wall time,
fsync per batch as served; on a shared machine compare runs made in the same minutes.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import re
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.demo import generator
from models.domain import Event
from models.service import Seenext
from models.settings import Settings

BATCH = 1000


def timed_batches(svc: Seenext, events: list[Event]) -> float:
    started = time.perf_counter()
    for i in range(0, len(events), BATCH):
        svc.track_batch(events[i : i + BATCH])
    return len(events) / (time.perf_counter() - started)


def facade(events: list[Event], runs: int) -> None:
    fresh, known = [], []
    for run in range(runs):
        svc = Seenext(Settings(data_dir=Path(tempfile.mkdtemp())))
        try:
            fresh.append(timed_batches(svc, events))
            again = [copy.copy(e) for e in events]
            for e in again:
                e.event_id += "-again"
            known.append(timed_batches(svc, again))
            if run == 0:
                with sqlite3.connect(svc.settings.db_path) as conn:  # the file as stored
                    merges = conn.execute("SELECT COUNT(*) FROM customer_merges").fetchone()[0]
                print(
                    f"{len(events)} events, "
                    f"{sum(len(e.identifiers) for e in events) / len(events):.2f} identifiers "
                    f"per event, {merges} merges"
                )
        finally:
            svc.close()
    print(f"fresh store:       median {statistics.median(fresh):8,.0f} events/s  ({_runs(fresh)})")
    print(f"known identifiers: median {statistics.median(known):8,.0f} events/s  ({_runs(known)})")


def over_grpc(events: list[Event], runs: int) -> None:
    import grpc

    from protos.seenext.v1 import events_pb2, events_pb2_grpc
    from server import convert

    msgs = [convert.event_msg(e) for e in events]
    requests = [events_pb2.TrackBatchRequest(events=msgs[i : i + BATCH]) for i in range(0, len(msgs), BATCH)]
    secret = "bench-key-0123456789abcdef"
    rates = []
    for _ in range(runs):
        folder = Path(tempfile.mkdtemp())
        (folder / "keys.json").write_text(
            json.dumps({"keys": [{"name": "bench", "key": secret, "scopes": ["track"]}]})
        )
        env = dict(
            os.environ,
            SEENEXT_DATA_DIR=str(folder / "data"),
            SEENEXT_PORT="0",
            SEENEXT_KEYS_FILE=str(folder / "keys.json"),
        )
        proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            cwd=Path(__file__).resolve().parents[1],
        )
        try:
            port = None
            while port is None:
                line = proc.stdout.readline()  # type: ignore[union-attr]
                if not line:
                    raise RuntimeError("the server did not start")
                match = re.search(r"serving on [\d.]+:(\d+)", line)
                port = int(match.group(1)) if match else None
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                stub = events_pb2_grpc.EventServiceStub(channel)
                started = time.perf_counter()
                for request in requests:
                    stub.TrackBatch(request, metadata=(("authorization", f"Bearer {secret}"),), timeout=60)
                rates.append(len(msgs) / (time.perf_counter() - started))
        finally:
            proc.terminate()
            proc.wait()
    print(f"gRPC TrackBatch:   median {statistics.median(rates):8,.0f} events/s  ({_runs(rates)})")


def _runs(rates: list[float]) -> str:
    return "runs: " + ", ".join(f"{r:,.0f}" for r in rates)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--customers", type=int, default=1000)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--grpc", action="store_true", help="also through a server process")
    args = p.parse_args()
    logging.disable(logging.WARNING)
    events = generator.generate(generator.DemoConfig(customers=args.customers, items=600, seed=42)).events
    facade(events, args.runs)
    if args.grpc:
        over_grpc(events, args.runs)


if __name__ == "__main__":
    main()
