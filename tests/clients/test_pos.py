"""The till's client against a real server: basket accessories in stock in the store, k=3.

These use a generous deadline (a loaded test machine is not a till); tests/server/test_channels_e2e.py
checks what happens when the deadline passes.
"""

from __future__ import annotations

import grpc
import pytest

from clients.pos import PosClient
from clients.pos import main as pos_main


def test_basket_accessories_in_stock_in_this_store(channel: grpc.Channel) -> None:
    result = PosClient(channel, "store-a", deadline=5.0).suggest(["phone-1"])
    assert not result.fallback and result.source == "server" and result.recommendation_id
    got = [s.item_id for s in result.items]
    assert len(got) == 3 and got[0] == "case-1" and "charger-1" not in got  # no charger-1 in store-a
    assert result.items[0].reason == "Accessory for the Nova X1 Phone in your basket"
    other = PosClient(channel, "store-b", deadline=5.0).suggest(["phone-1"])
    assert {"case-1", "charger-1"} <= {s.item_id for s in other.items}


def test_a_loyalty_card_makes_the_shopper_known(channel: grpc.Channel) -> None:
    result = PosClient(channel, "store-b", deadline=5.0).suggest(
        ["laptop-2"], loyalty_card_number="LC-ALICE", k=4
    )
    got = [s.item_id for s in result.items]
    assert got[0] == "mouse-2" and "phone-1" not in got  # alice owns phone-1
    assert "case-1" in got or "charger-1" in got  # and accessories of her phone follow


def test_the_command_line(running: object, capsys: pytest.CaptureFixture[str]) -> None:
    target = f"127.0.0.1:{running.port}"  # type: ignore[attr-defined]
    pos_main(["--target", target, "--store", "store-a", "--basket", "phone-1", "--deadline-ms", "5000"])
    out = capsys.readouterr().out
    assert "3 suggestions, strategy complements" in out and "case-1" in out and "charger-1" not in out
