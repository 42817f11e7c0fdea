"""Looked at, not bought (issue 9 point 5): a pure function of a hand-built customer state.

What the customer viewed, carted or wish-listed comes back, strongest and newest first, until they
buy it, take it out of the basket, or buy another item of its category; each with a dated reason.
"""

from __future__ import annotations

import datetime as dt

import pytest

from models.catalog import CatalogSnapshot
from models.domain import DAY, Identifier, Item
from models.service import Seenext
from models.serving import looked_at, reasons
from models.serving.customer_state import CustomerState, ItemEvent, Tally
from models.serving.recommender import RecommendQuery
from tests.conftest import NOW

AT = dt.datetime(2026, 12, 5, 12, tzinfo=dt.UTC).timestamp()  # the request's reference time
HALF_LIFE = 7.0
CATEGORY = {"phone-a": "phone", "phone-b": "phone", "case-a": "case", "lamp": "lamp", "mug": "mug"}


def day(n: int, hour: int = 10) -> float:
    """n December 2026, UTC."""
    return dt.datetime(2026, 12, n, hour, tzinfo=dt.UTC).timestamp()


def state(*events: ItemEvent, purchases: dict[str, Tally] | None = None) -> CustomerState:
    """A customer with these item events (given in any order; the state holds them newest first)."""
    return CustomerState(
        "ann", purchases=purchases or {}, recent=tuple(sorted(events, key=lambda e: e.at, reverse=True))
    )


def ranked(s: CustomerState, days: float = 30.0, half_life: float = HALF_LIFE) -> list[looked_at.LookedAt]:
    return looked_at.ranked(s, AT, days, half_life, lambda i: CATEGORY.get(i, ""))


def ids(s: CustomerState, **kw: float) -> list[str]:
    return [x.item_id for x in ranked(s, **kw)]


def test_a_cart_outranks_a_wish_which_outranks_a_look_of_the_same_day() -> None:
    s = state(
        ItemEvent("lamp", "VIEW", day(4)),
        ItemEvent("mug", "WISHLIST", day(4)),
        ItemEvent("case-a", "ADD_TO_CART", day(4)),
    )
    got = ranked(s)
    assert [x.item_id for x in got] == ["case-a", "mug", "lamp"]
    assert [x.code for x in got] == ["in_basket", "wishlisted", "viewed"]
    assert got[0].score == pytest.approx(3.0 * 0.5 ** ((AT - day(4)) / DAY / HALF_LIFE))


def test_interest_decays_with_age_so_a_fresh_look_beats_an_old_cart() -> None:
    s = state(ItemEvent("case-a", "ADD_TO_CART", day(5) - 14 * DAY), ItemEvent("lamp", "VIEW", day(5)))
    assert ids(s) == ["lamp", "case-a"]  # 3 * 2**-2 = 0.75 < about 1
    assert ids(s, half_life=30.0) == ["case-a", "lamp"]  # a slower decay keeps the cart first
    assert ids(s, half_life=0.0) == ["case-a", "lamp"]  # 0: no decay at all


def test_the_same_strength_and_age_come_newest_first_then_by_id() -> None:
    s = state(
        ItemEvent("mug", "VIEW", day(3)),
        ItemEvent("lamp", "VIEW", day(3)),
        ItemEvent("case-a", "CLICK", day(4)),
    )
    assert ids(s, half_life=0.0) == ["case-a", "lamp", "mug"]


def test_what_was_bought_since_is_gone_and_what_was_bought_before_stays() -> None:
    # the purchase in the window ends the interest; so does one the window no longer shows
    in_window = state(ItemEvent("lamp", "VIEW", day(1)), ItemEvent("lamp", "PURCHASE", day(2)))
    from_history = state(ItemEvent("lamp", "ADD_TO_CART", day(1)), purchases={"lamp": Tally(day(3), 1)})
    assert ids(in_window) == [] and ids(from_history) == []
    # bought in October, looked at again in December: interested anew (a durable's own exclusion
    # is the channel rules' job, not this source's)
    again = state(ItemEvent("mug", "VIEW", day(4)), purchases={"mug": Tally(day(4) - 50 * DAY, 1)})
    assert ids(again) == ["mug"]


