"""A fleet: two real `seenext serve` processes on one data store (issue 11).

Each replica keeps customer states in memory and follows the change feed, so what one replica writes
must reach the other within a second: a purchase is excluded, a Forget is honoured (the customer is
not recognised and gets nothing personalised). Merges running at once on both replicas make one
customer; kill -9 of a replica in the middle of TrackBatch loses no acknowledged event.

The world is seeded as a retailer seeds it: the first replica starts on an empty store and gets the
catalogue (no `active`, no `repeatable`), the history and a Train through the generated stubs.

Parametrised by backend: one PostgreSQL database both replicas use (a fresh database on the session's
throwaway cluster, tests/postgres.py), and one SQLite file both processes open (the same
cross-process problem on one host).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from models.settings import variable
from protos.seenext.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    privacy_pb2,
    privacy_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from server import convert
from tests.conftest import tiny_events, tiny_items

ROOT = Path(__file__).resolve().parents[2]
KIND = common_pb2.IdentifierKind
TINY = {
    "SEENEXT_EPOCHS": "20",
    "SEENEXT_COMPONENTS": "8",
    "SEENEXT_TRAIN_THREADS": "1",
    "SEENEXT_WORKERS": "8",
    "SEENEXT_RELOAD_SECONDS": "0.2",
    "SEENEXT_AUTH": "0",
    "SEENEXT_DEMO": "0",
    "SEENEXT_PORT": "0",
}


def backend_env(data_dir: Path, database_url: str = "") -> dict[str, str]:
    env = {**TINY, "SEENEXT_DATA_DIR": str(data_dir)}
    if database_url:
        env[variable("database_url")] = database_url
    return env


@dataclass
class Replica:
    proc: subprocess.Popen[str]
    port: int
    channel: grpc.Channel

    def recommend(self, who: common_pb2.Identifier, k: int = 20) -> recommendation_pb2.RecommendResponse:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(self.channel)
        return stub.Recommend(
            recommendation_pb2.RecommendRequest(who=who, channel=common_pb2.CHANNEL_WEB, k=k), timeout=10
        )

    def events(self) -> events_pb2_grpc.EventServiceStub:
        return events_pb2_grpc.EventServiceStub(self.channel)

    def identify(self, *who: common_pb2.Identifier) -> identity_pb2.IdentifyResponse:
        return identity_pb2_grpc.IdentityServiceStub(self.channel).Identify(
            identity_pb2.IdentifyRequest(identifiers=list(who)), timeout=30
        )


def start_replica(env: dict[str, str]) -> Replica:
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve"],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        match = re.search(r"serving on [\d.]+:(\d+)", proc.stdout.readline())
        if match:  # printed once health says SERVING: the model is loaded and the feed caught up
            port = int(match.group(1))
            channel = grpc.insecure_channel(f"127.0.0.1:{port}")
            grpc.channel_ready_future(channel).result(timeout=10)
            return Replica(proc, port, channel)
        if proc.poll() is not None:
            raise RuntimeError(f"replica exited with {proc.returncode}")
    proc.kill()
    raise TimeoutError("replica did not start")


def stop(replica: Replica) -> None:
    replica.channel.close()
    if replica.proc.poll() is None:
        replica.proc.send_signal(signal.SIGTERM)
        try:
            replica.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            replica.proc.kill()
            replica.proc.wait()


def retailer_items() -> list[catalog_pb2.Item]:
    """tests/conftest.py's tiny catalogue as an ERP sends it: id, title, category, brand, price and stock;
    no `active`, no `repeatable` (what is bought again is learned from the history)."""
    return [
        catalog_pb2.Item(
            item_id=it.item_id,
            title=it.title,
            category=it.category,
            brand=it.brand,
            price=it.price,
            stock=[catalog_pb2.Stock(store_id=s, quantity=q) for s, q in it.stock.items()],
        )
        for it in tiny_items()
    ]


def retailer_events() -> list[events_pb2.Event]:
    """tests/conftest.py's tiny history (views on the web shop, purchases online and at a till) as the
    retailer's systems send it through TrackBatch."""
    return [convert.event_msg(e) for e in tiny_events()]


def seed_through_the_api(replica: Replica) -> None:
    """An empty store filled the retailer's way: UpsertItems, TrackBatch, Train, all through the stubs of
    the first replica (the second starts afterwards and loads the model the first trained)."""
    catalog = catalog_pb2_grpc.CatalogServiceStub(replica.channel)
    items = retailer_items()
    assert catalog.UpsertItems(catalog_pb2.UpsertItemsRequest(items=items), timeout=30).upserted == len(items)
    events = retailer_events()
    reply = replica.events().TrackBatch(events_pb2.TrackBatchRequest(events=events), timeout=60)
    assert (reply.accepted, len(reply.rejected)) == (len(events), 0)
    model_pb2_grpc.ModelServiceStub(replica.channel).Train(model_pb2.TrainRequest(), timeout=120)


