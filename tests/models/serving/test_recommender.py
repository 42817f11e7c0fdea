"""Recommendation strategies and the rules no model may break."""

from __future__ import annotations

import contextlib
import dataclasses
import sqlite3

import pytest

from models.domain import Event, Identifier
from models.errors import InvalidArgument
from models.service import Seenext
from models.serving.recommender import RecommendQuery, in_holdout
from tests.conftest import flag_repeatable


def ask(svc: Seenext, customer: str | None = None, **kw: object) -> list[str]:
    who = Identifier("CUSTOMER_ID", customer) if customer else None
    rec = svc.recommend(RecommendQuery(channel=kw.pop("channel", "WEB"), who=who, **kw))  # type: ignore[arg-type]
    return [r.item_id for r in rec.items]


def test_known_customer_gets_personalised_items_of_their_taste(trained: Seenext) -> None:
    rec = trained.recommend(RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", "u2"), k=3))
    assert rec.recognised and rec.customer_id == "u2" and rec.strategy == "personalised"
    assert rec.model_version == trained.serving_model.version  # type: ignore[union-attr]
    assert len({r.item_id for r in rec.items}) == 3
    assert all(r.item_id.startswith("laptop-") for r in rec.items)


def test_bought_durables_are_excluded_consumables_are_not(trained: Seenext) -> None:
    laptops = ask(trained, "u2", k=10)
    assert not {"laptop-3", "laptop-4"} & set(laptops)  # u2 bought these in the fixture
    flag_repeatable(trained, "flowers")  # the catalogue's flag: bought again, whatever was learned
    flowers = ask(trained, "u1", k=10, categories=["flowers"])
    assert "flowers-2" in flowers  # u1 bought flowers-2, but flowers are repeatable


def test_a_purchase_tracked_after_training_is_excluded_at_once(trained: Seenext) -> None:
    top = ask(trained, "u5", k=1)[0]
    trained.track(
        Event("fresh", (Identifier("CUSTOMER_ID", "u5"),), "POS", "PURCHASE", top, store_id="store-1")
    )
    assert top not in ask(trained, "u5", k=10)


def test_anonymous_visitor_with_viewed_items_gets_similar_items(trained: Seenext) -> None:
    rec = trained.recommend(RecommendQuery(channel="WEB", item_ids=["flowers-1"], k=3))
    assert not rec.recognised and rec.strategy == "similar_items"
    assert all(r.item_id.startswith("flowers-") and r.item_id != "flowers-1" for r in rec.items)
    assert rec.items[0].reasons[0].code == "similar_to_viewed"


def test_anonymous_visitor_without_context_gets_popular_in_channel(trained: Seenext) -> None:
    rec = trained.recommend(RecommendQuery(channel="POS", k=4, explain=True))
    assert rec.strategy == "popular" and len(rec.items) == 4
    assert rec.items[0].reasons[0].code == "popular_in_channel" and rec.items[0].reasons[0].text


def test_unknown_identifier_is_anonymous(trained: Seenext) -> None:
    rec = trained.recommend(RecommendQuery(channel="WEB", who=Identifier("DEVICE_ID", "never-seen"), k=2))
    assert not rec.recognised and rec.customer_id == "" and len(rec.items) == 2


def test_without_a_model_everyone_gets_popular(service: Seenext) -> None:
    service.track(Event("e", (Identifier("CUSTOMER_ID", "c"),), "WEB", "PURCHASE", "x"))
    rec = service.recommend(RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", "d"), k=5))
    assert rec.strategy == "popular" and [r.item_id for r in rec.items] == ["x"] and rec.model_version == ""


def test_filters_stock_price_and_basket(trained: Seenext) -> None:
    in_store = ask(trained, "u0", k=10, in_stock_only=True, store_id="store-1", categories=["phone case"])
    assert "case-1" not in in_store and in_store  # case-1 has no stock in store-1
    cheap = ask(trained, "u2", k=10, max_price=1102.5)
    assert cheap and all(not i.startswith("laptop-") or i in {"laptop-1", "laptop-2"} for i in cheap)
    assert "phone-2" not in ask(trained, "u0", k=20, basket_item_ids=["phone-2"])


def test_offer_and_title_come_from_the_catalogue(trained: Seenext) -> None:
    rec = trained.recommend(RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", "u2"), k=1))
    item = rec.items[0]
    assert item.title.startswith("Laptop") and item.offer is not None and item.offer.promo_price > 0


@pytest.mark.parametrize(
    "query, field",
    [
        (RecommendQuery(channel=""), "channel"),
        (RecommendQuery(channel="WEB", k=101), "k"),
        (RecommendQuery(channel="WEB", k=-1), "k"),
        (RecommendQuery(channel="WEB", who=Identifier("EMAIL", "")), "who.value"),
        (RecommendQuery(channel="WEB", max_price=-1), "filter.max_price"),
    ],
)
def test_bad_queries_name_the_field(trained: Seenext, query: RecommendQuery, field: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        trained.recommend(query)
    assert err.value.field == field


def test_holdout_assignment_is_stable_and_near_its_share() -> None:
    ids = [f"c{i}" for i in range(20_000)]
    share = sum(in_holdout(c, 0.1) for c in ids) / len(ids)
    assert 0.09 < share < 0.11
    assert [in_holdout(c, 0.1) for c in ids[:50]] == [in_holdout(c, 0.1) for c in ids[:50]]
    assert not any(in_holdout(c, 0.0) for c in ids[:100])


def test_served_recommendations_are_logged(trained: Seenext) -> None:
    rec = trained.recommend(RecommendQuery(channel="APP", who=Identifier("CUSTOMER_ID", "u1"), k=2))
    trained.flush_served()
    with contextlib.closing(sqlite3.connect(trained.settings.db_path)) as conn:  # the log as stored
        row = conn.execute(
            "SELECT customer_id, channel, items FROM recommendations WHERE recommendation_id=?",
            (rec.recommendation_id,),
        ).fetchone()
    assert row[0] == "u1" and row[1] == "APP" and len(row[2]) > 2


@pytest.mark.parametrize("settings", [{"catalog_refresh_seconds": 0.0}], indirect=True)
def test_one_recommend_reads_the_customer_once_and_an_anonymous_one_not_at_all(trained: Seenext) -> None:
    """Issue 8: every statement the request thread sends during one Recommend is counted. After a
    warm-up request of the same shape for another customer (caches filled: catalogue snapshot, item
    space, popularity, complements), a Recommend for a known customer sends exactly one statement — the
    customer-state read, which resolves the identifier itself — and an anonymous Recommend sends none.
    Issue 11: once the change feed is followed, the customer's next Recommend sends none either (their
    state is in memory), except an e-mail's, whose mailed items depend on the time of the request. The
    served log is written by its own thread and the catalogue version is checked off the request
    thread, even when every request finds the snapshot due for a check (refresh period 0)."""
    trained.follow_changes()
    queries = [
        (RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", "u2"), k=5), 0),
        (
            RecommendQuery(channel="EMAIL", who=Identifier("CUSTOMER_ID", "u1"), placement="newsletter", k=5),
            1,
        ),
        (
            RecommendQuery(
                channel="POS",
                who=Identifier("CUSTOMER_ID", "u0"),
                placement="checkout",
                basket_item_ids=["phone-1"],
            ),
            0,
        ),
        (
            RecommendQuery(
                channel="WEB", who=Identifier("CUSTOMER_ID", "newbie"), item_ids=["flowers-1"], k=3
            ),
            0,
        ),
    ]
    for q, cached in queries:
        assert q.who is not None
        trained.recommend(dataclasses.replace(q, who=Identifier("CUSTOMER_ID", "u9")))  # warm-up
        with trained.count_statements() as cold:
            trained.recommend(q)
        assert len(cold) == 1, (q, cold)
        assert "FROM identifiers WHERE kind = ? AND value_key = ?" in cold[0].replace(
            "'CUSTOMER_ID'", "?"
        ).replace(f"'{q.who.value}'", "?")
        with trained.count_statements() as again:
            trained.recommend(q)
        assert len(again) == cached, (q, again)
    anonymous = RecommendQuery(channel="POS", store_id="store-1", item_ids=["flowers-1"], k=4)
    trained.recommend(anonymous)
    with trained.count_statements() as sent:
        rec = trained.recommend(anonymous)
    assert sent == [] and rec.items and not rec.recognised


def test_sentences_are_added_to_copies_of_the_shared_reason(trained: Seenext) -> None:
    """The personalised source gives all of a request's items one `Reason` object (models/serving/ranking.py);
    the sentence an explained answer carries is written into a copy, so the ranking's reason stays as it
    was and the items' reasons are separate objects: changing one changes no other."""
    rec = trained.recommend(
        RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", "u2"), k=3, explain=True)
    )
    reasons = [r.reasons[0] for r in rec.items]
    assert all(x.code == "personalised" and x.text for x in reasons)
    assert len({id(x) for x in reasons}) == len(reasons)
    reasons[0].text = "changed"
    assert all(x.text != "changed" for x in reasons[1:])
    plain = trained.recommend(RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", "u2"), k=3))
    assert [r.reasons[0].text for r in plain.items] == ["", "", ""]