def test_taken_out_of_the_basket_is_gone_until_looked_at_again() -> None:
    removed = state(ItemEvent("lamp", "ADD_TO_CART", day(1)), ItemEvent("lamp", "REMOVE_FROM_CART", day(2)))
    assert ids(removed) == []
    back = state(*removed.recent, ItemEvent("lamp", "VIEW", day(3)))
    assert [(x.item_id, x.code, x.at) for x in ranked(back)] == [("lamp", "viewed", day(3))]


def test_another_item_of_the_category_bought_after_the_look_ends_it() -> None:
    """Two phones compared, one bought: the other is not offered back (story 1); an item of
    another category, or a category bought before the look, stays."""
    s = state(
        ItemEvent("phone-a", "VIEW", day(1)),
        ItemEvent("phone-b", "VIEW", day(1, 11)),
        ItemEvent("case-a", "VIEW", day(2)),
        ItemEvent("phone-b", "PURCHASE", day(2, 12)),
        purchases={"phone-b": Tally(day(2, 12), 1)},
    )
    assert ids(s) == ["case-a"]
    earlier = state(ItemEvent("phone-a", "VIEW", day(3)), purchases={"phone-b": Tally(day(2), 1)})
    assert ids(earlier) == ["phone-a"]


def test_only_the_horizon_counts_and_impressions_are_not_looks() -> None:
    s = state(
        ItemEvent("lamp", "VIEW", AT - 31 * DAY),
        ItemEvent("mug", "IMPRESSION", day(4)),
        ItemEvent("case-a", "EMAIL_SENT", day(4)),
        ItemEvent("phone-a", "AD_CLICK", day(4)),
    )
    assert ids(s) == ["phone-a"]
    assert ids(s, days=40.0) == ["phone-a", "lamp"]


def test_each_reason_carries_its_date_and_reads_as_a_sentence() -> None:
    s = state(
        ItemEvent("case-a", "VIEW", day(1)),
        ItemEvent("case-a", "ADD_TO_CART", day(3)),
        ItemEvent("case-a", "ADD_TO_CART", day(4)),  # a second unit: still in the basket since the 3rd
        ItemEvent("mug", "WISHLIST", day(2)),
        ItemEvent("lamp", "VIEW", day(1, 9)),
    )
    snapshot = CatalogSnapshot.build([Item(i, title=i.title(), category=c) for i, c in CATEGORY.items()], 1)
    got = {
        x.item_id: reasons.sentence(
            reasons.Reason(x.code, related_item_id=x.item_id, related_at=x.at), snapshot, "WEB", now=AT
        )
        for x in ranked(s)
    }
    assert got == {
        "case-a": "Still in your basket since 3 December",
        "mug": "On your wish list since 2 December",
        "lamp": "You looked at this on 1 December",
    }
    assert reasons.sentence(reasons.Reason("viewed"), snapshot) == "You looked at this lately"


def test_ages_count_from_the_earlier_of_now_and_the_newest_event_known() -> None:
    s = state(ItemEvent("lamp", "VIEW", day(4)))
    assert looked_at.reference(s, None, now=AT) == day(4)  # an imported past: its own last day
    assert looked_at.reference(s, day(5), now=AT) == day(5)  # the model's data is newer
    assert looked_at.reference(s, day(9), now=AT) == AT  # never later than now
    assert looked_at.reference(CustomerState("bob"), None, now=AT) == AT
    # the window a request reads reaches back the horizon before the earliest reference
    assert looked_at.window_start(day(4), AT, 30.0) == day(4) - 30 * DAY
    assert looked_at.window_start(day(9), AT, 30.0) == AT - 30 * DAY


