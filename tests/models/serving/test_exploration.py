"""Issue 9 point 7: what is new, its bounded share of a list, and items a shop cannot sell.

Known answers on small hand-made inputs (the share of k, which items are new, where `take` puts
them, learned items before feature-only ones), the storage behind "new" (first upsert kept, customers
counted), and the facade on the tiny world: a brand-new item is never first.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import cast

import numpy as np
import pytest

from models.catalog import CatalogSnapshot
from models.domain import DAY, Identifier, Item, Offer
from models.service import Seenext
from models.serving import channel_rules, exploration
from models.serving.embeddings import ItemSpace, RankingModel
from models.serving.exploration import Exploration, ExplorationPolicy, NewItem, new_items, slots
from models.serving.ranking import (
    EXPLORATION,
    Affinity,
    Candidate,
    RankingState,
    exploring,
    final_score,
    learned_first,
    take,
)
from models.serving.reasons import Reason, sentence
from models.serving.recommender import RecommendQuery
from models.storage import Storage, open_storage
from models.storage.catalog import Novelty
from models.storage.events import EventRow

NOW = 1_800_000_000.0


# -- the share of a list ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("k", "share", "expected"),
    [
        (1, 0.1, 0),  # a single answer is never a trial
        (3, 0.5, 0),  # nor a list shorter than four
        (4, 0.1, 1),  # a 4-item mail: one
        (4, 0.9, 1),  # ... whatever the share: at most one place in four
        (8, 0.1, 1),
        (10, 0.1, 1),
        (12, 0.1, 2),
        (20, 0.1, 2),
        (40, 0.1, 4),  # the plan's cap (2) bounds it further
        (10, 0.0, 0),  # off
    ],
)
def test_new_items_take_share_of_k_rounded_up_at_most_one_place_in_four(
    k: int, share: float, expected: int
) -> None:
    assert slots(k, share) == expected


# -- what is new -----------------------------------------------------------------------------------


def test_new_is_first_known_lately_and_learned_from_few_customers() -> None:
    policy = ExplorationPolicy(days=30, customers=3)  # the default (1) is "not learned at all"
    first_seen = {
        "fresh": NOW - 2 * DAY,  # upserted two days ago, no event
        "imported": NOW - 1 * DAY,  # upserted yesterday with a history two years old: not new
        "tested": NOW - 5 * DAY,  # the model learned it from three customers: no longer new
        "tried": NOW - 5 * DAY,  # from two
        "old": NOW - 90 * DAY,  # upserted long ago
        "later": NOW - 60.0,  # upserted after the store was read: new by its upsert alone
    }
    novelty = {
        "fresh": Novelty("fresh", NOW - 2 * DAY, None, 0),
        "imported": Novelty("imported", NOW - 1 * DAY, NOW - 700 * DAY, 0),
        "tested": Novelty("tested", NOW - 5 * DAY, NOW - 4 * DAY, 3),
        "tried": Novelty("tried", NOW - 5 * DAY, NOW - 6 * DAY, 2),
    }
    got = new_items(first_seen, novelty, policy, NOW)
    assert got == (
        NewItem("later", NOW - 60.0),
        NewItem("fresh", NOW - 2 * DAY),
        NewItem("tried", NOW - 6 * DAY),  # first known at its first event, before its upsert
    )


# -- the list: the last places, never above the ranking ---------------------------------------------


def cand(item_id: str, source: str = "personalised", tier: int = 0, raw: float | None = 1.0) -> Candidate:
    return Candidate(item_id, raw, source, tier, Reason(source))


def test_take_gives_new_items_the_last_places_only() -> None:
    ranked = [cand(f"r{n}") for n in range(10)]
    new = [cand("n1", EXPLORATION, 4), cand("r1", EXPLORATION, 4), cand("n2", EXPLORATION, 4)]
    everything = lambda i: True  # noqa: E731
    got = [c.item_id for c in take(ranked, 4, everything, new, 1)]
    assert got == ["r0", "r1", "r2", "n1"]
    # r1 is ranked in the list already: the next new item takes the place, once
    got = [c.item_id for c in take(ranked, 6, lambda i: i != "n1", new, 2)]
    assert got == ["r0", "r1", "r2", "r3", "r4", "n2"]
    # fewer new items than places: the ranking fills the rest, never repeating one
    got = [c.item_id for c in take(ranked, 5, everything, [cand("r0", EXPLORATION, 4)], 1)]
    assert got == ["r0", "r1", "r2", "r3", "r4"]
    assert [c.item_id for c in take(ranked, 3, everything)] == ["r0", "r1", "r2"]  # no share: as before


def test_take_of_a_checked_ranking_asks_the_channel_only_about_the_new_items() -> None:
    """`checked`: the ranking already passed the channel's filter (`ranking(..., passes)`), so only the
    new items are asked; the list is the one an unchecked take gives on the same filtered ranking."""
    ranked = [cand(f"r{n}") for n in range(10)]
    new = [cand("n1", EXPLORATION, 4), cand("n2", EXPLORATION, 4)]
    asked: list[str] = []

    def passes(item_id: str) -> bool:
        asked.append(item_id)
        return item_id not in ("r3", "n1")

    filtered = [c for c in ranked if passes(c.item_id)]
    asked.clear()
    got = [c.item_id for c in take(filtered, 5, passes, new, 1, checked=True)]
    assert asked == ["n1", "n2"]
    assert got == [c.item_id for c in take(filtered, 5, passes, new, 1)] == ["r0", "r1", "r2", "r4", "n2"]


def test_a_new_item_scores_below_every_ranked_item() -> None:
    plan = channel_rules.plan_for("home")
    assert plan[-1].name == EXPLORATION
    last = final_score(cand("n", EXPLORATION, len(plan) - 1, raw=1e9), len(plan))
    popular = final_score(cand("p", "popular", len(plan) - 2, raw=-1e9), len(plan))
    assert last < popular


def space_of(learned: list[str], placed: list[str], scores: list[float]) -> tuple[ItemSpace, np.ndarray]:
    ids = np.array(learned + placed, dtype=object)
    vecs = np.zeros((len(ids), 3), np.float32)
    space = ItemSpace(ids, {i: n for n, i in enumerate(ids)}, vecs, vecs[:, :2], frozenset(placed), 1)
    return space, np.array(scores, np.float32)


def test_a_feature_only_score_never_outranks_a_learned_one() -> None:
    space, scores = space_of(["a", "b", "c"], ["new-1", "new-2"], [0.1, 0.5, -2.0, 9.0, 8.0])
    assert [i for i, _ in learned_first(space, scores)] == ["b", "a", "c", "new-1", "new-2"]
    space, scores = space_of(["a", "b"], [], [0.1, 0.5])
    assert [i for i, _ in learned_first(space, scores)] == ["b", "a"]


def test_exploration_ranks_new_items_by_affinity_then_newest() -> None:
    space, scores = space_of(["a"], ["n1", "n2"], [0.0, 1.0, 3.0])
    state = RankingState(
        snapshot=CatalogSnapshot.build([], 1),
        affinity=Affinity(space, scores, "personalised"),
        new_items=(NewItem("n3", NOW), NewItem("n1", NOW - DAY), NewItem("n2", NOW - 2 * DAY)),
        explore_slots=5,
    )
    plan = channel_rules.plan_for("newsletter")
    cands, n = exploring(plan, state, lambda i: i != "n1")
    got = list(cands)
    assert n == 2  # the plan's cap
    assert [c.item_id for c in got] == ["n2", "n3"]  # n2 by affinity, n3 unplaced; n1 not allowed
    assert got[0].reason == Reason("new_in", related_item_id="n2", related_at=NOW - 2 * DAY)
    assert (
        exploring(channel_rules.plan_for("product"), state, lambda i: True)[1] == 0
    )  # not on a product page
    state.met = frozenset({"n2"})  # she looked at it (or took it out of her basket): not new to her
    assert [c.item_id for c in exploring(plan, state, lambda i: True)[0]] == ["n1", "n3"]
    state.affinity = None  # nothing to choose by: the plain fallback
    assert exploring(plan, state, lambda i: True)[1] == 0


def test_the_new_in_sentence_names_the_item() -> None:
    snap = CatalogSnapshot.build([Item("lamp-9", "Aurora A1 Lamp", "lamps", price=40.0)], 1)
    assert (
        sentence(Reason("new_in", related_item_id="lamp-9", related_at=NOW), snap) == "New in: Aurora A1 Lamp"
    )


# -- what a shop needs: a price, stock where the channel counts it ------------------------------------


def test_stock_counts_where_the_catalogue_keeps_it() -> None:
    stocked = CatalogSnapshot.build(
        [
            Item("a", price=1.0, stock={"": 2, "store-1": 0}),
            Item("b", price=1.0, stock={"store-1": 3}),  # rows for a store only
            Item("c", price=1.0),  # no row at all, in a catalogue that keeps stock
        ],
        1,
    )
    assert stocked.keeps_stock
    assert stocked.in_stock("a", "") and not stocked.in_stock("a", "store-1")
    assert not stocked.in_stock("b", "") and stocked.in_stock("b", "store-1")
    assert not stocked.in_stock("c", "") and not stocked.in_stock("c", "store-1")
    web = channel_rules.channel_filter(
        channel_rules.rule_for("WEB"), "", stocked, channel_rules.CallerFilter()
    )
    till = channel_rules.channel_filter(
        channel_rules.rule_for("POS"), "store-1", stocked, channel_rules.CallerFilter()
    )
    assert [i for i in "abc" if web(i)] == ["a"] and [i for i in "abc" if till(i)] == ["b"]
    # stock data missing or rare (one item of three): unknown stock is available
    rare = CatalogSnapshot.build([Item("a", stock={"": 0}), Item("b"), Item("c")], 1)
    assert not rare.keeps_stock and rare.in_stock("b", "") and not rare.in_stock("a", "")


def test_an_item_without_a_price_is_not_offered_where_items_have_prices() -> None:
    promo_over = Offer(promo_price=5.0, valid_from=NOW - 10 * DAY, valid_until=NOW - DAY)
    snap = CatalogSnapshot.build(
        [
            Item("priced", price=10.0),
            Item("offer", offer=Offer(price=12.0)),
            Item("bare"),
            Item("promo-over", offer=promo_over),  # its only price was a promotion that ended
            Item("also-priced", price=3.0),
        ],
        1,
    )
    assert snap.keeps_prices
    allowed = channel_rules.base_filter(snap, set())
    assert [i for i in snap.items if allowed(i)] == ["priced", "offer", "also-priced"]
    movielens = CatalogSnapshot.build([Item("m1", "Heat"), Item("m2", "Fargo")], 1)  # no prices at all
    assert not movielens.keeps_prices and all(map(channel_rules.base_filter(movielens, set()), ["m1", "m2"]))


# -- the store behind "new" --------------------------------------------------------------------------


@pytest.fixture
def storage(tmp_path: Path) -> Iterator[Storage]:
    db = open_storage(tmp_path / "x.db", sync_full=False)
    yield db
    db.close()


def row(n: int, customer: str, item_id: str, at: float, kind: str = "VIEW") -> EventRow:
    return EventRow(f"e{n}", customer, "WEB", kind, item_id, 1, 0.0, "", "", "", at, at, None)


def test_the_first_upsert_is_kept_and_customers_are_counted(storage: Storage) -> None:
    storage.upsert_items([Item("old", price=1.0), Item("imported", price=1.0)], NOW - 100 * DAY)
    storage.upsert_items([Item("imported", price=2.0), Item("new", price=1.0)], NOW - DAY)  # whole upsert
    assert storage.first_seen() == {"old": NOW - 100 * DAY, "imported": NOW - 100 * DAY, "new": NOW - DAY}
    storage.upsert_items([Item("late", price=1.0)], NOW - DAY)
    storage.insert_new_events(
        [
            row(1, "u1", "new", NOW - 3600),
            row(2, "u1", "new", NOW - 1800, "PURCHASE"),
            row(3, "u2", "new", NOW - 600),
            row(4, "u3", "new", NOW - 60, "IMPRESSION"),  # an impression is nobody meeting it
            row(5, "u1", "late", NOW - 400 * DAY),  # an imported history: not new, not counted
        ]
    )
    got = {n.item_id: n for n in storage.item_novelty(NOW - 30 * DAY, ["PURCHASE", "VIEW"], NOW)}
    assert set(got) == {"new", "late"}  # first upserted in the window
    assert got["new"] == Novelty("new", NOW - DAY, NOW - 3600, 2)
    assert got["late"] == Novelty("late", NOW - DAY, NOW - 400 * DAY, 0)
    # what a model trained up to 20 minutes ago learned it from: u1's view only
    got = {n.item_id: n for n in storage.item_novelty(NOW - 30 * DAY, ["PURCHASE", "VIEW"], NOW - 1200)}
    assert got["new"].customers == 1
    assert storage.known_item_ids(["new", "nope", "old", "new"]) == {"new", "old"}


class Trained:
    """What Exploration reads of a model: its version and the newest event it learned from."""

    def __init__(self, version: str, reference_time: float) -> None:
        self.version = version
        self.manifest = {"reference_time": reference_time}


def model(version: str, reference_time: float) -> RankingModel:
    return cast(RankingModel, Trained(version, reference_time))


def test_exploration_reads_the_store_once_per_model_version(storage: Storage) -> None:
    storage.upsert_items([Item("a", price=1.0), Item("b", price=1.0)], NOW - 100 * DAY)
    storage.upsert_items([Item("n", price=1.0)], NOW - DAY)
    explore = Exploration(storage, ExplorationPolicy(), {"VIEW": 1.0, "IMPRESSION": 0.0})
    snap = CatalogSnapshot.build(storage.all_items(), storage.catalog_version(), storage.first_seen())
    assert explore.new_items(snap, model("v1", NOW - DAY), NOW) == (NewItem("n", NOW - DAY),)
    storage.insert_new_events([row(1, "u1", "n", NOW - 60), row(2, "u2", "n", NOW - 30, "IMPRESSION")])
    with storage.count_statements() as sent:  # viewed since: the model serving has not learned it yet
        assert explore.new_items(snap, model("v1", NOW - DAY), NOW + 1) == (NewItem("n", NOW - DAY),)
    assert sent == []
    assert explore.new_items(snap, model("v2", NOW - 10), NOW + 2) == ()  # trained on u1's view
    assert explore.new_items(snap, None, NOW) == ()  # no model: nothing to explore beside
    off = Exploration(storage, ExplorationPolicy(share=0.0), {"VIEW": 1.0})
    assert off.new_items(snap, model("v1", NOW), NOW) == ()
    assert exploration.slots(4, explore.policy.share) == explore.slots(4) == 1


# -- the facade: a brand-new item never comes first ----------------------------------------------------


def test_a_brand_new_item_is_never_first_and_only_tried_in_the_last_place(trained: Seenext) -> None:
    snap = trained.catalog_snapshot()
    popular_category = snap.items[trained.popular()[0][0]].category
    trained.upsert_items([Item("brand-new", "Brand-new thing", popular_category, price=25.0, stock={"": 5})])
    seen_last = 0
    for customer in ("u0", "u1", "u2", "u3", "u4", "u5"):
        rec = trained.recommend(RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", customer), k=8))
        ids = [r.item_id for r in rec.items]
        assert "brand-new" not in ids[:-1], (customer, ids)
        if ids and ids[-1] == "brand-new":
            seen_last += 1
            assert rec.items[-1].reasons[0].code == "new_in"
    similar, _ = trained.similar_items(next(iter(snap.items)), k=len(snap.items))
    assert similar[-1].item_id == "brand-new" or "brand-new" not in [r.item_id for r in similar]
    assert seen_last > 0
