"""The rules engine on a known catalogue: conditions, each action, diversity, storage and reload."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from models.catalog import CatalogSnapshot
from models.domain import Event, Identifier, Item, Offer
from models.errors import InvalidArgument, NotFound
from models.merchandising import rules as r
from models.merchandising.cel_engine import Condition, activation, compile_condition
from models.merchandising.diversity import DiversityPolicy, diversify
from models.merchandising.engine import Request, RulesInForce, context_view
from models.merchandising.merchandiser import compile_rules
from models.merchandising.rules import CompiledRule, RuleSpec, check_spec
from models.service import Seenext
from models.serving.recommender import RecommendQuery
from tests.conftest import tiny_settings

DAY = 86_400.0
NOW = time.time()


def catalogue() -> CatalogSnapshot:
    items = [
        Item("p1", "Nova", "phone", "nova", 500.0, stock={"": 3}),
        Item("p2", "Zed", "phone", "zed", 400.0, stock={"": 0}),
        Item("c1", "Case 1", "case", "shell", 20.0, accessory_for=["p1"]),
        Item("c2", "Case 2", "case", "shell", 21.0, accessory_for=["p1"]),
        Item("c3", "Case 3", "case", "shell", 22.0, accessory_for=["p1"]),
        Item("c4", "Case 4", "case", "shell", 23.0, accessory_for=["p2"]),
        Item("h1", "Buds", "audio", "zed", 90.0, attributes={"colour": "red"}),
        Item("h2", "Cans", "audio", "nova", 150.0, offer=Offer(price=150.0, promo_price=99.0)),
    ]
    first_seen = {i.item_id: NOW - 100 * DAY for i in items} | {"h1": NOW - 2 * DAY}
    return CatalogSnapshot.build(items, 7, first_seen)


def in_force(*specs: RuleSpec) -> RulesInForce:
    return RulesInForce(1, tuple(CompiledRule(f"r{n}", s, check_spec(s), n) for n, s in enumerate(specs)))


def request(rules: RulesInForce, snap: CatalogSnapshot, **ctx: object) -> Request:
    context = context_view(snap, channel="WEB", placement="home", **ctx) if ctx else {}  # type: ignore[arg-type]
    return Request(rules.for_request("home", "WEB"), rules.matches(snap, NOW), context)


ORDER = ["c1", "c2", "p1", "h1", "c3", "h2", "p2", "c4"]
NO_DIVERSITY = DiversityPolicy(0.0, "", 0)


def arrange(
    req: Request, snap: CatalogSnapshot, k: int = 5, policy: DiversityPolicy = NO_DIVERSITY
) -> list[str]:
    return req.arrange(ORDER, k, snap, policy, lambda i: True)


@pytest.mark.parametrize(
    "condition, matching",
    [
        ('item.brand == "zed"', {"p2", "h1"}),
        ("item.price < 100.0", {"c1", "c2", "c3", "c4", "h1", "h2"}),  # h2's promotion price counts
        ("item.on_offer", {"h2"}),
        ("item.in_stock", {"p1", "c1", "c2", "c3", "c4", "h1", "h2"}),  # no stock rows: not checked
        ("item.age_days < 7.0", {"h1"}),
        ('item.attributes["colour"] == "red"', {"h1"}),  # an item without the attribute: false, no error
        ('"p1" in item.accessory_for', {"c1", "c2", "c3"}),
    ],
)
def test_item_conditions_match_what_they_say(condition: str, matching: set[str]) -> None:
    snap = catalogue()
    rules = in_force(RuleSpec("t", condition, r.EXCLUDE))
    assert set(rules.matches(snap, NOW).by_rule["r0"]) == matching


def test_context_conditions_read_what_the_customer_owns_and_the_page() -> None:
    snap = catalogue()
    same_brand = RuleSpec(
        "own brand", 'context.owned.exists(o, o.category == "phone" && o.brand == item.brand)', r.INCLUDE_ONLY
    )
    rules = in_force(same_brand)
    assert rules.rules[0].condition.uses_context
    req = request(rules, snap, owned=["p1"])
    assert [i for i in ORDER if req.passes(i)] == ["p1", "h2"]
    page = in_force(RuleSpec("page brand", "item.brand == context.page_item.brand", r.EXCLUDE))
    req = request(page, snap, page=["p2"])
    assert [i for i in ORDER if not req.passes(i)] == ["h1", "p2"]


def test_boost_and_bury_reorder_by_their_factor() -> None:
    snap = catalogue()
    boosted = arrange(
        request(in_force(RuleSpec("b", 'item.category == "audio"', r.BOOST, weight=10.0)), snap), snap
    )
    assert boosted[:2] == ["h1", "h2"]
    buried = arrange(
        request(in_force(RuleSpec("b", 'item.category == "case"', r.BURY, weight=10.0)), snap), snap, k=8
    )
    assert buried == ["p1", "h1", "h2", "p2", "c1", "c2", "c3", "c4"]


def test_a_pin_takes_its_place_even_from_outside_the_pool() -> None:
    snap = catalogue()
    pinned = arrange(request(in_force(RuleSpec("p", 'item.id == "c4"', r.PIN, position=2)), snap), snap)
    assert pinned == ["c1", "c4", "c2", "p1", "h1"]
    req = request(in_force(RuleSpec("p", 'item.id == "c4"', r.PIN, position=1)), snap)
    assert req.arrange(["c1", "c2", "p1"], 3, snap, NO_DIVERSITY, lambda i: True) == ["c4", "c1", "c2"]
    assert req.arrange(["c1", "c2", "p1"], 3, snap, NO_DIVERSITY, lambda i: i != "c4") == ["c1", "c2", "p1"]


def test_a_reservation_fills_its_share_in_ranking_order() -> None:
    snap = catalogue()
    req = request(in_force(RuleSpec("promo", 'item.category == "audio"', r.RESERVE, share=0.6)), snap)
    got = req.arrange(["c1", "c2", "p1", "c3", "h2", "h1"], 5, snap, NO_DIVERSITY, lambda i: True)
    assert got == ["c1", "c2", "p1", "h2", "h1"]  # three of five, the last places of non-matching items


def test_diversity_caps_near_duplicates_and_categories_without_shortening_the_list() -> None:
    snap = catalogue()
    order = ["c1", "c2", "c3", "p1", "c4"]
    assert diversify(order, 5, snap, DiversityPolicy(0.0, "", 2)) == ["c1", "c2", "p1", "c4", "c3"]
    assert diversify(order, 4, snap, DiversityPolicy(0.5, "", 0)) == ["c1", "c2", "p1", "c3", "c4"]
    assert diversify(["c1", "c2", "c3"], 3, snap, DiversityPolicy(0.3, "", 1)) == [
        "c1",
        "c2",
        "c3",
    ]  # nothing else


@pytest.mark.parametrize(
    "spec, field, where",
    [
        (RuleSpec("x", "item.price >", r.EXCLUDE), "spec.condition", "line 1, column 13"),
        (RuleSpec("x", "true &&\n item.brand = 1", r.EXCLUDE), "spec.condition", "line 2, column 13"),
        (RuleSpec("x", "basket.size() > 1", r.EXCLUDE), "spec.condition", "unknown variable 'basket'"),
        (RuleSpec("x", "", r.EXCLUDE), "spec.condition", "required"),
        (RuleSpec("", "true", r.EXCLUDE), "spec.name", "required"),
        (RuleSpec("x", "true", "promote"), "spec.action", "INCLUDE_ONLY"),
        (RuleSpec("x", "true", r.BOOST, weight=1.0), "spec.weight", "above 1"),
        (RuleSpec("x", "true", r.RESERVE, share=1.5), "spec.share", "at most 1"),
        (RuleSpec("x", "true", r.EXCLUDE, channels=("FAX",)), "spec.channels[0]", "FAX"),
    ],
)
def test_bad_rules_name_the_field_and_where(spec: RuleSpec, field: str, where: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        check_spec(spec)
    assert err.value.field == field and where in str(err.value)


def test_an_evaluation_error_is_no_match() -> None:
    cond = compile_condition('item.price > "cheap"', "c")
    from models.merchandising.cel_engine import activation

    assert cond.test(activation(item={"price": 1.0})) is False


def test_a_rule_that_no_longer_compiles_is_skipped_not_fatal() -> None:
    from models.storage.merchandising import StoredRule

    good = StoredRule("a", RuleSpec("ok", "true", r.EXCLUDE).to_json(), 1, 0.0, "me", 0.0)
    bad = StoredRule("b", RuleSpec("broken", "item.", r.EXCLUDE).to_json(), 1, 0.0, "me", 0.0)
    assert [c.rule_id for c in compile_rules(3, [good, bad]).rules] == ["a"]


def test_two_instances_on_one_file_follow_each_others_changes(tmp_path: Path) -> None:
    """What every serving process does: a change through one is in force in the other within a second
    (its watcher polls the counter every SEENEXT_RULES_REFRESH_SECONDS)."""
    settings = tiny_settings(tmp_path)
    with Seenext(settings) as one, Seenext(settings) as two:
        one.upsert_items(list(catalogue().items.values()))
        buys = [
            Event(f"e{n}", (Identifier("CUSTOMER_ID", f"u{n}"),), "WEB", "PURCHASE", item_id=i)
            for n, i in enumerate(ORDER)
        ]
        assert not one.track_batch(buys).rejected
        two.start_background()
        ask = RecommendQuery(channel="WEB", k=8)
        assert "c1" in [x.item_id for x in two.recommend(ask).items]
        rule = one.create_rule(RuleSpec("no c1", 'item.id == "c1"', r.EXCLUDE), "tester")
        created = time.monotonic()
        while "c1" in [x.item_id for x in two.recommend(RecommendQuery(channel="WEB", k=8)).items]:
            assert time.monotonic() - created < 1.0
            time.sleep(0.02)
        assert [(c.change, c.changed_by) for c in two.rule_history(rule.rule_id)] == [("created", "tester")]
        assert [x.rule_id for x in two.merchandising_rules()] == [rule.rule_id]
        one.delete_rule(rule.rule_id, "tester")
        assert two.merchandising_rules() == [] and len(two.rule_history()) == 2
        with pytest.raises(NotFound):
            two.update_rule(rule.rule_id, RuleSpec("x", "true", r.EXCLUDE), "tester")


CONTEXT_CONDITIONS = [
    "item.brand in context.owned_brands",  # one field: each brand evaluated once
    'item.brand == context.page_item.brand && item.category != "phone"',  # two fields
    "item.price > 100.0 && context.customer_known",
    "item.accessory_for.exists(p, p in context.owned.map(o, o.id))",  # a list: not hashable
    'item.attributes.colour == "red" && context.channel == "WEB"',  # a map; and items without it
    "item.colour == context.channel",  # a field no item has: every item alike, no match
]


@pytest.mark.parametrize("condition", CONTEXT_CONDITIONS)
def test_a_context_condition_answers_by_the_values_of_the_item_fields_it_reads(
    condition: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Items with the same values of the fields a context condition reads share one evaluation per
    request; the answers are those of evaluating each item on its own."""
    snap = catalogue()
    rules = in_force(RuleSpec("ctx", condition, r.EXCLUDE))
    assert rules.rules[0].condition.uses_context
    context = {"owned": ["p1", "h1"], "page": ["p2"], "known": True}

    def alone(item_id: str) -> bool:  # the condition on this item's view by itself
        req = request(rules, snap, **context)
        view = req.matches.views[item_id]
        fields = rules.rules[0].condition.item_fields
        act = activation(
            context=req.context, item=view if fields is None else {f: view[f] for f in fields if f in view}
        )
        return rules.rules[0].condition.test(act)

    expected = {i: alone(i) for i in ORDER}
    evaluated: list[str] = []
    test = Condition.test
    monkeypatch.setattr(Condition, "test", lambda self, act: evaluated.append("") or test(self, act))
    req = request(rules, snap, **context)
    assert {i: req.match(rules.rules[0], i) for i in ORDER} == expected
    # one evaluation per distinct values of the fields read; an item holding a list or a map there, one each
    views = req.matches.views
    fields = sorted(rules.rules[0].condition.item_fields or ())
    values = [tuple(views[i].get(f) for f in fields) for i in ORDER]
    plain = [v for v in values if all(isinstance(x, str | float | int | bool | None) for x in v)]
    evaluations = len(set(plain)) + len(values) - len(plain)
    assert len(evaluated) == evaluations
    assert {i: req.match(rules.rules[0], i) for i in ORDER} == expected  # and asked again: remembered
    assert len(evaluated) == evaluations
