"""The learning loop end to end through the generated stubs: fresh events count at once, rollback."""

from __future__ import annotations

import time

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from protos.seenext.v1 import common_pb2, events_pb2, events_pb2_grpc, model_pb2, model_pb2_grpc
from tests.server.test_grpc import customer, loaded, recommend  # noqa: F401  (loaded is a fixture)

pytestmark = pytest.mark.both_backends  # the store on SQLite and on PostgreSQL (tests/conftest.py)


def view(event_id: str, cid: str, item: str, at: float) -> events_pb2.Event:
    ts = Timestamp()
    ts.FromNanoseconds(int(at * 1e9))
    return events_pb2.Event(
        event_id=event_id,
        identifiers=[customer(cid)],
        channel=common_pb2.CHANNEL_WEB,
        type=common_pb2.EVENT_TYPE_VIEW,
        item_id=item,
        occurred_at=ts,
    )


def laptops_ranked(rec: object, k: int = 5) -> int:
    """Laptops among the first k items the customer's own ranking placed (owned complements come first)."""
    mine = [i.item_id for i in rec.items if i.reasons[0].code == "personalised"][:k]  # type: ignore[attr-defined]
    return sum(i.startswith("laptop") for i in mine)


def answer(ch: grpc.Channel, cid: str) -> list[tuple[str, float]]:
    rec = recommend(ch, who=customer(cid), channel=common_pb2.CHANNEL_WEB, k=5)
    return [(i.item_id, round(i.score, 6)) for i in rec.items]


def test_tracked_views_change_the_next_answer_without_retraining(loaded: grpc.Channel) -> None:  # noqa: F811
    # the cart page without a basket: the home page's plan without the looked-at source, which would
    # show the three viewed laptops first, whatever fold-in did (tests/server/test_looked_at_e2e.py)
    page = {"who": customer("u3"), "channel": common_pb2.CHANNEL_WEB, "placement": "cart", "k": 10}
    before = recommend(loaded, **page)
    assert laptops_ranked(before) <= 2
    events = events_pb2_grpc.EventServiceStub(loaded)
    now = time.time()
    for n in (1, 2, 3):
        events.Track(events_pb2.TrackRequest(event=view(f"v{n}", "u3", f"laptop-{n}", now + n)))
    after = recommend(loaded, **page)
    assert after.model_version == before.model_version
    assert laptops_ranked(after) >= 3


def test_rollback_restores_the_previous_versions_answers(loaded: grpc.Channel) -> None:  # noqa: F811
    models = model_pb2_grpc.ModelServiceStub(loaded)
    first = models.GetModelStatus(model_pb2.GetModelStatusRequest()).model_version
    answers_v1 = answer(loaded, "u4")
    # New history for other customers moves the next model; u4's own events do not change.
    now = time.time()
    batch = [view(f"n{c}-{n}", f"u{c}", f"laptop-{n}", now) for c in range(10, 40) for n in (1, 2, 3)]
    events_pb2_grpc.EventServiceStub(loaded).TrackBatch(events_pb2.TrackBatchRequest(events=batch))
    second = models.Train(model_pb2.TrainRequest()).model_version
    assert second != first
    answers_v2 = answer(loaded, "u4")
    assert answers_v2 != answers_v1
    kept = [m.model_version for m in models.ListModels(model_pb2.ListModelsRequest()).models]
    assert kept[:2] == [second, first]

    status = models.RollbackModel(model_pb2.RollbackModelRequest(model_version=first))
    assert status.model_version == first
    assert answer(loaded, "u4") == answers_v1
