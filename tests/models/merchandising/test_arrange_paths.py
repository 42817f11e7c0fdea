"""The prepared fast paths of a request (boost and bury factors per item, the exclusions in the channel's
predicate) give the same lists as the general path that evaluates each rule per candidate."""

from __future__ import annotations

import random

import pytest

from models.merchandising import rules as r
from models.merchandising.diversity import DiversityPolicy
from models.merchandising.rules import RuleSpec
from tests.models.merchandising.test_rules_engine import ORDER, catalogue, in_force, request

# the same condition read with the request's context too: evaluated per candidate, not from the sets
ALWAYS = ' && context.channel == "WEB"'

REORDERS = [
    [RuleSpec("b", 'item.brand == "shell"', r.BOOST, weight=3.0)],
    [
        RuleSpec("b", 'item.brand == "shell"', r.BOOST, weight=3.0),
        RuleSpec("d", "item.price > 100.0", r.BURY, weight=4.0),
    ],
    [
        RuleSpec("b", 'item.category == "audio"', r.BOOST, weight=1.5),
        RuleSpec("b2", 'item.brand == "nova"', r.BOOST, weight=2.0),
        RuleSpec("d", "item.price > 21.5", r.BURY, weight=1.5),
        RuleSpec("o", "item.on_offer", r.RESERVE, share=0.4),
        RuleSpec("p", 'item.id == "c4"', r.PIN, position=2),
    ],
]  # fmt: skip


@pytest.mark.parametrize("specs", REORDERS)
def test_item_only_boosts_order_as_the_per_candidate_path(specs: list[RuleSpec]) -> None:
    snap = catalogue()
    fast = request(in_force(*specs), snap)
    slow_specs = [
        RuleSpec(s.name, s.condition + ALWAYS, s.action, weight=s.weight)
        if s.action in (r.BOOST, r.BURY)
        else s
        for s in specs
    ]
    slow = request(in_force(*slow_specs), snap, owned=[])
    assert fast._prepared.factors is not None and slow._prepared.factors is None
    rng = random.Random(12)
    for policy in (DiversityPolicy(0.0, "", 0), DiversityPolicy(0.4, "", 2)):
        for _ in range(300):
            pool = rng.sample(ORDER, rng.randint(1, len(ORDER)))
            k = rng.randint(1, len(pool))
            assert fast.arrange(pool, k, snap, policy, lambda i: True) == slow.arrange(
                pool, k, snap, policy, lambda i: True
            ), (pool, k)


def test_the_exclusions_in_the_channel_predicate_filter_as_the_request_does() -> None:
    snap = catalogue()
    req = request(
        in_force(
            RuleSpec("x", 'item.category == "case"', r.EXCLUDE),
            RuleSpec("y", 'item.brand == "zed"', r.EXCLUDE),
        ),
        snap,
    )
    channel = {"p1", "c1", "h1", "h2", "c4"}.__contains__
    both = req.filter_with(channel)
    assert [i for i in ORDER if both(i)] == [i for i in ORDER if channel(i) and req.passes(i)] == ["p1", "h2"]
    with_context = request(
        in_force(RuleSpec("z", 'item.brand == "nova"' + ALWAYS, r.EXCLUDE)), snap, owned=[]
    )
    both = with_context.filter_with(channel)
    assert [i for i in ORDER if both(i)] == [i for i in ORDER if channel(i) and with_context.passes(i)]
    assert [i for i in ORDER if both(i)] == ["c1", "h1", "c4"]