@pytest.fixture(params=["sqlite", "postgresql"])
def fleet(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    # PostgreSQL: a fresh database on the session's throwaway cluster (tests/postgres.py)
    url = request.getfixturevalue("postgres_url") if request.param == "postgresql" else ""
    env = backend_env(tmp_path, url)
    a = start_replica(env)  # an empty store: SERVING with nothing to serve yet
    try:
        seed_through_the_api(a)
        b = start_replica(env)
    except BaseException:
        stop(a)
        raise
    yield a, b
    stop(a)
    stop(b)


def customer(value: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=KIND.IDENTIFIER_KIND_CUSTOMER_ID, value=value)


def within(seconds: float, check: Callable[[], bool]) -> float:
    start = time.monotonic()
    while not check():
        elapsed = time.monotonic() - start
        assert elapsed < seconds, f"not seen after {elapsed:.2f} s"
        time.sleep(0.01)
    return time.monotonic() - start


def test_a_purchase_tracked_on_one_replica_is_excluded_by_the_other_within_a_second(
    fleet: tuple[Replica, Replica],
) -> None:
    a, b = fleet
    u2 = customer("u2")
    top = [i.item_id for i in b.recommend(u2).items]
    assert top and b.recommend(u2).recognised
    bought = top[0]
    a.events().Track(
        events_pb2.TrackRequest(
            event=events_pb2.Event(
                event_id="fleet-buy",
                channel=common_pb2.CHANNEL_WEB,
                type=common_pb2.EVENT_TYPE_PURCHASE,
                item_id=bought,
                identifiers=[u2],
            )
        ),
        timeout=10,
    )
    within(1.0, lambda: bought not in [i.item_id for i in b.recommend(u2).items])


def test_a_customer_forgotten_on_one_replica_is_unknown_to_the_other_within_a_second(
    fleet: tuple[Replica, Replica],
) -> None:
    a, b = fleet
    u5 = customer("u5")
    before = b.recommend(u5)
    assert before.recognised and before.customer_id == "u5" and "personalised" in before.strategy
    reply = privacy_pb2_grpc.PrivacyServiceStub(a.channel).Forget(
        privacy_pb2.ForgetRequest(who=u5), timeout=30
    )
    assert reply.customer_id == "u5"

    def forgotten() -> bool:
        after = b.recommend(u5)
        return not after.recognised and not after.customer_id and "personalised" not in after.strategy

    within(1.0, forgotten)


def test_merges_running_at_once_on_both_replicas_make_one_customer(fleet: tuple[Replica, Replica]) -> None:
    """Each pair: an anonymous device history made on A, an e-mail's on B; then both replicas are asked
    at once to join them (with a further identifier each). Every identifier ends on one customer."""
    a, b = fleet
    pairs = 8
    devices = [
        common_pb2.Identifier(kind=KIND.IDENTIFIER_KIND_DEVICE_ID, value=f"dev-{n}") for n in range(pairs)
    ]
    mails = [
        common_pb2.Identifier(kind=KIND.IDENTIFIER_KIND_EMAIL, value=f"m{n}@example.com")
        for n in range(pairs)
    ]
    cards = [
        common_pb2.Identifier(kind=KIND.IDENTIFIER_KIND_LOYALTY_CARD, value=f"lc-{n}") for n in range(pairs)
    ]
    for n in range(pairs):
        a.identify(devices[n])
        b.identify(mails[n])
    start = threading.Barrier(2 * pairs)

    def join(replica: Replica, *who: common_pb2.Identifier) -> str:
        start.wait()
        return replica.identify(*who).customer_id

    with ThreadPoolExecutor(2 * pairs) as pool:
        on_a = [pool.submit(join, a, devices[n], mails[n]) for n in range(pairs)]
        on_b = [pool.submit(join, b, mails[n], devices[n], cards[n]) for n in range(pairs)]
        joined = [(x.result(), y.result()) for x, y in zip(on_a, on_b, strict=True)]
    for n, (x, y) in enumerate(joined):
        assert x == y, f"pair {n}: replica A made {x}, replica B {y}"
        for replica in (a, b):
            assert {replica.identify(w).customer_id for w in (devices[n], mails[n], cards[n])} == {x}


def test_kill_9_of_a_replica_mid_track_batch_loses_no_acknowledged_event(
    fleet: tuple[Replica, Replica],
) -> None:
    a, b = fleet
    acknowledged: list[events_pb2.Event] = []
    stop_sending = threading.Event()

    def event(n: int) -> events_pb2.Event:
        return events_pb2.Event(
            event_id=f"kill-{n}",
            channel=common_pb2.CHANNEL_POS,
            type=common_pb2.EVENT_TYPE_PURCHASE,
            item_id=f"flowers-{n % 5 + 1}",
            store_id="store-1",
            identifiers=[common_pb2.Identifier(kind=KIND.IDENTIFIER_KIND_LOYALTY_CARD, value=f"k-{n % 40}")],
        )

    def send() -> None:
        n = 0
        while not stop_sending.is_set():
            batch = [event(i) for i in range(n, n + 200)]
            try:
                a.events().TrackBatch(events_pb2.TrackBatchRequest(events=batch), timeout=10)
            except grpc.RpcError:
                return  # the replica is gone: this batch was never acknowledged
            acknowledged.extend(batch)
            n += 200

    sender = threading.Thread(target=send)
    sender.start()
    within(30.0, lambda: len(acknowledged) >= 600)
    a.proc.send_signal(signal.SIGKILL)  # mid-stream: a batch is in flight
    a.proc.wait()
    stop_sending.set()
    sender.join(timeout=30)
    reply = b.events().TrackBatch(events_pb2.TrackBatchRequest(events=acknowledged), timeout=60)
    assert (reply.accepted, reply.duplicates, len(reply.rejected)) == (0, len(acknowledged), 0)