def test_the_anchor_of_similar_to_what_you_looked_at_is_never_bought_or_in_the_basket() -> None:
    """Issue 9 point 10: "Similar to the X you looked at" named items bought in store or carted."""
    events = state(
        ItemEvent("phone-a", "PURCHASE", day(4)),
        ItemEvent("case-a", "ADD_TO_CART", day(3, 12)),
        ItemEvent("lamp", "VIEW", day(3)),
        ItemEvent("mug", "VIEW", day(2)),
    ).recent
    known = set(CATEGORY)
    assert looked_at.anchor(events, [], {"phone-a"}, known) == "lamp"
    assert looked_at.anchor(events, ["phone-b"], {"phone-a"}, known) == "phone-b"  # the page's item
    assert looked_at.anchor(events, ["lamp"], {"lamp", "phone-a"}, known) == "mug"  # lamp: in the basket
    assert looked_at.anchor(events, [], {"phone-a", "lamp", "mug"}, known) == ""
    assert looked_at.anchor(events, [], set(), {"phone-a", "case-a"}) == ""  # the model knows no look


def test_a_newcomer_who_bought_in_store_is_not_told_they_looked_at_it(trained: Seenext) -> None:
    """Issue 9 point 10, through the facade: a customer newer than the model who bought Phone 1 at a
    till was told "Similar to the Phone 1 you looked at" (the strongest fresh event named the reason).
    Now the reason names what they did look at, or none."""
    from models.domain import Event

    who = Identifier("CUSTOMER_ID", "till-only")
    trained.track_batch(
        [Event("t1", (who,), "POS", "PURCHASE", "phone-1", store_id="store-1", price=601, occurred_at=NOW)]
    )
    rec = trained.recommend(RecommendQuery(channel="WEB", who=who, k=6, explain=True))
    texts = [r.text for item in rec.items for r in item.reasons]
    assert rec.items and not any("you looked at" in t for t in texts), texts
    trained.track_batch([Event("t2", (who,), "WEB", "VIEW", "laptop-2", occurred_at=NOW + 60)])
    rec = trained.recommend(RecommendQuery(channel="WEB", who=who, k=6, explain=True))
    texts = [r.text for item in rec.items for r in item.reasons]
    first = {item.item_id: item.reasons[0] for item in rec.items}
    assert first["laptop-2"].code == "viewed" and first["laptop-2"].text.startswith("You looked at this on ")
    assert "Similar to the Phone 1 you looked at" not in texts, texts
    assert any(t == "Similar to the Laptop 2 you looked at" for t in texts), texts


def test_a_visitor_is_not_told_they_looked_at_what_is_in_their_basket(trained: Seenext) -> None:
    """Issue 9 point 10: the cart page of a visitor with Laptop 3 in the basket said "Similar to the
    Laptop 3 you looked at" on every item; a page item they do look at may still be named."""
    cart = trained.recommend(
        RecommendQuery(channel="WEB", placement="cart", basket_item_ids=["laptop-3"], k=4, explain=True)
    )
    texts = [r.text for item in cart.items for r in item.reasons]
    assert cart.items and not any("you looked at" in t for t in texts), texts
    page = trained.recommend(
        RecommendQuery(
            channel="WEB",
            placement="cart",
            item_ids=["laptop-1"],
            basket_item_ids=["laptop-3"],
            k=4,
            explain=True,
        )
    )
    assert "Similar to the Laptop 1 you looked at" in [r.text for item in page.items for r in item.reasons]


def test_a_page_of_impressions_does_not_push_the_basket_out_of_the_request_window(trained: Seenext) -> None:
    """A request reads a bounded number of the customer's newest item events; the impressions a web
    shop tracks for every tile it shows (and the mails sent) are not the customer's doing and are
    left out of that window, so a basket from before sixty of them still comes back."""
    from models.domain import Event

    u5 = (Identifier("CUSTOMER_ID", "u5"),)
    trained.track_batch([Event("cart", u5, "WEB", "ADD_TO_CART", "phone-4", occurred_at=NOW - 3600)])
    trained.track_batch(
        [
            Event(f"imp-{n}", u5, "WEB", "IMPRESSION", f"flowers-{n % 5 + 1}", occurred_at=NOW - n)
            for n in range(60)
        ]
    )
    rec = trained.recommend(RecommendQuery(channel="WEB", who=u5[0], k=6))
    assert ("phone-4", "in_basket") in [(i.item_id, i.reasons[0].code) for i in rec.items]
