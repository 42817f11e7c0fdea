"""Complements: baskets and few-day episodes, association by lift, catalogue links, ranking by affinity."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from models.catalog import CatalogSnapshot
from models.domain import Event, Identifier, Item
from models.events import EventStore
from models.identity.graph import IdentityGraph
from models.identity.pii import PiiKey
from models.serving.channel_rules import Source
from models.serving.complements import ACCESSORY, BOUGHT_TOGETHER, Complements, learn, transactions
from models.serving.embeddings import ItemSpace
from models.serving.ranking import Affinity, RankingState, ranking
from models.storage import open_storage

DAY = 86400.0


def test_an_episode_is_one_order_or_purchases_within_the_window() -> None:
    rows = [
        ("a", "phone", "o1", 0.0),
        ("a", "case", "o1", 0.0),  # one basket
        ("a", "charger", "o2", 2 * DAY),  # two days later: same episode
        ("a", "flowers", "o3", 10 * DAY),  # a new episode
        ("a", "vase", "", 10 * DAY + 3600),
        ("b", "phone", "o9", 0.0),
        ("b", "case", "o9", 5 * DAY),  # an order never splits
    ]
    assert list(transactions(rows, window_days=3)) == [
        frozenset({"phone", "case", "charger"}),
        frozenset({"flowers", "vase"}),
        frozenset({"phone", "case"}),
    ]


def test_lift_known_answer_and_minimum_support() -> None:
    baskets = [frozenset("ab")] * 4 + [frozenset("ac")] + [frozenset("c")] * 3 + [frozenset("d")] * 2
    table = learn(baskets, min_support=2, min_lift=1.5)
    assert table.transactions == 10
    (link,) = table.of("a")
    # a in 5 baskets, b in 4, both in 4, of 10: lift = 4 * 10 / (5 * 4) = 2.0
    assert (link.item_id, link.kind, link.support) == ("b", BOUGHT_TOGETHER, 4) and link.lift == 2.0
    assert [x.item_id for x in table.of("b")] == ["a"]
    assert table.of("c") == ()  # a+c once: below the support, and lift 0.5


def test_lift_not_raw_counts_a_best_seller_is_no_complement() -> None:
    # "bag" is in every basket: it co-occurs most often with everything, but only by chance (lift 1).
    baskets = (
        [frozenset({"bag", "phone", "case"})] * 5
        + [frozenset({"bag", "shoes"})] * 20
        + [frozenset({"bag"})] * 5
    )
    table = learn(baskets, min_support=3, min_lift=1.5)
    assert [x.item_id for x in table.of("phone")] == ["case"]
    assert table.of("bag") == ()


def test_bulk_transactions_are_not_counted_as_pairs() -> None:
    big = frozenset(f"i{n}" for n in range(60))
    assert learn([big] * 5, min_support=2, min_lift=1.0).links == {}


def shop() -> CatalogSnapshot:
    return CatalogSnapshot.build(
        [
            Item("phone", category="phones"),
            Item("phone2", category="phones"),
            Item("case", category="cases", accessory_for=["phone"]),
            Item("charger", category="chargers", accessory_for=["phone"]),
            Item("sleeve", category="sleeves", accessory_for=["laptop"]),
            Item("laptop", category="laptops"),
            Item("laptop2", category="laptops"),
            Item("mouse", category="mice"),
            Item("screen", category="screen protectors"),
        ],
        1,
    )


def learned_from(tmp_path: Path, baskets: list[list[str]]) -> Complements:
    db = open_storage(tmp_path / "c.db", sync_full=False)
    store = EventStore(db, IdentityGraph(db, PiiKey(b"k" * 32)))
    events = [
        Event(
            f"e{n}-{i}",
            (Identifier("CUSTOMER_ID", f"c{n}"),),
            "WEB",
            "PURCHASE",
            item,
            order_id=f"o{n}",
            occurred_at=1_700_000_000.0 + n * 30 * DAY,
        )
        for n, basket in enumerate(baskets)
        for i, item in enumerate(basket)
    ]
    store.track_batch(events)
    return Complements(db, window_days=3, min_support=2, min_lift=1.1)


def test_catalogue_links_come_first_then_learned_ones_without_alternatives(tmp_path: Path) -> None:
    comp = learned_from(
        tmp_path,
        [["phone", "screen", "phone2"]] * 3
        + [["laptop", "mouse"]] * 2
        + [["sleeve", "laptop2", "mouse"]] * 2
        + [["case"]] * 3,
    )
    links = [(a, link.item_id, link.kind) for a, link in comp.links(["phone"], shop())]
    assert links[:2] == [("phone", "case", ACCESSORY), ("phone", "charger", ACCESSORY)]
    assert ("phone", "screen", BOUGHT_TOGETHER) in links
    assert ("phone", "phone2", BOUGHT_TOGETHER) not in links  # same category: an alternative
    sleeve = [link.item_id for _, link in comp.links(["sleeve"], shop())]
    assert "mouse" in sleeve and "laptop2" not in sleeve  # who bought a sleeve has the laptop


def test_complements_are_ranked_by_the_customers_affinity(tmp_path: Path) -> None:
    comp = learned_from(tmp_path, [["phone", "screen"]] * 3 + [["mouse"]] * 3)
    snapshot = shop()
    ids = np.array(["case", "charger", "screen", "phone"], dtype=object)
    space = ItemSpace(
        ids,
        {i: n for n, i in enumerate(ids)},
        np.zeros((4, 2), np.float32),
        np.zeros((4, 1), np.float32),
        frozenset(),
        1,
    )

    def ranked(scores: list[float] | None) -> list[tuple[str, str]]:
        aff = Affinity(space, np.array(scores, dtype=np.float32), "personalised") if scores else None
        state = RankingState(snapshot=snapshot, basket=["phone"], affinity=aff)
        return [
            (c.item_id, c.reason.code)
            for c in ranking([Source("basket_complements")], state, comp, lambda i: i != "phone")
        ]

    assert ranked([0.1, 0.9, 0.5, 0.0]) == [
        ("charger", "accessory_for_basket"),
        ("screen", "bought_together"),
        ("case", "accessory_for_basket"),
    ]
    assert ranked([0.9, 0.1, 0.5, 0.0])[0][0] == "case"
    # Without a model to rank by: catalogue links first, then learned ones by lift.
    assert ranked(None) == [
        ("case", "accessory_for_basket"),
        ("charger", "accessory_for_basket"),
        ("screen", "bought_together"),
    ]


def test_the_table_is_built_once_and_refreshed_after_training(tmp_path: Path) -> None:
    comp = learned_from(tmp_path, [["phone", "screen"]] * 3 + [["case"]] * 3)
    first = comp.table("v1")
    assert comp.table("v1") is first and first.of("phone")
    EventStore(comp.storage, IdentityGraph(comp.storage, PiiKey(b"k" * 32))).track_batch(
        [
            Event(
                f"x{n}-{item}",
                (Identifier("CUSTOMER_ID", f"x{n}"),),
                "WEB",
                "PURCHASE",
                item,
                order_id=f"ox{n}",
            )
            for n in range(3)
            for item in ("laptop", "mouse")
        ]
    )
    refreshed = comp.refresh("v2")
    assert refreshed.key == "v2" and [x.item_id for x in refreshed.of("laptop")] == ["mouse"]
