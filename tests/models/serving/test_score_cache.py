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
from models.serving.recommender import RecommendQuery
from models.serving.score_cache import ScoreCache
from models.settings import Settings
from tests.conftest import N_USERS

RNG = np.random.default_rng(7)
SCORING = np.asfortranarray(RNG.normal(size=(500, 9)).astype(np.float32))


def vector(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=9).astype(np.float32)


def test_a_kept_product_is_the_product_and_the_caller_may_change_its_copy() -> None:
    cache = ScoreCache(2**20)
    u = vector(1)
    first = cache.product(SCORING, u, "v1", 3)
    np.testing.assert_array_equal(first, SCORING @ u)
    first[:] = -1.0  # the caller's own array (the repurchase blend changes it in place)
    again = cache.product(SCORING, u.copy(), "v1", 3)
    np.testing.assert_array_equal(again, SCORING @ u)
    assert (cache.hits, cache.misses) == (1, 1)
    again[:] = -2.0
    np.testing.assert_array_equal(cache.product(SCORING, u, "v1", 3), SCORING @ u)


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


def test_zero_bytes_keeps_nothing() -> None:
    cache = ScoreCache(0)
    u = vector(1)
    np.testing.assert_array_equal(cache.product(SCORING, u, "v1", 0), SCORING @ u)
    cache.product(SCORING, u, "v1", 0)
    assert len(cache) == 0 and cache.hits == 0


@pytest.fixture
def uncached(trained: Seenext, settings: Settings) -> Iterator[Seenext]:
    """A second process on the same store that computes every product."""
    other = Seenext(replace(settings, score_cache_mb=0))
    yield other
    other.close()


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
    cache = trained._scores
    assert cache.hits > 0 and cache.misses > 0
    # u1 likes flowers; looking at laptops after the model's data folds in and moves their vector
    u1 = people[1]
    before = answers(trained, u1)
    misses = cache.misses
    now = time.time()
    trained.track_batch(
        [Event(f"u1-look-{n}", (u1,), "WEB", "VIEW", f"laptop-{n}", occurred_at=now) for n in range(1, 6)]
    )
    after = answers(trained, u1)
    assert cache.misses > misses  # the moved vector is another key
    assert after == answers(uncached, u1)
    assert after != before


def test_a_forget_empties_it(trained: Seenext) -> None:
    trained.recommend(RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", "u4"), k=5))
    assert len(trained._scores) > 0
    trained.forget(Identifier("CUSTOMER_ID", "u4"))
    assert len(trained._scores) == 0
