"""One customer state per request: the value, and the pure functions serving computes from it."""

from __future__ import annotations

import numpy as np

from models.catalog import CatalogSnapshot
from models.domain import Identifier, Item
from models.privacy.consent import ConsentDefaults
from models.service import Seenext
from models.serving import channel_rules, foldin
from models.serving.customer_state import ANONYMOUS, CustomerState, ItemEvent, Tally
from tests.conftest import NOW

ANN = CustomerState(
    "ann",
    aliases=("anon-1",),
    purchases={"phone": Tally(100.0, 1), "coffee": Tally(300.0, 3), "case": Tally(200.0, 1)},
    returns={"case": Tally(250.0, 1), "coffee": Tally(310.0, 1)},
    recent=(
        ItemEvent("mouse", "VIEW", 500.0),
        ItemEvent("laptop", "VIEW", 400.0),
        ItemEvent("x", "VIEW", 90.0),
    ),
    consents={("EMAIL", "marketing"): True, ("ALL", "profiling"): False},
    mailed=frozenset({"m1"}),
)


def test_kept_purchases_leave_out_what_was_returned_as_often_as_bought() -> None:
    assert ANN.kept() == {"phone": 100.0, "coffee": 300.0}
    assert sorted(ANN.bought()) == [("case", 200.0, 1), ("coffee", 300.0, 3), ("phone", 100.0, 1)]
    assert ANONYMOUS.kept() == {} and ANONYMOUS.bought() == [] and not ANONYMOUS.known


def test_events_after_a_time_are_the_newest_of_the_recent_ones() -> None:
    assert ANN.events_after(400.0) == [ItemEvent("mouse", "VIEW", 500.0)]
    assert [e.item_id for e in ANN.events_after(0.0)] == ["mouse", "laptop", "x"]


def test_channel_consent_comes_from_the_state_and_the_defaults() -> None:
    email, web = channel_rules.rule_for("EMAIL"), channel_rules.rule_for("WEB")
    opt_in, opt_out = ConsentDefaults(), ConsentDefaults(marketing=True, profiling=True)
    assert channel_rules.consents(email, ANN, "EMAIL", opt_in)
    assert channel_rules.consents(web, ANONYMOUS, "WEB", opt_in)  # the web asks for no consent
    assert not channel_rules.consents(email, ANONYMOUS, "EMAIL", opt_out)  # nobody to have consented
    bob = CustomerState("bob")
    assert not channel_rules.consents(email, bob, "EMAIL", opt_in)
    assert channel_rules.consents(email, bob, "EMAIL", opt_out)  # SEENEXT_CONSENT_DEFAULT_MARKETING=1
    assert not channel_rules.profiling_allowed(ANN, "WEB", opt_out)  # her opt-out covers every channel
    assert channel_rules.profiling_allowed(bob, "WEB", opt_in) and not channel_rules.profiling_allowed(
        ANONYMOUS, "WEB", opt_in
    )
    assert channel_rules.held_back(email, ANN) == {"m1"} and channel_rules.held_back(web, ANN) == frozenset()


def test_owned_durables_are_kept_purchases_that_are_not_repeatable() -> None:
    snapshot = CatalogSnapshot.build([Item("phone"), Item("coffee", repeatable=True)], 1)
    assert channel_rules.owned_durables(ANN.kept().items(), snapshot) == {"phone"}


def test_fold_in_is_a_pure_function_of_the_state(trained: Seenext) -> None:
    """Fresh laptop views in the state (no event stored) pull a phone customer to laptops, without
    a statement sent to the store."""
    model = trained.serving_model
    assert model is not None
    snapshot = trained.catalog_snapshot()
    space = model.items(snapshot)
    row = model.user_row("u0")
    assert row is not None
    user = model.user_vector(row)
    ref = foldin.reference_time(model)
    fresh = CustomerState("u0", recent=tuple(ItemEvent(f"laptop-{n}", "VIEW", NOW + n) for n in (3, 2, 1)))
    stale = CustomerState("u0", recent=tuple(ItemEvent(f"laptop-{n}", "VIEW", ref - n) for n in (3, 2, 1)))

    def laptops_in_top(state: CustomerState) -> int:
        scores = foldin.known_customer_scores(
            model, space, state, user, snapshot, foldin.Tuning.from_settings(trained.settings)
        )
        return sum(str(space.ids[r]).startswith("laptop") for r in np.argsort(-scores)[:5])

    with trained.count_statements() as sent:
        plain, folded, old = laptops_in_top(CustomerState("u0")), laptops_in_top(fresh), laptops_in_top(stale)
        newcomer = foldin.newcomer_scores(
            model, space, fresh, [], snapshot, foldin.Tuning.from_settings(trained.settings)
        )
    assert sent == []
    assert folded > plain and old == plain  # events the model was trained on do not fold in again
    assert newcomer is not None and newcomer[1] == "laptop-3"  # the strongest (newest) item anchors


def test_the_public_customer_state_resolves_an_identifier_once(trained: Seenext) -> None:
    with trained.count_statements() as sent:
        state = trained.customer_state(Identifier("CUSTOMER_ID", "u2"))
        nobody = trained.customer_state()
    assert len(sent) == 1 and nobody is ANONYMOUS
    assert state.customer_id == "u2" and set(state.kept()) == {"laptop-3", "laptop-4"}
    assert len(state.recent) == 5  # three views and two purchases
    by_id = trained.customer_state(customer_id="u2")
    assert by_id == state
