"""The web shop's client against a real server: home, product and cart pages, similar items."""

from __future__ import annotations

import grpc
import pytest

from clients.web import WebClient
from clients.web import main as web_main
from models.domain import Item


def ids(reply: object) -> list[str]:
    return [i.item_id for i in reply.items]  # type: ignore[attr-defined]


def test_home_page_of_a_known_customer_is_personalised_and_explained(channel: grpc.Channel) -> None:
    rec = WebClient(channel).home(customer_id="alice", k=5)
    assert rec.recognised and rec.customer_id == "alice" and len(rec.items) == 5
    assert "phone-1" not in ids(rec)  # she bought it
    assert rec.items[0].reasons[0].code == "accessory_for_owned"
    assert rec.items[0].reasons[0].text.startswith("Accessory for the Nova X1 Phone you bought on ")
    assert all(i.reasons and i.reasons[0].text for i in rec.items)
    assert [i.score for i in rec.items] == sorted((i.score for i in rec.items), reverse=True)


def test_cold_start_an_anonymous_visitor_gets_items_built_from_what_they_viewed(
    channel: grpc.Channel,
) -> None:
    rec = WebClient(channel).home(device_id="never-seen-device", viewed=["flowers-1", "flowers-2"], k=3)
    assert not rec.recognised and rec.strategy == "similar_items"
    assert all(i.reasons[0].code == "similar_to_viewed" for i in rec.items)
    assert not {"flowers-1", "flowers-2"} & set(ids(rec))


def test_product_page_leads_with_similar_items(channel: grpc.Channel) -> None:
    rec = WebClient(channel).product("phone-2", device_id="d-1", k=4)
    assert rec.strategy.startswith("similar_to_item") and "phone-2" not in ids(rec)
    assert (
        rec.items[0].reasons[0].code == "similar_to_item"
        and rec.items[0].reasons[0].related_item_id == "phone-2"
    )
    assert rec.items[0].reasons[0].text.startswith("Similar to the Nova X2 Phone")


def test_cart_page_leads_with_the_carts_accessories(channel: grpc.Channel) -> None:
    rec = WebClient(channel).cart(["laptop-3"], customer_id="c01", k=3)
    assert ids(rec)[0] == "mouse-3" and rec.items[0].reasons[0].code == "accessory_for_basket"
    assert rec.items[0].reasons[0].text == "Accessory for the Aero A3 Laptop in your basket"


def test_similar_items_and_a_new_item_known_only_by_its_features(
    running: object, channel: grpc.Channel
) -> None:
    client = WebClient(channel)
    similar = client.similar("phone-1", k=3)
    assert similar.model_version and len(similar.items) == 3 and "phone-1" not in ids(similar)
    running.service.upsert_items([Item("phone-9", "Nova X9 Phone", "phones", "nova", 650, stock={"": 4})])  # type: ignore[attr-defined]
    new = client.similar("phone-9", k=3)  # placed from its category, brand and price band
    assert len(new.items) == 3 and sum(i.category == "phones" for i in new.items) >= 2
    assert "phone-9" in ids(client.similar("phone-3", k=30))
    with pytest.raises(grpc.RpcError) as err:
        client.similar("no-such-item")
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_the_command_line_prints_explained_items(running: object, capsys: pytest.CaptureFixture[str]) -> None:
    target = f"127.0.0.1:{running.port}"  # type: ignore[attr-defined]
    web_main(["--target", target, "--customer", "alice", "-k", "3"])
    out = capsys.readouterr().out
    assert "alice on the home page" in out and "Accessory for the Nova X1 Phone you bought on" in out
    web_main(["--target", target, "--similar", "phone-1", "-k", "2"])
    assert "items similar to phone-1" in capsys.readouterr().out
