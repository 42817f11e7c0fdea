"""Importers on small slices of the shared datasets (and a hand-written CSV): counts, channel mapping,
identity rules and idempotency. The expected numbers were counted from the files' first rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from models.domain import Identifier
from models.importers import Target
from models.importers.generic_csv import import_csv
from models.importers.hm import import_hm
from models.importers.movielens import import_movielens
from models.service import Seenext
from server.cli.main import main
from tests.conftest import stored_rows

DATA = Path("/work/shared/data")
HM = DATA / "hm-fashion"
ML = DATA / "movielens-100k"
needs_data = pytest.mark.skipif(not HM.exists() or not ML.exists(), reason="shared datasets not present")

FIRST_HM_CUSTOMER = "1a674938eb6b4f9b3ef35eda901f7c8a319f2666b182412685fb4785b22d002d"
SECOND_HM_CUSTOMER = "1b291588ef8570d77e354d045dc8041d9235f2437c3d1f9bd3ddff487e20fd64"


def target(service: Seenext) -> Target:
    return service


def rows(service: Seenext, sql: str, *args: object) -> list[tuple[Any, ...]]:
    return stored_rows(service.settings, sql, *args)


@needs_data
def test_hm_slice_maps_channels_and_folds_repeated_rows_into_quantity(service: Seenext) -> None:
    progress: list[tuple[str, int, int]] = []
    summary = import_hm(HM, target(service), max_rows=300, progress=lambda *a: progress.append(a))
    # 300 rows: 229 online (2), 71 in store (1); 39 (day, customer, article, channel, price) groups repeat.
    assert summary.rows_read == 300 and summary.events == 251 and summary.accepted == 251
    assert summary.by_channel == {"WEB": 184, "POS": 67} and summary.by_type == {"PURCHASE": 251}
    assert summary.customers == 73 and summary.items == 238 and summary.customer_attributes == 73
    assert rows(service, "SELECT SUM(quantity) FROM events")[0][0] == 300
    assert rows(service, "SELECT channel, SUM(quantity) FROM events GROUP BY channel ORDER BY channel") == [
        ("POS", 71),
        ("WEB", 229),
    ]
    # Row 3 and 4 of the file: the same store purchase twice on 2018-09-20 -> one event, quantity 2.
    ((channel, qty, item, at),) = rows(
        service,
        "SELECT channel, quantity, item_id, occurred_at FROM events"
        " WHERE customer_id=? AND item_id='0669361001'",
        SECOND_HM_CUSTOMER,
    )
    assert (channel, qty, item) == ("POS", 2, "0669361001") and at == 1537444800.0  # 12:00 UTC
    boots = service.get_item("0493995001")
    assert boots.title == "Manacor" and boots.category == "Boots" and boots.repeatable
    assert boots.attributes["department"] == "Boots" and boots.attributes["product_code"] == "0493995"
    assert service.customer_attributes_of(FIRST_HM_CUSTOMER) == {
        "active": "1",
        "age": "20-29",
        "club": "active",
        "fn": "1",
        "news": "regularly",
    }
    assert service.resolve(Identifier("CUSTOMER_ID", FIRST_HM_CUSTOMER)) == FIRST_HM_CUSTOMER
    assert progress[-1] == ("events", 251, 251)

    again = import_hm(HM, target(service), max_rows=300)
    assert again.accepted == 0 and again.duplicates == 251
    assert service.count_events() == 251


@needs_data
def test_movielens_slice_is_purchases_with_ratings_and_genres(service: Seenext) -> None:
    summary = import_movielens(ML, target(service), max_rows=500)
    assert summary.events == summary.accepted == 500 and summary.by_channel == {"WEB": 500}
    assert summary.customers == 195 and summary.items == 358 and summary.customer_attributes == 195
    ((etype, at, attrs),) = rows(
        service, "SELECT type, occurred_at, attributes FROM events WHERE event_id='ml-196-242'"
    )
    assert etype == "PURCHASE" and at == 881250949 and json.loads(attrs) == {"rating": "3"}
    kolya = service.get_item("242")
    assert kolya.title == "Kolya (1996)" and kolya.category == "Comedy" and not kolya.repeatable
    assert kolya.attributes == {"genre_Comedy": "1", "decade": "1990s"}
    assert service.customer_attributes_of("196") == {"age": "40-49", "gender": "M", "occupation": "writer"}


def write(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n")
    return path


def test_generic_csv_links_identifiers_parses_times_and_reports_bad_rows(
    service: Seenext, tmp_path: Path
) -> None:
    events = write(
        tmp_path / "events.csv",
        """
