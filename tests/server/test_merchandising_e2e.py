"""Issue 12: merchandisers steer the answers through MerchandisingService, as a retailer's tools would.

A small shop sent through UpsertItems and TrackBatch (no training: the popular ranking is known in
advance), a server with API keys, then rules created, changed and previewed through the stubs; every
test switches its rules off again (deletes them) so the next one starts from the plain ranking.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from models.service import Seenext
from models.settings import Settings
from protos.seenext.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    insights_pb2,
    insights_pb2_grpc,
    merchandising_pb2,
    merchandising_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from server import convert
from server.app import Running, create_server
from tests import postgres as pg
from tests.conftest import tiny_settings

KEYS = {
    "admin": ("admin-secret-0123456789", ["*"]),
    "merchandiser": ("merchandiser-secret-0123456789", ["merchandising"]),
    "web-shop": ("web-shop-secret-0123456789", ["track", "recommend", "catalog", "consent"]),
    "marketing": ("marketing-secret-0123456789", ["insights"]),
}
CHANNELS = ("WEB", "APP", "EMAIL", "POS", "CALL_CENTER", "ADS")
A = merchandising_pb2


def md(name: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {KEYS[name][0]}")]


def who(customer: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=customer)


def shop() -> list[catalog_pb2.Item]:
    """Six phones of two brands, five cases of one phone, chargers, headphones, each with online stock."""
    items = []

    def add(item_id: str, category: str, brand: str, price: float, **kw: object) -> None:
        items.append(
            catalog_pb2.Item(
                item_id=item_id, title=item_id, category=category, brand=brand, price=price,
                stock=[catalog_pb2.Stock(store_id=s, quantity=5) for s in ("", "s1")],
                **kw,  # type: ignore[arg-type]
            )
        )  # fmt: skip

    for n in range(1, 4):
        add(f"phone-a{n}", "phone", "Acme", 500.0 + n)
        add(f"phone-z{n}", "phone", "Zed", 400.0 + n)
    for n in range(1, 6):
        add(f"case-{n}", "case", "Shell", 20.0 + n, accessory_for=["phone-a1"])
    for n in range(1, 4):
        add(f"charger-{n}", "charger", "Volt", 15.0 + n)
        add(f"audio-{n}", "audio", "Zed", 90.0 + n)
    return items


def purchases() -> list[events_pb2.Event]:
    """Cases most popular, then chargers, phones, headphones last: the popular ranking everyone gets."""
    weights = {"case": 6, "charger": 4, "phone": 2, "audio": 1}
    now = int(time.time())
    events = []
    for item in shop():
        for n in range(weights[item.category] + (6 - int(item.item_id[-1]))):
            e = events_pb2.Event(
                event_id=f"buy-{item.item_id}-{n}",
                identifiers=[who(f"buyer-{n}")],
                channel=common_pb2.CHANNEL_WEB,
                type=common_pb2.EVENT_TYPE_PURCHASE,
                item_id=item.item_id,
            )
            e.occurred_at.FromSeconds(now - 3600 - n)
            events.append(e)
    for n, (customer, item_id) in enumerate(
        (("fan-1", "phone-a2"), ("fan-1", "phone-z2"), ("fan-2", "charger-2"))
    ):
        e = events_pb2.Event(
            event_id=f"fan-{n}",
            identifiers=[who(customer)],
            channel=common_pb2.CHANNEL_POS,
            type=common_pb2.EVENT_TYPE_PURCHASE,
            item_id=item_id,
            store_id="s1",
        )
        e.occurred_at.FromSeconds(now - 7200)
        events.append(e)
    for n in range(SHOPPERS):  # known customers who bought nothing yet: the experiment's subjects
        e = events_pb2.Event(
            event_id=f"visit-{n}", identifiers=[who(f"shopper-{n}")], channel=common_pb2.CHANNEL_WEB,
            type=common_pb2.EVENT_TYPE_VISIT,
        )  # fmt: skip
        e.occurred_at.FromSeconds(now - 7200)
        events.append(e)
    return events


SHOPPERS = 24


@pytest.fixture(scope="module", params=["sqlite", "postgres"] if pg.wanted() else ["sqlite"])
def server(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Running]:
    """The shop on each backend: the rules live in the store every replica reads."""
    folder = tmp_path_factory.mktemp("merch")
    cluster: pg.Cluster | None = (
        request.getfixturevalue("postgres_cluster") if request.param == "postgres" else None
    )
    url = cluster.database() if cluster is not None else ""
    keys = folder / "keys.json"
    keys.write_text(json.dumps({"keys": [{"name": n, "key": k, "scopes": s} for n, (k, s) in KEYS.items()]}))
    settings: Settings = tiny_settings(
        folder / "data",
        auth=True,
        keys_file=str(keys),
        diversity_category_share=0.3,
        consent_default_marketing=True,
        database_url=url,
    )
    running = create_server(settings)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
        catalog_pb2_grpc.CatalogServiceStub(ch).UpsertItems(
            catalog_pb2.UpsertItemsRequest(items=shop()), metadata=md("admin")
        )
        reply = events_pb2_grpc.EventServiceStub(ch).TrackBatch(
            events_pb2.TrackBatchRequest(events=purchases()), metadata=md("admin")
        )
        assert not reply.rejected
    running.stop(grace=1.0)  # popularity is cached for a minute: a new server ranks the history sent
    running = create_server(settings)
    yield running
    running.stop(grace=1.0)
    if cluster is not None:
        cluster.drop(url)


@pytest.fixture
def channel(server: Running) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


@pytest.fixture
def rules(channel: grpc.Channel) -> Iterator[merchandising_pb2_grpc.MerchandisingServiceStub]:
    stub = merchandising_pb2_grpc.MerchandisingServiceStub(channel)
    yield stub
    for rule in stub.ListRules(A.ListRulesRequest(), metadata=md("merchandiser")).rules:
        stub.DeleteRule(A.DeleteRuleRequest(rule_id=rule.rule_id), metadata=md("merchandiser"))


def create(stub: merchandising_pb2_grpc.MerchandisingServiceStub, **spec: object) -> merchandising_pb2.Rule:
    spec.setdefault("enabled", True)
    reply = stub.CreateRule(A.CreateRuleRequest(spec=A.RuleSpec(**spec)), metadata=md("merchandiser"))  # type: ignore[arg-type]
    return reply.rule


def ask(
    channel: grpc.Channel,
    customer: str = "",
    ch: str = "WEB",
    placement: str = "home",
    k: int = 8,
    **kw: object,
) -> list[str]:
    request = recommendation_pb2.RecommendRequest(
        who=who(customer) if customer else None,
        channel=common_pb2.Channel.Value(f"CHANNEL_{ch}"),
        placement=placement,
        k=k,
        context=recommendation_pb2.Context(**kw),  # type: ignore[arg-type]
    )
    reply = recommendation_pb2_grpc.RecommendationServiceStub(channel).Recommend(
        request, metadata=md("web-shop")
    )
    return [i.item_id for i in reply.items]


def category(item_id: str) -> str:
    return {i.item_id: i.category for i in shop()}[item_id]


CUSTOMERS = ("", "fan-1", "fan-2", "someone-new")  # fan-1 owns two phones, fan-2 a charger


def test_defaults_keep_four_cases_of_one_phone_out_of_a_list(channel: grpc.Channel) -> None:
    """The five cases of phone-a1 are the most popular items; a list holds two of them at most."""
    for customer in CUSTOMERS:
        got = ask(channel, customer)
        assert len(got) == 8 and sum(category(i) == "case" for i in got) == 2, got


def test_a_category_cap_holds(channel: grpc.Channel) -> None:
    """SEENEXT_DIVERSITY_CATEGORY_SHARE=0.3: at most 2 (of 8) items of one category, every channel."""
    for ch in CHANNELS:
        got = ask(channel, "fan-1", ch, store_id="s1" if ch == "POS" else "")
        counts = {c: sum(category(i) == c for i in got) for c in {category(i) for i in got}}
        assert got and max(counts.values()) <= 2, (ch, got)


def test_a_boost_lifts_its_brand_on_its_placement_only(
    channel: grpc.Channel, rules: merchandising_pb2_grpc.MerchandisingServiceStub
) -> None:
    before = {(c, p): ask(channel, c, placement=p) for c in CUSTOMERS for p in ("home", "cart")}
    create(rules, name="Zed week", placements=["home"], condition='item.brand == "Zed"',
           action=A.RULE_ACTION_BOOST, weight=100.0)  # fmt: skip
    zed = {i.item_id for i in shop() if i.brand == "Zed"}
    for customer in CUSTOMERS:
        home = ask(channel, customer, placement="home")
        old = before[(customer, "home")]
        assert home[0] in zed and sum(i in zed for i in home) > sum(i in zed for i in old), (home, old)
        lifted = sum(i in zed for i in home)
        assert all(i in zed for i in home[:lifted]), home  # every Zed item of the list before the others
        assert ask(channel, customer, placement="cart") == before[(customer, "cart")]


def test_a_pin_holds_its_position(
    channel: grpc.Channel, rules: merchandising_pb2_grpc.MerchandisingServiceStub
) -> None:
    create(
        rules,
        name="charger 3 second",
        condition='item.id == "charger-3"',
        action=A.RULE_ACTION_PIN,
        position=2,
    )
    for customer in CUSTOMERS:
        for ch in ("WEB", "APP", "EMAIL"):
            if ch == "EMAIL" and not customer.startswith("fan"):
                continue  # e-mail offers nothing to someone who cannot have consented
            got = ask(channel, customer, ch)
            assert got[1] == "charger-3", (customer, ch, got)


def test_an_exclusion_never_leaks_in_any_channel(
    channel: grpc.Channel, rules: merchandising_pb2_grpc.MerchandisingServiceStub
) -> None:
    create(rules, name="no cases", condition='item.category == "case"', action=A.RULE_ACTION_EXCLUDE)
    for customer in CUSTOMERS:
        for ch in CHANNELS:
            for placement in ("home", "cart", "product", "newsletter"):
                got = ask(channel, customer, ch, placement, k=20, store_id="s1" if ch == "POS" else "",
                          item_ids=["phone-a1"] if placement == "product" else [],
                          basket_item_ids=["phone-a1"] if placement == "cart" else [])  # fmt: skip
                assert not [i for i in got if category(i) == "case"], (customer, ch, placement, got)
    stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
    batch = stub.RecommendBatch(
        recommendation_pb2.RecommendBatchRequest(
            who=[who(c) for c in ("fan-1", "fan-2")], channel=common_pb2.CHANNEL_EMAIL, k=20
        ),
        metadata=md("admin"),
    )
    assert all(category(i.item_id) != "case" for r in batch for i in r.items)
    for ch in ("", "WEB"):  # SimilarItems (product pages) too: no model here, the same category by popularity
        similar = stub.SimilarItems(
            recommendation_pb2.SimilarItemsRequest(
                item_id="case-1", k=10, channel=common_pb2.Channel.Value(f"CHANNEL_{ch or 'UNSPECIFIED'}")
            ),
            metadata=md("web-shop"),
        )
        assert [i.item_id for i in similar.items if category(i.item_id) == "case"] == []


def test_a_slot_reservation_fills_its_share(
    channel: grpc.Channel, rules: merchandising_pb2_grpc.MerchandisingServiceStub
) -> None:
    """Headphones are the least popular; half of a 4-item list is reserved for them."""
    assert not any(category(i) == "audio" for i in ask(channel, "", k=4))
    create(
        rules,
        name="audio promo",
        condition='item.category == "audio"',
        action=A.RULE_ACTION_RESERVE,
        share=0.5,
    )
    for customer in CUSTOMERS:
        got = ask(channel, customer, k=4)
        assert len(got) == 4 and sum(category(i) == "audio" for i in got) >= 2, got


def test_a_context_rule_reads_what_the_customer_owns(
    channel: grpc.Channel, rules: merchandising_pb2_grpc.MerchandisingServiceStub
) -> None:
    """'Same brand as the phone they own': buyer-1 bought phones of both brands, a newcomer none."""
    create(rules, name="own brand", action=A.RULE_ACTION_INCLUDE_ONLY,
           condition='context.owned.exists(o, o.category == "phone" && o.brand == item.brand)')  # fmt: skip
    owned_brands = {"Acme", "Zed"}
    brand = {i.item_id: i.brand for i in shop()}
    got = ask(channel, "fan-1", k=20)
    assert got and all(brand[i] in owned_brands for i in got)
    assert ask(channel, "someone-new") == []


def test_preview_shows_the_list_with_and_without_the_rule(
    channel: grpc.Channel, rules: merchandising_pb2_grpc.MerchandisingServiceStub
) -> None:
    now = ask(channel, "fan-1")
    spec = A.RuleSpec(
        name="pin audio", condition='item.id == "audio-3"', action=A.RULE_ACTION_PIN, position=1
    )
    request = recommendation_pb2.RecommendRequest(who=who("fan-1"), channel=common_pb2.CHANNEL_WEB, k=8)
    reply = rules.PreviewRule(A.PreviewRuleRequest(spec=spec, request=request), metadata=md("merchandiser"))
    assert [i.item_id for i in reply.without_rule] == now
    assert reply.with_rule[0].item_id == "audio-3"
    assert ask(channel, "fan-1") == now  # a preview changes nothing
    stored = create(rules, name="off for now", condition='item.id == "audio-3"', action=A.RULE_ACTION_PIN,
                    position=1, enabled=False)  # fmt: skip
    assert ask(channel, "fan-1") == now
    reply = rules.PreviewRule(
        A.PreviewRuleRequest(rule_id=stored.rule_id, request=request), metadata=md("merchandiser")
    )
    assert reply.with_rule[0].item_id == "audio-3"
    rules.SetRuleEnabled(
        A.SetRuleEnabledRequest(rule_id=stored.rule_id, enabled=True), metadata=md("merchandiser")
    )
    assert ask(channel, "fan-1")[0] == "audio-3"
    # the request's fields are named where they sit in PreviewRuleRequest
    for bad, field in (
        (recommendation_pb2.RecommendRequest(who=who("fan-1"), k=8), "request.channel:"),
        (recommendation_pb2.RecommendRequest(channel=common_pb2.CHANNEL_WEB, k=-1), "request.k:"),
        (
            recommendation_pb2.RecommendRequest(channel=common_pb2.CHANNEL_WEB, who=common_pb2.Identifier()),
            "request.who.",
        ),
    ):
        with pytest.raises(grpc.RpcError) as err:
            rules.PreviewRule(A.PreviewRuleRequest(spec=spec, request=bad), metadata=md("merchandiser"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith(field), err.value.details()


def test_every_change_is_versioned_with_who_and_when(
    channel: grpc.Channel, rules: merchandising_pb2_grpc.MerchandisingServiceStub
) -> None:
    started = time.time()
    rule = create(rules, name="v1", condition="item.price > 100.0", action=A.RULE_ACTION_BURY, weight=2.0)
    spec = A.RuleSpec(
        name="v2", condition="item.price > 200.0", action=A.RULE_ACTION_BURY, weight=3.0, enabled=True
    )
    updated = rules.UpdateRule(
        A.UpdateRuleRequest(rule_id=rule.rule_id, spec=spec), metadata=md("admin")
    ).rule
    rules.SetRuleEnabled(
        A.SetRuleEnabledRequest(rule_id=rule.rule_id, enabled=False), metadata=md("merchandiser")
    )
    history = rules.GetRuleHistory(
        A.GetRuleHistoryRequest(rule_id=rule.rule_id), metadata=md("merchandiser")
    ).changes
    assert rule.version == 1 and updated.version == 2 and updated.updated_by == "admin"
    assert [(c.version, c.change, c.changed_by) for c in history] == [
        (1, "created", "merchandiser"),
        (2, "updated", "admin"),
        (3, "disabled", "merchandiser"),
    ]
    assert [c.spec.name for c in history] == ["v1", "v2", "v2"] and not history[-1].spec.enabled
    assert all(started - 1 <= c.changed_at.seconds <= time.time() + 1 for c in history)
    listed = rules.ListRules(A.ListRulesRequest(), metadata=md("merchandiser"))
    assert [(r.rule_id, r.version) for r in listed.rules] == [(rule.rule_id, 3)] and listed.rules_version >= 3


@pytest.mark.parametrize(
    "spec, field, where",
    [
        (
            dict(condition='item.brand == "Zed" &&', action=A.RULE_ACTION_EXCLUDE),
            "spec.condition",
            "line 1, column 23",
        ),
        (
            dict(condition='item.brand ==\n  = "Zed"', action=A.RULE_ACTION_EXCLUDE),
            "spec.condition",
            "line 2, column 3",
        ),
        (
            dict(condition="shop.brand == 1", action=A.RULE_ACTION_EXCLUDE),
            "spec.condition",
            "line 1, column 1",
        ),
        (dict(condition="true", action=A.RULE_ACTION_BOOST, weight=0.5), "spec.weight", "above 1"),
        (dict(condition="true", action=A.RULE_ACTION_PIN), "spec.position", "1 to 100"),
        (dict(condition="true"), "spec.action", "required"),
    ],
)
def test_a_bad_rule_is_refused_naming_where(
    rules: merchandising_pb2_grpc.MerchandisingServiceStub, spec: dict[str, object], field: str, where: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        create(rules, name="bad", **spec)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.value.details().startswith(f"{field}:") and where in err.value.details()


def test_a_key_without_the_merchandising_scope_is_refused(
    rules: merchandising_pb2_grpc.MerchandisingServiceStub,
) -> None:
    spec = A.RuleSpec(name="x", condition="true", action=A.RULE_ACTION_EXCLUDE, enabled=True)
    # changing needs "merchandising"; reading what is in force needs "rules" (which it grants)
    for call, request, scope in (
        (rules.CreateRule, A.CreateRuleRequest(spec=spec), "merchandising"),
        (rules.ListRules, A.ListRulesRequest(), "rules"),
    ):
        with pytest.raises(grpc.RpcError) as err:
            call(request, metadata=md("web-shop"))  # type: ignore[operator]
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert f"scope '{scope}'" in err.value.details()


def test_a_rule_changed_in_one_process_applies_in_another_within_a_second(
    server: Running,
    tmp_path: Path,
    rules: merchandising_pb2_grpc.MerchandisingServiceStub,
    channel: grpc.Channel,
) -> None:
    """A second server on the same data folder (as `seenext serve --processes 2` runs) follows a rule
    created through the first."""
    other = create_server(server.service.settings)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{other.port}") as second:
            before = ask(second, "fan-1")
            assert "charger-1" in before
            rule = create(
                rules, name="no charger 1", condition='item.id == "charger-1"', action=A.RULE_ACTION_EXCLUDE
            )
            created = time.monotonic()
            while "charger-1" in ask(second, "fan-1"):
                assert time.monotonic() - created < 1.0, "not applied within a second"
                time.sleep(0.02)
            rules.DeleteRule(A.DeleteRuleRequest(rule_id=rule.rule_id), metadata=md("merchandiser"))
            deleted = time.monotonic()
            while "charger-1" not in ask(second, "fan-1"):
                assert time.monotonic() - deleted < 1.0, "deletion not applied within a second"
                time.sleep(0.02)
    finally:
        other.stop(grace=1.0)


def test_a_placement_plan_is_data_changed_through_the_api(
    channel: grpc.Channel, rules: merchandising_pb2_grpc.MerchandisingServiceStub
) -> None:
    listed = {
        p.placement: p
        for p in rules.ListPlacements(A.ListPlacementsRequest(), metadata=md("merchandiser")).placements
    }
    home = listed["home"]
    assert home.is_default and [(s.name, s.limit) for s in home.sources] == [
        ("owned_complements", 3), ("looked_at", 8), ("personalised", 0), ("popular", 0), ("exploration", 2)
    ]  # fmt: skip
    assert {"home", "product", "cart", "checkout", "newsletter", "ads", "profile"} <= set(listed)
    assert sum(category(i) == "case" for i in ask(channel)) == 2
    plan = A.PlacementPlan(
        placement="home",
        sources=home.sources,
        diversity=A.DiversitySpec(category_share=0.0, near_duplicates=0),
    )
    stored = rules.SetPlacement(A.SetPlacementRequest(plan=plan), metadata=md("merchandiser")).plan
    assert not stored.is_default and stored.version == 1 and stored.updated_by == "merchandiser"
    try:
        assert sum(category(i) == "case" for i in ask(channel)) == 5  # no cap on the home page now
        assert sum(category(i) == "case" for i in ask(channel, placement="newsletter")) == 2
        bad = A.PlacementPlan(placement="home", sources=[A.CandidateSource(name="bestsellers")])
        with pytest.raises(grpc.RpcError) as err:
            rules.SetPlacement(A.SetPlacementRequest(plan=bad), metadata=md("merchandiser"))
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert err.value.details().startswith("plan.sources[0].name:")
    finally:
        reset = rules.ResetPlacement(
            A.ResetPlacementRequest(placement="home"), metadata=md("merchandiser")
        ).plan
    assert reset.is_default and sum(category(i) == "case" for i in ask(channel)) == 2
    history = rules.GetPlacementHistory(
        A.GetPlacementHistoryRequest(placement="home"), metadata=md("marketing")
    ).changes  # read-only: the marketing key's `insights` scope grants `rules`
    assert [(c.change, c.plan.version, c.plan.updated_by, c.plan.is_default) for c in history] == [
        ("set", 1, "merchandiser", False), ("reset", 2, "merchandiser", True)
    ]  # fmt: skip
    assert history[0].plan.diversity.category_share == 0.0 and history[0].plan.updated_at.seconds > 0
    assert not rules.GetPlacementHistory(
        A.GetPlacementHistoryRequest(placement="cart"), metadata=md("marketing")
    ).changes


def test_a_variants_customers_get_the_variants_rules_and_the_report_splits_them(
    channel: grpc.Channel, rules: merchandising_pb2_grpc.MerchandisingServiceStub
) -> None:
    baseline = ask(channel, "shopper-0")
    assert baseline and baseline[0] != "audio-3"
    rule = create(
        rules, name="audio first", condition='item.id == "audio-3"', action=A.RULE_ACTION_PIN, position=1
    )
    spec = A.ExperimentSpec(
        name="does a pinned headphone sell?", placement="home", enabled=True,
        variants=[A.ExperimentVariant(name="pinned", share=0.5, rule_ids=[rule.rule_id])],
    )  # fmt: skip
    experiment = rules.CreateExperiment(
        A.CreateExperimentRequest(spec=spec), metadata=md("merchandiser")
    ).experiment
    try:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(channel)
        served: dict[str, recommendation_pb2.RecommendResponse] = {}
        for n in range(SHOPPERS):
            request = recommendation_pb2.RecommendRequest(
                who=who(f"shopper-{n}"), channel=common_pb2.CHANNEL_WEB, k=8
            )
            served[f"shopper-{n}"] = first = stub.Recommend(request, metadata=md("web-shop"))
            again = stub.Recommend(request, metadata=md("web-shop"))
            assert [i.item_id for i in again.items] == [i.item_id for i in first.items]  # a stable assignment
        pinned = {c for c, r in served.items() if r.items[0].item_id == "audio-3"}
        control = set(served) - pinned
        assert pinned and control, "a 50 % variant of 24 customers holds some of them, not all"
        assert all([i.item_id for i in served[c].items] == baseline for c in control)
        assert ask(channel, "", placement="home")[0] != "audio-3"  # an anonymous visitor is in no variant
        # every pinned customer buys what was pinned for them; of the control, one buys
        buyers = sorted(pinned) + sorted(control)[:1]
        purchases = [
            events_pb2.Event(
                event_id=f"exp-buy-{c}", identifiers=[who(c)], channel=common_pb2.CHANNEL_WEB,
                type=common_pb2.EVENT_TYPE_PURCHASE, item_id=served[c].items[0].item_id,
                recommendation_id=served[c].recommendation_id,
            )
            for c in buyers
        ]  # fmt: skip
        events_pb2_grpc.EventServiceStub(channel).TrackBatch(
            events_pb2.TrackBatchRequest(events=purchases), metadata=md("admin")
        )
        report = insights_pb2_grpc.InsightsServiceStub(channel).ChannelReport(
            insights_pb2.ChannelReportRequest(), metadata=md("admin")
        )
        arm = f"variant:{experiment.experiment_id}/"
        rows = {r.arm: r for r in report.rows if r.arm.startswith(arm)}
        assert rows[arm + "pinned"].customers == len(pinned) and rows[arm + "control"].customers == len(
            control
        )
        assert rows[arm + "pinned"].conversions == len(pinned) and rows[arm + "control"].conversions == 1
        (u,) = [v for v in report.variant_uplift if v.experiment_id == experiment.experiment_id]
        assert u.variant == "pinned" and u.channel == common_pb2.CHANNEL_WEB
        assert u.variant_rate > u.control_rate and u.uplift > 0 and u.ci_low <= u.uplift <= u.ci_high
    finally:
        rules.SetExperimentEnabled(
            A.SetExperimentEnabledRequest(experiment_id=experiment.experiment_id, enabled=False),
            metadata=md("merchandiser"),
        )
    # stopped: the variant's rule is an ordinary rule again, in force for every customer (the roll-out)
    assert len(control) >= 2 and all(ask(channel, c)[0] == "audio-3" for c in sorted(control)[1:])
    history = rules.GetExperimentHistory(
        A.GetExperimentHistoryRequest(experiment_id=experiment.experiment_id), metadata=md("marketing")
    ).changes
    assert [(c.change, c.experiment.version, c.experiment.spec.enabled) for c in history] == [
        ("created", 1, True), ("stopped", 2, False)
    ]  # fmt: skip
    assert {c.experiment.updated_by for c in history} == {"merchandiser"}
    with pytest.raises(grpc.RpcError) as err:
        rules.GetExperimentHistory(
            A.GetExperimentHistoryRequest(experiment_id="nope"), metadata=md("marketing")
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and err.value.details().startswith("experiment_id:")


def serve(data_dir: Path) -> tuple[subprocess.Popen[str], int]:
    """`seenext serve` in a process of its own on `data_dir` (keys off: this test is about processes)."""
    env = dict(
        os.environ, SEENEXT_DATA_DIR=str(data_dir), SEENEXT_PORT="0", SEENEXT_DEMO="0", SEENEXT_AUTH="0"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve"],
        cwd=Path(__file__).resolve().parents[2],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = re.search(r"serving on [\d.]+:(\d+)", proc.stdout.readline())
        if found:
            return proc, int(found.group(1))
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
    proc.kill()
    raise TimeoutError("server did not start")


def test_two_server_processes_apply_a_rule_within_a_second(tmp_path: Path) -> None:
    """Two `seenext serve` processes on one SQLite file: a rule created through one is in force in the
    other within a second (its watcher polls the rules counter every 0.4 s)."""
    with Seenext(tiny_settings(tmp_path)) as seeded:  # the shop, stored before the servers start
        seeded.upsert_items([convert.item(i) for i in shop()])
        assert not seeded.track_batch([convert.event(e) for e in purchases()]).rejected
    first, first_port = serve(tmp_path)
    second, second_port = serve(tmp_path)
    try:
        with (
            grpc.insecure_channel(f"127.0.0.1:{first_port}") as one,
            grpc.insecure_channel(f"127.0.0.1:{second_port}") as two,
        ):
            web = recommendation_pb2.RecommendRequest(channel=common_pb2.CHANNEL_WEB, k=8)
            recommend = recommendation_pb2_grpc.RecommendationServiceStub(two).Recommend
            assert "case-1" in [i.item_id for i in recommend(web, timeout=10).items]
            spec = A.RuleSpec(
                name="no case 1", condition='item.id == "case-1"', action=A.RULE_ACTION_EXCLUDE, enabled=True
            )
            merchandising_pb2_grpc.MerchandisingServiceStub(one).CreateRule(
                A.CreateRuleRequest(spec=spec), timeout=10
            )
            created = time.monotonic()
            while "case-1" in [i.item_id for i in recommend(web, timeout=10).items]:
                assert time.monotonic() - created < 1.0, (
                    "the other process did not apply the rule within a second"
                )
                time.sleep(0.02)
    finally:
        for proc in (first, second):
            proc.send_signal(signal.SIGTERM)
        for proc in (first, second):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
