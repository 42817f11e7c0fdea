"""The Taobao UserBehavior importer: behaviour mapping (fav is a WISHLIST event), items with their
category, idempotency, identical rows kept, and a slice of the
shared file. The slice's numbers were counted from its first 300 rows.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from models.domain import Identifier
from models.importers.taobao import import_taobao
from models.service import Seenext
from server.cli.main import main

FILE = Path("/work/shared/data/taobao-userbehavior/userbehavior_first814users.csv.gz")

ROWS = """\
7,100,50,pv,1511544000
7,100,50,cart,1511544100
7,200,60,fav,1511544200
7,100,50,buy,1511544300
8,200,61,pv,1511600000
8,200,61,pv,1511600000
8,300,60,buy,1511600100
"""


def events_of(service: Seenext) -> list[tuple[str, str, str, float, str]]:
    rows = service.item_events(("customer_id", "type", "item_id", "occurred_at", "attributes"))
    return [(str(c), str(t), str(i), float(at), str(a or "")) for c, t, i, at, a in rows]


def test_behaviours_map_to_event_types_and_items_keep_their_latest_category(
    service: Seenext, tmp_path: Path
) -> None:
    path = tmp_path / "behaviour.csv.gz"
    path.write_bytes(gzip.compress(ROWS.encode()))
    summary = import_taobao(path, service)
    assert summary.rows_read == 7 and summary.events == 7 and summary.accepted == 7
    # pv views, fav wish-list entries (keeping their own name in the attributes), cart, buy
    assert summary.by_type == {"VIEW": 3, "WISHLIST": 1, "ADD_TO_CART": 1, "PURCHASE": 2}
    assert summary.by_channel == {"WEB": 7} and summary.customers == 2 and summary.items == 3
    assert service.get_item("200").category == "61"  # seen under 60 first, then 61
    item = service.get_item("100")
    assert item.category == "50" and item.title == "" and item.repeatable is None  # no flags set
    seven = service.resolve(Identifier("CUSTOMER_ID", "7"))
    rows = [r for r in events_of(service) if r[0] == seven]
    assert [(t, i, at) for _, t, i, at, _ in rows] == [
        ("VIEW", "100", 1511544000.0),
        ("ADD_TO_CART", "100", 1511544100.0),
        ("WISHLIST", "200", 1511544200.0),
        ("PURCHASE", "100", 1511544300.0),
    ]
    assert json.loads(rows[2][4]) == {"behavior": "fav"}
    # The two identical views of customer 8 are two events, and a re-run stores nothing twice.
    again = import_taobao(path, service)
    assert again.accepted == 0 and again.duplicates == 7
    assert service.count_events() == 7


def test_an_unknown_behaviour_is_refused_naming_it(service: Seenext, tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("7,100,50,like,1511544000\n")
    with pytest.raises(ValueError, match=r"behavior_type: values \['like'\]"):
        import_taobao(path, service)


@pytest.mark.skipif(not FILE.exists(), reason="shared dataset not present")
def test_a_slice_of_the_shared_file_through_the_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEENEXT_SYNC_FULL", "0")
    code = main(["import", "taobao", str(FILE), "--max-rows", "300", "--data-dir", str(tmp_path)])
    assert code == 0
    printed = capsys.readouterr().out
    # 300 rows: pv 269 views, fav 18 wish-list entries, 4 carts, 9 buys; 5 users, 230 items.
    assert "events           300 (300 new, 0 already stored, 0 rejected)" in printed
    assert "by type          ADD_TO_CART 4, PURCHASE 9, VIEW 269, WISHLIST 18" in printed
    assert "customers        5 (0 with attributes)" in printed
    assert "items            230" in printed
    assert "period           2017-11-24 .. 2017-12-03" in printed
