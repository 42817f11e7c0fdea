"""A seenext server driven as a retailer's systems drive it: only the generated stubs, four RPCs.

`FrontDoor` sends a catalogue (`UpsertItems`) and a history (`TrackBatch`), trains (`Train`) and asks
(`Recommend`); `started_server` runs an empty `python -m server serve` for one evaluation. Used by
`seenext evaluate --front-door` (server/cli/frontdoor.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO

import grpc
import pandas as pd
from grpc_health.v1 import health_pb2, health_pb2_grpc

from models.domain import Item
from protos.seenext.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)

ROOT = Path(__file__).resolve().parents[2]
EVENT_BATCH = 5_000  # events per TrackBatch (the contract allows 10,000)
ITEM_BATCH = 2_000  # items per UpsertItems
RECOMMEND_THREADS = 4  # Recommend calls in flight at once

Progress = Callable[[str, int, int], None]


def item_msg(it: Item, repeatable: bool | None = None) -> catalog_pb2.Item:
    """Only the fields a retailer's catalogue has: never `active` and, unless a reference run asks
    for it, never `repeatable` (their presence is what the service reads as the retailer's word);
    no stock or offer."""
    return catalog_pb2.Item(
        item_id=it.item_id,
        title=it.title,
        category=it.category,
        brand=it.brand,
        price=it.price,
        accessory_for=it.accessory_for,
        attributes=it.attributes,
        repeatable=repeatable,
    )


def event_msgs(frame: pd.DataFrame, shift: float) -> Iterator[events_pb2.Event]:
    for r in frame.itertuples(index=False):
        msg = events_pb2.Event(
            event_id=r.event_id,
            identifiers=[
                common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=r.customer_id)
            ],
            channel=f"CHANNEL_{r.channel}",
            type=f"EVENT_TYPE_{r.type}",
            item_id=r.item_id,
            quantity=int(r.quantity or 1),
            price=float(r.price or 0.0),
            store_id=r.store_id or "",
            order_id=r.order_id or "",
            recommendation_id=r.recommendation_id or "",
            attributes=json.loads(r.attributes) if isinstance(r.attributes, str) else {},
        )
        msg.occurred_at.FromNanoseconds(round((float(r.occurred_at) + shift) * 1e9))
        yield msg


@dataclasses.dataclass
class Sent:
    """What the front door sent and what the server said about it."""

    items: int = 0
    events: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    rejections: list[str] = dataclasses.field(default_factory=list)  # the first few
    seconds: float = 0.0


class FrontDoor:
    """The four RPCs a retailer needs, over one channel."""

    def __init__(self, channel: grpc.Channel, timeout: float = 600.0) -> None:
        self.timeout = timeout
        self.catalog = catalog_pb2_grpc.CatalogServiceStub(channel)
        self.events = events_pb2_grpc.EventServiceStub(channel)
        self.model = model_pb2_grpc.ModelServiceStub(channel)
        self.recs = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        self.health = health_pb2_grpc.HealthStub(channel)

    def wait_until_serving(self, seconds: float = 120.0) -> None:
        deadline = time.monotonic() + seconds
        while True:
            try:
                reply = self.health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"the server did not report SERVING within {seconds:g}s")
            time.sleep(0.2)

    def status(self) -> model_pb2.ModelStatus:
        return self.model.GetModelStatus(model_pb2.GetModelStatusRequest(), timeout=self.timeout)

    def send(
        self,
        items: Sequence[Item],
        train: pd.DataFrame,
        shift: float,
        progress: Progress,
        repeatable: bool | None = None,
    ) -> Sent:
        sent = Sent()
        started = time.perf_counter()
        for start in range(0, len(items), ITEM_BATCH):
            chunk = [item_msg(it, repeatable) for it in items[start : start + ITEM_BATCH]]
            self.catalog.UpsertItems(catalog_pb2.UpsertItemsRequest(items=chunk), timeout=self.timeout)
            sent.items += len(chunk)
            progress("items", sent.items, len(items))
        batch: list[events_pb2.Event] = []
        for msg in event_msgs(train, shift):
            batch.append(msg)
            if len(batch) == EVENT_BATCH:
                self._track(batch, sent)
                progress("events", sent.events, len(train))
                batch = []
        if batch:
            self._track(batch, sent)
            progress("events", sent.events, len(train))
        sent.seconds = time.perf_counter() - started
        return sent

    def _track(self, batch: list[events_pb2.Event], sent: Sent) -> None:
        reply = self.events.TrackBatch(events_pb2.TrackBatchRequest(events=batch), timeout=self.timeout)
        sent.events += len(batch)
        sent.accepted += reply.accepted
        sent.duplicates += reply.duplicates
        sent.rejected += len(reply.rejected)
        for r in reply.rejected[: max(0, 5 - len(sent.rejections))]:
            sent.rejections.append(f"{r.event_id}: {r.field}: {r.reason}")

    def train(self) -> tuple[str, float]:
        started = time.perf_counter()
        reply = self.model.Train(model_pb2.TrainRequest(), timeout=max(self.timeout, 3600.0))
        return reply.model_version, time.perf_counter() - started

    def recommend_all(
        self, customers: Sequence[str], k: int, channel: str, placement: str
    ) -> tuple[dict[str, list[str]], Counter[str], list[str]]:
        """Each customer's answer, the strategies the server named, and the first errors (an error
        counts as an empty list: nothing was shown)."""

        def ask(customer: str) -> tuple[list[str], str]:
            request = recommendation_pb2.RecommendRequest(
                who=common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=customer),
                channel=f"CHANNEL_{channel}",
                placement=placement,
                k=k,
            )
            try:
                reply = self.recs.Recommend(request, timeout=60)
            except grpc.RpcError as err:
                return [], f"error {err.code().name}: {err.details()}"
            return [it.item_id for it in reply.items], reply.strategy or "(none)"

        with ThreadPoolExecutor(RECOMMEND_THREADS) as pool:
            answers = list(pool.map(ask, customers))
        lists = {c: items for c, (items, _) in zip(customers, answers, strict=True)}
        strategies = Counter(s if not s.startswith("error ") else "error" for _, s in answers)
        errors = [s for _, s in answers if s.startswith("error ")][:3]
        return lists, strategies, errors


@contextmanager
def started_server(overrides: Mapping[str, str], log: TextIO | None = None) -> Iterator[tuple[str, str]]:
    """`python -m server serve` on a free loopback port over an empty temporary data folder; yields its
    address and the admin key from the keys file it wrote ("" with SEENEXT_AUTH=0)."""
    with tempfile.TemporaryDirectory(prefix="seenext-frontdoor-") as tmp:
        data = Path(tmp)
        env = dict(os.environ)
        env.update(
            # fast, not durable: the folder is thrown away; no hold-out metrics (a second fit) at Train
            {"SEENEXT_SYNC_FULL": "0", "SEENEXT_EVAL_HOLDOUT_DAYS": "0"}
        )
        env.update(overrides)
        env.update(  # what makes it this empty, private server whatever the caller's environment says
            {
                "SEENEXT_DATA_DIR": str(data),
                "SEENEXT_HOST": "127.0.0.1",
                "SEENEXT_PORT": "0",
                "SEENEXT_DEMO": "0",
                "SEENEXT_PROCESSES": "1",
                "SEENEXT_KEYS_FILE": "",
                "SEENEXT_PII_KEY_FILE": "",
                "SEENEXT_TLS_CERT_FILE": "",
                "SEENEXT_TLS_KEY_FILE": "",
            }
        )
        env.pop("SEENEXT_CHILD", None)
        with open(data / "server.log", "w") as server_log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "server", "serve"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=server_log,
                text=True,
            )
            try:
                port = _read_port(proc, data / "server.log")
                keys = data / "keys.json"
                key = ""
                if keys.exists():
                    entries = json.loads(keys.read_text())["keys"]
                    key = next(e["key"] for e in entries if "*" in e["scopes"])
                yield f"127.0.0.1:{port}", key
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if log is not None and proc.returncode not in (0, -15):
            log.write((data / "server.log").read_text()[-2000:])


def _drain(stream: TextIO) -> None:
    for _ in stream:
        pass


def _read_port(proc: subprocess.Popen[str], log_path: Path) -> int:
    assert proc.stdout is not None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        match = re.search(r"serving on [\d.]+:(\d+)", line)
        if match:
            # The rest of the banner (and anything later) is read and dropped, so a full pipe never
            # blocks the server.
            threading.Thread(target=_drain, args=(proc.stdout,), daemon=True).start()
            return int(match.group(1))
        if not line and proc.poll() is not None:
            break
    proc.kill()
    tail = log_path.read_text()[-1500:] if log_path.exists() else ""
    raise RuntimeError(f"the server did not start (exit {proc.poll()}):\n{tail}")
