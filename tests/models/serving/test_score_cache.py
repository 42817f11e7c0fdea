"""A customer's product over every item, kept for their next request (models/serving/score_cache.py):
the same answers as computing it every time, a changed vector never served from the cache, bounded in
bytes, emptied by a Forget."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest

from models.domain import Event, Identifier
from models.service import Seenext
from models.serving import repurchase
from models.serving.recommender import RecommendQuery
from models.serving.score_cache import ScoreCache
from models.settings import Settings
from tests.conftest import N_USERS, flag_repeatable

RNG = np.random.default_rng(7)
SCORING = np.asfortranarray(RNG.normal(size=(500, 9)).astype(np.float32))


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=9).astype(np.float32)


def test_a_kept_product_is_the_product_shared_read_only() -> None:
    cache = ScoreCache(2**20)
    u = vector(1)
    first = cache.product(SCORING, u, "v1", 3)
    np.testing.assert_array_equal(first, SCORING @ u)
    again = cache.product(SCORING, u.copy(), "v1", 3)
    assert again is first and (cache.hits, cache.misses) == (1, 1)
    with pytest.raises(ValueError):  # shared by every request of this vector: nobody changes it
        again[0] = -1.0
    # what the repurchase blend does with it: a copy of its own when it lifts a purchase
    blended = repurchase.blend(again, {"a": 0}, [("a", 0.0, 2)], {"a": True}, 0.0, 1.0, 30.0)
    assert blended is not again and blended[0] > again[0]
    np.testing.assert_array_equal(cache.product(SCORING, u, "v1", 3), SCORING @ u)


def test_off_or_too_large_to_keep_the_caller_gets_its_own_temporary() -> None:
    for cache in (ScoreCache(0), ScoreCache(100)):
        scores = cache.product(SCORING, vector(1), "v1", 0)
        assert scores.flags.writeable and len(cache) == 0


def test_another_vector_model_or_catalogue_is_computed_afresh() -> None:
    cache = ScoreCache(2**20)
    u = vector(1)
    cache.product(SCORING, u, "v1", 3)
    moved = u.copy()
    moved[0] += 1e-6  # a fold-in that moved the vector by a hair is another vector
    for args in ((moved, "v1", 3), (u, "v2", 3), (u, "v1", 4)):
        np.testing.assert_array_equal(cache.product(SCORING, *args), SCORING @ args[0])
    assert (cache.hits, cache.misses) == (0, 4)


def test_it_keeps_the_most_recently_used_within_its_bytes() -> None:
    entry = SCORING.shape[0] * 4 + 9 * 4  # the scores and the key's vector
    cache = ScoreCache(2 * entry)
    a, b, c = vector(1), vector(2), vector(3)
    cache.product(SCORING, a, "v1", 0)
    cache.product(SCORING, b, "v1", 0)
    cache.product(SCORING, a, "v1", 0)  # a is now the most recent: b goes first
    cache.product(SCORING, c, "v1", 0)
    assert len(cache) == 2
    hits = cache.hits
    cache.product(SCORING, a, "v1", 0)
    cache.product(SCORING, c, "v1", 0)
    assert cache.hits == hits + 2
    cache.product(SCORING, b, "v1", 0)
    assert cache.hits == hits + 2  # b was dropped


@pytest.fixture
def uncached(trained: Seenext, settings: Settings) -> Iterator[Seenext]:
    """A second process on the same store that computes every product."""
    other = Seenext(replace(settings, score_cache_mb=0))
    yield other
    other.close()


def kept(svc: Seenext) -> dict[str, float]:
    """The score cache's figures as the metrics endpoint reports them (bytes, hits, misses)."""
    figures = svc.runtime_figures()
    return {k: figures[f"score_cache_{k}"] for k in ("bytes", "hits", "misses")}


def answers(svc: Seenext, who: Identifier) -> list[list[tuple[str, float]]]:
    out = []
    for placement, items in (("home", ()), ("product", ("flowers-2",)), ("cart", ())):
        q = RecommendQuery(channel="WEB", who=who, placement=placement, item_ids=list(items), k=8)
        out.append([(r.item_id, r.score) for r in svc.recommend(q).items])
    return out


def test_answers_are_those_computed_every_time_before_and_after_the_vector_changes(
    trained: Seenext, uncached: Seenext
) -> None:
    people = [Identifier("CUSTOMER_ID", f"u{u}") for u in range(N_USERS)]
    for who in people:  # twice: the second time from the cache
        assert answers(trained, who) == answers(uncached, who) == answers(trained, who)
    assert kept(trained)["hits"] > 0 and kept(trained)["misses"] > 0
    # u1 likes flowers; looking at laptops after the model's data folds in and moves their vector
    u1 = people[1]
    before = answers(trained, u1)
    misses = kept(trained)["misses"]
    now = time.time()
    trained.track_batch(
        [Event(f"u1-look-{n}", (u1,), "WEB", "VIEW", f"laptop-{n}", occurred_at=now) for n in range(1, 6)]
    )
    after = answers(trained, u1)
    assert kept(trained)["misses"] > misses  # the moved vector is another key
    assert after == answers(uncached, u1)
    assert after != before


def test_a_forget_empties_it(trained: Seenext) -> None:
    trained.recommend(RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", "u4"), k=5))
    assert kept(trained)["bytes"] > 0
    trained.forget(Identifier("CUSTOMER_ID", "u4"))
    assert kept(trained)["bytes"] == 0


def test_a_customer_whose_purchase_is_blended_in_gets_the_same_answers_from_the_cache(
    trained: Seenext, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The repurchase blend changes scores: on a kept product it works on a copy of its own, so the
    next request of the vector starts from the model's scores again."""
    flag_repeatable(trained, "flowers")  # flowers come back: a flower buyer's purchases blend in
    lifted = []
    blend = repurchase.blend

    def counting(scores: np.ndarray, *args: object, **kwargs: object) -> np.ndarray:
        out = blend(scores, *args, **kwargs)  # type: ignore[arg-type]
        if out is not scores:
            lifted.append(out)
        return out

    monkeypatch.setattr(repurchase, "blend", counting)
    with Seenext(replace(settings, score_cache_mb=0)) as uncached:
        buyers = [Identifier("CUSTOMER_ID", f"u{u}") for u in range(1, N_USERS, 3)]
        for who in buyers:
            assert answers(trained, who) == answers(uncached, who) == answers(trained, who)
    assert lifted  # the blend ran on kept products


def test_a_campaign_list_keeps_nothing_and_answers_as_one_request_at_a_time(trained: Seenext) -> None:
    """RecommendBatch asks each customer once: keeping their products would only push out those of
    the web's and the tills' customers."""
    people = [Identifier("CUSTOMER_ID", f"u{u}") for u in range(12)]
    campaign = [[r.item_id for r in rec.items] for rec in trained.recommend_batch(people, "WEB", "home", k=5)]
    assert kept(trained)["bytes"] == 0
    one_by_one = [
        [
            r.item_id
            for r in trained.recommend(RecommendQuery(channel="WEB", who=w, placement="home", k=5)).items
        ]
        for w in people
    ]
    assert campaign == one_by_one and any(campaign)
    assert kept(trained)["bytes"] > 0  # one request at a time keeps them
