"""The item-only paths of issue 12's cost work give the lists of the general ones: `arrange` over the
rules' sets against `arrange_per_candidate` (each rule asked about each candidate, every cap checked
item by item), the near-duplicate pass of `diversify` against `every_cap`, and a Request shared by
every request of rules that never read `context`."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from models.catalog import CatalogSnapshot
from models.domain import Item, Offer
from models.merchandising import rules as r
from models.merchandising.diversity import DiversityPolicy, diversify, every_cap
from models.merchandising.engine import RulesInForce, request_for
from models.merchandising.rules import CompiledRule, RuleSpec, check_spec

NOW = time.time()
BRANDS = ["nova", "zed", "shell", "acme"]
CATEGORIES = ["phone", "case", "audio", "cable"]


def world(seed: int, n: int = 60) -> CatalogSnapshot:
    """Phones, and accessories of one or two of them (so near duplicates come in groups), some on
    offer, some dear."""
    rng = random.Random(seed)
    phones = [f"p{i}" for i in range(6)]
    items = [Item(p, p, "phone", rng.choice(BRANDS), rng.choice([300.0, 600.0])) for p in phones]
    for i in range(n - len(phones)):
        category = rng.choice(CATEGORIES[1:])
        mains = rng.sample(phones, rng.choice([0, 1, 1, 1, 2]))
        offer = Offer(price=50.0, promo_price=30.0) if rng.random() < 0.25 else None
        price = rng.uniform(5, 120)
        brand = rng.choice(BRANDS)
        items.append(Item(f"i{i:02d}", "", category, brand, price, accessory_for=mains, offer=offer))
    return CatalogSnapshot.build(items, seed, {i.item_id: NOW - 86_400.0 * 30 for i in items})


def in_force(specs: list[RuleSpec]) -> RulesInForce:
    return RulesInForce(1, tuple(CompiledRule(f"r{n}", s, check_spec(s), n) for n, s in enumerate(specs)))


RULE_SETS = [
    [RuleSpec("x", 'item.category == "cable"', r.EXCLUDE)],  # nothing to reorder: diversity alone
    [
        RuleSpec("b", 'item.brand == "shell"', r.BOOST, weight=3.0),
        RuleSpec("d", "item.price > 100.0", r.BURY, weight=4.0),
    ],
    [RuleSpec("o", "item.on_offer", r.RESERVE, share=0.3)],
    [RuleSpec("p", 'item.id == "i07"', r.PIN, position=2)],
    [RuleSpec("p", 'item.category == "audio"', r.PIN, position=1)],  # a pin matching many items
    [  # the benchmark's five
        RuleSpec("x", 'item.category == "cable"', r.EXCLUDE),
        RuleSpec("b", 'item.brand == "nova"', r.BOOST, weight=3.0),
        RuleSpec("d", "item.price > 100.0", r.BURY, weight=4.0),
        RuleSpec("p", 'item.id == "i11"', r.PIN, position=3),
        RuleSpec("o", "item.on_offer", r.RESERVE, share=0.2),
    ],
    [  # two reservations and two pins competing for places
        RuleSpec("o", "item.on_offer", r.RESERVE, share=0.4),
        RuleSpec("a", 'item.category == "audio"', r.RESERVE, share=0.3),
        RuleSpec("p", 'item.id == "i03"', r.PIN, position=1),
        RuleSpec("q", 'item.brand == "zed"', r.PIN, position=4),
        RuleSpec("b", 'item.category == "case"', r.BOOST, weight=1.5),
        RuleSpec("b2", 'item.brand == "acme"', r.BOOST, weight=2.0),
    ],
]


def _outside(barred: frozenset[str]) -> Callable[[str], bool]:
    return lambda i: i not in barred


POLICIES = [
    DiversityPolicy(0.0, "", 0),
    DiversityPolicy(0.0, "", 1),
    DiversityPolicy(0.0, "", 2),
    DiversityPolicy(0.3, "", 2),
]


@pytest.mark.parametrize("specs", RULE_SETS)
def test_arrange_over_the_sets_gives_the_per_candidate_lists(specs: list[RuleSpec]) -> None:
    rng = random.Random(len(specs))
    for seed in range(3):
        snap = world(seed)
        rules = in_force(specs)
        req = request_for(rules.for_request("home", "WEB"), rules.matches(snap, NOW), dict)
        assert req._prepared.item_only
        ids = sorted(snap.items)
        for policy in POLICIES:
            for _ in range(150):
                pool = rng.sample(ids, rng.randint(1, 30))
                k = rng.randint(1, min(len(pool), 12))
                eligible = _outside(frozenset(rng.sample(ids, rng.randint(0, 20))))  # the request's filters
                assert req.arrange(pool, k, snap, policy, eligible) == req.arrange_per_candidate(
                    pool, k, snap, policy, eligible
                ), (pool, k, policy)


def test_the_near_duplicate_pass_gives_the_lists_of_every_cap() -> None:
    rng = random.Random(3)
    for seed in range(4):
        snap = world(seed, 80)
        ids = sorted(snap.items)
        for near in (1, 2, 3):
            policy = DiversityPolicy(0.0, "", near)
            for _ in range(300):
                order = rng.sample(ids, rng.randint(0, 40))
                k = rng.randint(1, 15)
                held = frozenset(rng.sample(order, min(len(order), rng.randint(0, 2))))
                assert diversify(order, k, snap, policy, held) == every_cap(order, k, snap, policy, held)


def test_one_request_serves_every_request_of_rules_that_never_read_the_context() -> None:
    snap = world(0)
    asked: list[int] = []

    def context() -> dict[str, object]:
        asked.append(1)
        return {"channel": "WEB"}

    item_only = in_force([RuleSpec("b", 'item.brand == "zed"', r.BOOST, weight=2.0)])
    applicable, matches = item_only.for_request("home", "WEB"), item_only.matches(snap, NOW)
    assert request_for(applicable, matches, context) is request_for(applicable, matches, context)
    assert not asked  # the context is never built for them
    reads = in_force([RuleSpec("c", 'item.brand == "zed" && context.channel == "WEB"', r.BOOST, weight=2.0)])
    applicable, matches = reads.for_request("home", "WEB"), reads.matches(snap, NOW)
    first, second = request_for(applicable, matches, context), request_for(applicable, matches, context)
    assert first is not second and first.context == {"channel": "WEB"} and len(asked) == 2
