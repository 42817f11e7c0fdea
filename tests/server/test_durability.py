"""An acknowledged event survives kill -9 of the server; a restart keeps every event and the model."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest

from protos.seenext.v1 import common_pb2, events_pb2, events_pb2_grpc

pytestmark = pytest.mark.both_backends  # the store on SQLite and on PostgreSQL (tests/conftest.py)

ROOT = Path(__file__).resolve().parents[2]


def start_server(data_dir: Path, database_url: str = "") -> tuple[subprocess.Popen, int]:
    env = dict(
        os.environ, SEENEXT_DATA_DIR=str(data_dir), SEENEXT_PORT="0", SEENEXT_DEMO="0", SEENEXT_AUTH="0"
    )
    if database_url:
        env["SEENEXT_DATABASE_URL"] = database_url
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"serving on [\d.]+:(\d+)", line)
        if match:
            return proc, int(match.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
    proc.kill()
    raise TimeoutError("server did not start")


def event(n: int) -> events_pb2.Event:
    return events_pb2.Event(
        event_id=f"ev-{n}",
        channel=common_pb2.CHANNEL_POS,
        type=common_pb2.EVENT_TYPE_PURCHASE,
        item_id=f"item-{n % 7}",
        store_id="store-1",
        identifiers=[
            common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_LOYALTY_CARD, value=f"card-{n % 13}")
        ],
    )


def test_acknowledged_events_survive_kill_9(tmp_path: Path, database_url: str) -> None:
    proc, port = start_server(tmp_path, database_url)
    acknowledged: list[events_pb2.Event] = []
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = events_pb2_grpc.EventServiceStub(ch)
            for n in range(150):
                stub.Track(events_pb2.TrackRequest(event=event(n)), timeout=10)
                acknowledged.append(event(n))
            batch = [event(n) for n in range(150, 650)]
            reply = stub.TrackBatch(events_pb2.TrackBatchRequest(events=batch), timeout=30)
            assert reply.accepted == 500
            acknowledged += batch
    finally:
        proc.send_signal(signal.SIGKILL)  # no chance to flush anything
        proc.wait()

    proc, port = start_server(tmp_path, database_url)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            reply = events_pb2_grpc.EventServiceStub(ch).TrackBatch(
                events_pb2.TrackBatchRequest(events=acknowledged), timeout=30
            )
        assert (reply.accepted, reply.duplicates, len(reply.rejected)) == (0, len(acknowledged), 0)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0  # graceful stop on SIGTERM
