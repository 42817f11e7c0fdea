"""A page view through the front door: the web shop asks three placements of one customer, and a server
keeping the customer's scores for their next request (models/serving/score_cache.py, the default)
answers exactly what a server computing them every time answers — before and after the customer's new
views move their vector.

Two real `seenext serve` processes on one store, the world seeded the retailer's way through the stubs
of the first (tests/server/test_fleet.py): no flags, an empty store, UpsertItems, TrackBatch, Train.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from models.settings import variable
from protos.seenext.v1 import common_pb2, events_pb2, recommendation_pb2, recommendation_pb2_grpc
from tests.conftest import N_USERS
from tests.server.test_fleet import (
    Replica,
    backend_env,
    customer,
    seed_through_the_api,
    start_replica,
    stop,
    within,
)

Page = list[list[tuple[str, float, str]]]


@pytest.fixture
def kept_and_computed(tmp_path: Path) -> Iterator[tuple[Replica, Replica]]:
    env = backend_env(tmp_path)
    kept = start_replica(env)  # the default: scores kept
    try:
        seed_through_the_api(kept)
        computed = start_replica({**env, variable("score_cache_mb"): "0"})
    except BaseException:
        stop(kept)
        raise
    yield kept, computed
    stop(kept)
    stop(computed)


def page_view(replica: Replica, who: common_pb2.Identifier) -> Page:
    """The home page's, a phone's page's and the basket's recommendations, as the web shop asks them."""
    stub = recommendation_pb2_grpc.RecommendationServiceStub(replica.channel)
    web = common_pb2.CHANNEL_WEB
    contexts = {  # the home page: nothing; a phone's page; a basket with flowers in it
        "home": recommendation_pb2.Context(),
        "product": recommendation_pb2.Context(item_ids=["phone-2"]),
        "cart": recommendation_pb2.Context(basket_item_ids=["flowers-3"]),
    }
    requests = [
        recommendation_pb2.RecommendRequest(who=who, channel=web, placement=placement, k=6, context=context)
        for placement, context in contexts.items()
    ]
    return [
        [
            (i.item_id, i.score, i.reasons[0].code if i.reasons else "")
            for i in stub.Recommend(r, timeout=10).items
        ]
        for r in requests
    ]


def test_a_page_view_is_answered_alike_with_the_scores_kept_and_computed(
    kept_and_computed: tuple[Replica, Replica],
) -> None:
    kept, computed = kept_and_computed
    for u in range(N_USERS):
        who = customer(f"u{u}")
        first = page_view(kept, who)
        assert first == page_view(computed, who) == page_view(kept, who), (
            f"u{u}"
        )  # the last from the kept scores
        assert any(first), f"u{u}"
    # u1 likes flowers; an evening of looking at laptops moves their vector: no kept answer comes back
    u1 = customer("u1")
    before = page_view(kept, u1)
    views = [
        events_pb2.Event(
            event_id=f"u1-laptops-{n}",
            identifiers=[u1],
            channel=common_pb2.CHANNEL_WEB,
            type=common_pb2.EVENT_TYPE_VIEW,
            item_id=f"laptop-{n}",  # no occurred_at: now, after the model's data
        )
        for n in range(1, 6)
    ]
    reply = kept.events().TrackBatch(events_pb2.TrackBatchRequest(events=views), timeout=30)
    assert reply.accepted == len(views)
    after = page_view(kept, u1)
    assert after != before
    within(2.0, lambda: page_view(computed, u1) == after)  # the other process reads the views from the feed
    assert page_view(kept, u1) == after
