"""The lazy partial sort (`ranking.descending`) gives the order of one stable full sort, and whole
Recommend answers on a fixed-seed demo world are the same with it as with that full sort.

`descending` finds its head through a strided sample (`ranking._head`) and may start with a small head:
an optimisation that must not change any answer (docs/performance.md, Recommend latency)."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from models.demo import generator
from models.domain import Identifier
from models.service import Seenext
from models.serving import ranking
from models.serving.recommender import Recommendation, RecommendQuery
from tests.conftest import tiny_settings


def full_sort(ids: np.ndarray, scores: np.ndarray, first: int = 64) -> Iterator[tuple[str, float]]:
    """The reference: every (id, score) by one stable sort on the descending score."""
    for r in np.argsort(-scores, kind="stable").tolist():
        yield str(ids[r]), float(scores[r])


def scores_with_ties(rng: np.random.Generator, n: int, levels: int) -> np.ndarray:
    """float32 scores, rounded to `levels` distinct values (0: not rounded) so that cuts fall in ties."""
    s = rng.standard_normal(n).astype(np.float32)
    return np.round(s * levels).astype(np.float32) / max(levels, 1) if levels else s


@pytest.mark.parametrize("n", [1, 2, 63, 64, 65, 700, 2_048, 20_000])
def test_descending_is_one_stable_sort_whatever_the_head(n: int) -> None:
    rng = np.random.default_rng(n)
    ids = np.array([f"i{j}" for j in range(n)], dtype=object)
    for levels, first in itertools.product((0, 3, 40), (1, 16, 64)):
        scores = scores_with_ties(rng, n, levels)
        assert list(ranking.descending(ids, scores, first=first)) == list(full_sort(ids, scores))


def test_the_head_is_every_score_at_or_above_the_cut() -> None:
    rng = np.random.default_rng(3)
    for n, want, levels in itertools.product((100, 5_000, 20_000), (1, 8, 64, 99), (0, 5)):
        if want >= n:
            continue
        scores = scores_with_ties(rng, n, levels)
        cut = np.sort(scores)[n - want]
        assert ranking._head(scores, want).tolist() == np.flatnonzero(scores >= cut).tolist()


def test_a_nan_score_keeps_the_plain_cut() -> None:
    scores = np.array([np.nan] * 300 + [1.0, 2.0] * 200, dtype=np.float32)
    cut = np.partition(scores, len(scores) - 8)[len(scores) - 8]
    assert ranking._head(scores, 8).tolist() == np.flatnonzero(scores >= cut).tolist()


def answers(service: Seenext, queries: list[RecommendQuery]) -> list[tuple[object, ...]]:
    def key(rec: Recommendation) -> tuple[object, ...]:
        items = [
            (r.item_id, round(r.score, 9), [(x.code, x.related_item_id) for x in r.reasons])
            for r in rec.items
        ]
        return rec.strategy, rec.customer_id, items

    return [key(service.recommend(q)) for q in queries]


def test_recommend_answers_are_those_of_the_full_sort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Many requests (known customers, visitors with a page or a basket, every channel) on a fixed-seed
    world: the same items, order, scores and reasons with the reference sort swapped in."""
    retailer = generator.generate(generator.DemoConfig(customers=120, items=900, days=60, seed=11))
    with Seenext(tiny_settings(tmp_path, epochs=3)) as service:
        generator.seed(service, retailer)
        service.train()
        items = [i.item_id for i in retailer.items]
        queries: list[RecommendQuery] = []
        for n, c in enumerate(retailer.customers[:80]):
            channel = ("WEB", "APP", "EMAIL", "POS")[n % 4]
            queries.append(
                RecommendQuery(channel=channel, who=Identifier("CUSTOMER_ID", c.customer_id), k=12)
            )
        for n in range(40):
            queries.append(RecommendQuery(channel="WEB", placement="product", item_ids=[items[n * 7]], k=8))
            queries.append(
                RecommendQuery(channel="APP", placement="cart", basket_item_ids=[items[n * 5]], k=8)
            )
        fast = answers(service, queries)
        monkeypatch.setattr(ranking, "descending", full_sort)
        assert answers(service, queries) == fast
        assert sum(bool(a[2]) for a in fast) > len(queries) // 2  # the lists are not empty