customer_id,email,device_id,item_id,type,channel,occurred_at,quantity,price,order_id,attr_campaign
c1,,,sku-1,purchase,pos,2024-03-01T10:00:00Z,2,9.5,o1,
,ann@example.com,d-77,sku-2,VIEW,,1709287200,,,,spring
c1,Ann@Example.com,,sku-3,EVENT_TYPE_ADD_TO_CART,CHANNEL_APP,2024-03-02 08:30,,,,
,,d-77,sku-1,view,web,yesterday,,,,
c2,,,sku-9,purchase,web,2024-03-03,x,,,
c3,,,,purchase,web,2024-03-03,,,,
""",
    )
    items = write(
        tmp_path / "items.csv",
        """
item_id,title,category,price,repeatable,accessory_for,colour
sku-1,Phone,phone,500,0,,black
sku-2,Case,case,20,no,sku-1,red
sku-3,Coffee,coffee,5,yes,,
""",
    )
    customers = write(
        tmp_path / "customers.csv",
        """
customer_id,segment,region
c1,gold,north
""",
    )
    summary = import_csv(events, target(service), items_path=items, customers_path=customers)
    assert (
        summary.rows_read == 6 and summary.accepted == 3 and (summary.unreadable, summary.rejected) == (2, 1)
    )
    # every row is accounted for once (the summary once said 285 new + 3 rejected of 288 rows)
    assert summary.rows_read == summary.accepted + summary.duplicates + summary.rejected + summary.unreadable
    assert summary.rejections == [
        "row 5: occurred_at: 'yesterday' is not a time",
        "row 6: quantity: 'x' is not a number",
        "row 7: item_id: is required for a PURCHASE event",
    ]
    assert summary.by_channel == {"APP": 1, "POS": 1, "WEB": 1}
    # Row 3 links the e-mail and the device (one customer); row 4 resolves through the identity rules
    # (merging two known customers is the identity graph's work, issue 3).
    anna = service.resolve(Identifier("EMAIL", "ann@example.com"))
    assert anna is not None and anna == service.resolve(Identifier("DEVICE_ID", "d-77"))
    owners = [r[0] for r in rows(service, "SELECT customer_id FROM events ORDER BY occurred_at")]
    assert owners == ["c1", anna, "c1"]
    ((qty, price, at, channel),) = rows(
        service, "SELECT quantity, price, occurred_at, channel FROM events WHERE item_id='sku-1'"
    )
    assert (qty, price, channel) == (2, 9.5, "POS") and at == 1709287200.0
    assert service.get_item("sku-3").repeatable and service.get_item("sku-2").accessory_for == ["sku-1"]
    assert service.get_item("sku-1").attributes == {"colour": "black"}
    assert service.customer_attributes_of("c1") == {"region": "north", "segment": "gold"}
    again = import_csv(events, target(service))
    assert again.accepted == 0 and again.duplicates == 3


def test_import_command_prints_a_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    events = write(tmp_path / "e.csv", "customer_id,item_id,occurred_at\nc1,a,2024-01-01\nc2,a,2024-01-02\n")
    assert main(["import", "csv", str(events), "--data-dir", str(tmp_path / "data")]) == 0
    out = capsys.readouterr()
    assert "events           2 (2 new, 0 already stored, 0 rejected)" in out.out
    assert "2024-01-01 .. 2024-01-02" in out.out
    assert "100%" in out.err  # the progress bar
