"""Placement plans as data and experiments on the tiny trained world (a model serves: plans matter)."""

from __future__ import annotations

import pytest

from models.domain import Identifier
from models.errors import FailedPrecondition, InvalidArgument, NotFound
from models.merchandising.experiments import ExperimentSpec, Variant, split_arm
from models.merchandising.placements import PlacementPlan, default_plan
from models.service import Seenext
from models.serving.channel_rules import Source
from models.serving.recommender import RecommendQuery

CUSTOMERS = [f"u{n}" for n in range(12)]


def strategy(svc: Seenext, customer: str, placement: str = "home") -> str:
    who = Identifier("CUSTOMER_ID", customer)
    return svc.recommend(RecommendQuery(channel="WEB", who=who, placement=placement, k=3)).strategy


def test_a_plan_set_replaces_the_default_and_a_reset_brings_it_back(trained: Seenext) -> None:
    assert strategy(trained, "u2") == "personalised"
    placed = trained.set_placement(PlacementPlan("home", (Source("popular"),)), "tester")
    assert not placed.is_default and placed.version == 1
    assert strategy(trained, "u2") == "popular"
    assert strategy(trained, "u2", "newsletter") == "personalised"  # another placement keeps its plan
    home = next(p for p in trained.placements() if p.plan.placement == "home")
    assert home.plan.sources == (Source("popular"),) and home.updated_by == "tester"
    trained.reset_placement("home", "tester")
    assert strategy(trained, "u2") == "personalised"
    assert next(p for p in trained.placements() if p.plan.placement == "home").plan == default_plan("home")
    with pytest.raises(NotFound):
        trained.reset_placement("home", "tester")
    with pytest.raises(InvalidArgument, match=r"plan.sources\[1\].limit"):
        trained.set_placement(PlacementPlan("home", (Source("popular"), Source("personalised", -1))), "x")


def test_a_variants_customers_get_the_variants_plan_and_the_rest_the_placements(trained: Seenext) -> None:
    spec = ExperimentSpec("popular vs model", "home", (Variant("popular", 0.5, (Source("popular"),)),))
    experiment = trained.create_experiment(spec, "tester")
    got = {c: strategy(trained, c) for c in CUSTOMERS}
    variant = {c for c in CUSTOMERS if experiment.assign(c) is not None}
    assert variant and set(CUSTOMERS) - variant  # a 50 % share of 12 customers
    assert all(got[c] == "popular" for c in variant)
    assert all(got[c] != "popular" for c in set(CUSTOMERS) - variant)
    trained.flush_served()
    report = trained.channel_report()
    arms = {split_arm(r.arm): r.customers for r in report.rows if split_arm(r.arm) is not None}
    assert arms == {
        (experiment.experiment_id, "popular"): len(variant),
        (experiment.experiment_id, "control"): len(CUSTOMERS) - len(variant),
    }
    with pytest.raises(FailedPrecondition):  # one experiment per placement at a time
        trained.create_experiment(spec, "tester")
    trained.set_experiment_enabled(experiment.experiment_id, False, "tester")
    assert all(strategy(trained, c) != "popular" for c in CUSTOMERS)


@pytest.mark.parametrize(
    "variants, field",
    [
        ((), "spec.variants"),
        ((Variant("control", 0.5, (Source("popular"),)),), "spec.variants[0].name"),
        ((Variant("a", 0.6, (Source("popular"),)), Variant("b", 0.6, (Source("popular"),))), "spec.variants"),
        ((Variant("a", 0.5),), "spec.variants[0]"),
        ((Variant("a", 0.5, (Source("bestsellers"),)),), "spec.variants[0].sources[0].name"),
        ((Variant("a", 0.5, rule_ids=("nope",)),), "spec.variants[0].rule_ids[0]"),
    ],
)
def test_bad_experiments_name_the_field(service: Seenext, variants: tuple[Variant, ...], field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        service.create_experiment(ExperimentSpec("x", "home", variants), "tester")
    assert err.value.field == field
