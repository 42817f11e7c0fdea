"""Fold-in and repurchase blending: fresh events change the answer at once, no retraining."""

from __future__ import annotations

import numpy as np
import pytest

from models.domain import Event, Identifier
from models.service import Seenext
from models.serving import foldin, repurchase
from models.serving.recommender import RecommendQuery
from tests.conftest import DAY, NOW, flag_repeatable

PHONE_CUSTOMERS = ["u0", "u3", "u6", "u9"]


MODEL_REASONS = {"personalised", "similar_to_viewed"}


def top(service: Seenext, customer: str, k: int = 5) -> tuple[str, list[str]]:
    """The strategy, and the first k items the model's affinity placed (complements of owned items
    come first; they are not what fold-in changes). Asked for the cart page without a basket: the
    home page's plan without its looked-at source, which would take the freshly viewed items first
    (tests/models/serving/test_looked_at.py) and leave the model's own ranking unseen."""
    who = Identifier("CUSTOMER_ID", customer)
    rec = service.recommend(RecommendQuery(channel="WEB", who=who, placement="cart", k=k + 5))
    return rec.strategy, [r.item_id for r in rec.items if r.reasons[0].code in MODEL_REASONS][:k]


def views(customer: str, items: list[str], at: float, prefix: str = "fresh") -> list[Event]:
    return [
        Event(
            f"{prefix}-{customer}-{n}",
            (Identifier("CUSTOMER_ID", customer),),
            "WEB",
            "VIEW",
            item,
            occurred_at=at + 60 * n,
        )
        for n, item in enumerate(items)
    ]


def laptops(items: list[str]) -> int:
    return sum(i.startswith("laptop") for i in items)


def test_three_fresh_views_pull_a_phone_customer_to_laptops(trained: Seenext) -> None:
    before = {c: top(trained, c) for c in PHONE_CUSTOMERS}
    assert all(laptops(items) <= 2 and "personalised" in strategy for strategy, items in before.values())
    version = trained.serving_model.version  # type: ignore[union-attr]
    for c in PHONE_CUSTOMERS:
        trained.track_batch(views(c, ["laptop-1", "laptop-2", "laptop-3"], NOW))
    after = {c: top(trained, c) for c in PHONE_CUSTOMERS}
    assert trained.serving_model.version == version  # type: ignore[union-attr]  # no retraining happened
    for c in PHONE_CUSTOMERS:
        strategy, items = after[c]
        assert "personalised" in strategy
        assert laptops(items) >= 3, (c, before[c], items)


def test_events_older_than_the_model_do_not_fold_in_again(trained: Seenext) -> None:
    """They were (or could have been) trained on; only events after the model's data count as fresh."""
    before = top(trained, "u0")
    reference = foldin.reference_time(trained.serving_model)  # type: ignore[arg-type]
    trained.track_batch(views("u0", ["laptop-1", "laptop-2", "laptop-3"], reference - 30 * DAY, "old"))
    assert top(trained, "u0") == before


def test_a_brand_new_customer_is_folded_in_from_their_first_events(trained: Seenext) -> None:
    assert top(trained, "newbie")[0] == "popular"  # unknown: nothing to go on
    trained.track_batch(views("newbie", ["flowers-1", "flowers-2"], NOW))
    strategy, items = top(trained, "newbie")
    assert strategy == "similar_items"
    assert sum(i.startswith("flowers") for i in items[:3]) == 3


def test_folded_vector_moves_halfway_at_the_prior_weight() -> None:
    user = np.array([2.0, 0.0, 1.0], dtype=np.float32)  # d=2 plus the bias column
    direction = np.array([0.0, 5.0], dtype=np.float32)
    out = foldin.folded_vector(user, direction, weight=3.0, prior=3.0, typical_norm=7.0)
    assert out == pytest.approx([1.0, 1.0, 1.0])  # half of u, half of |u| * s/|s|, bias column kept
    newcomer = foldin.folded_vector(None, direction, weight=0.0, prior=3.0, typical_norm=7.0)
    assert newcomer == pytest.approx([0.0, 7.0, 1.0])  # s scaled to a typical user's length


def test_repurchase_boosts_repeatable_items_by_recency() -> None:
    scores = np.array([3.0, 2.0, 1.0, 0.0])
    index = {"a": 0, "b": 1, "c": 2, "d": 3}
    bought = [("c", 100 * DAY, 1), ("d", 10 * DAY, 1), ("b", 100 * DAY, 1)]
    out = repurchase.blend(
        scores, index, bought, {"c": True, "d": True, "b": False}, 100 * DAY, weight=10.0, half_life_days=90.0
    )
    assert out[1] == scores[1] and out[0] == scores[0]  # not repeatable / not bought: untouched
    assert out[2] > out[3] > out[0]  # bought today beats bought 90 days ago; both beat the model's best
    assert scores.tolist() == [3.0, 2.0, 1.0, 0.0]  # input not changed
    off = repurchase.blend(scores, index, bought, {"c": True}, 100 * DAY, weight=0.0, half_life_days=30.0)
    assert off.tolist() == scores.tolist()


def test_a_repeatable_item_bought_is_offered_again_first(trained: Seenext) -> None:
    """Flowers flagged repeatable by the catalogue (the override of what is learned): u1 bought flowers-2
    and flowers-3, so they lead u1's list."""
    flag_repeatable(trained, "flowers")
    _, items = top(trained, "u1", k=3)
    assert set(items[:2]) == {"flowers-2", "flowers-3"}


def test_the_blend_spread_from_the_score_covariance_is_the_scores_standard_deviation() -> None:
    from models.serving.embeddings import ItemSpace

    rng = np.random.default_rng(3)
    scoring = rng.normal(size=(500, 5)).astype(np.float32)
    scoring[:, -1] = rng.normal(size=500)  # the bias column
    ids = np.array([f"i{n}" for n in range(500)], dtype=object)
    space = ItemSpace(ids, {i: n for n, i in enumerate(ids)}, scoring, scoring[:, :4], frozenset(), 1)
    for _ in range(5):
        user = np.append(rng.normal(size=4), 1.0).astype(np.float32)
        assert repurchase.score_spread(space, user) == pytest.approx(float((scoring @ user).std()), rel=1e-5)
    user[0] = np.nan
    assert repurchase.score_spread(space, user) is None  # not finite: the caller measures the scores
    broken = ItemSpace(
        ids,
        space.index,
        np.where(np.arange(500)[:, None] == 7, np.inf, scoring).astype(np.float32),
        scoring[:, :4],
        frozenset(),
        1,
    )
    assert repurchase.score_spread(broken, np.ones(5, np.float32)) is None
