"""UpsertItems reports `accessory_for` links to unknown items (issue 9 point 7) and keeps them."""

from __future__ import annotations

from models.catalog import MAX_WARNINGS
from models.domain import Item
from models.service import Seenext


def test_links_to_unknown_items_are_kept_and_named(service: Seenext) -> None:
    done = service.upsert_items_checked(
        [
            Item("case", accessory_for=["phone", "ghost"]),
            Item("phone"),  # the main item in the same batch is known
            Item("strap", accessory_for=["ghost", "case"]),
        ]
    )
    assert done.upserted == 3
    assert [w.split(":")[0] for w in done.warnings] == [
        "items[0].accessory_for[1]",
        "items[2].accessory_for[0]",
    ]
    assert "no item 'ghost' in the catalogue; the link is kept" in done.warnings[0]
    assert service.get_item("case").accessory_for == ["phone", "ghost"]
    assert service.upsert_items([Item("ghost")]) == 1  # the facade's plain count, as before
    assert not service.upsert_items_checked([Item("strap", accessory_for=["ghost", "case"])]).warnings
    # a partial update reports the links it sends, and only those
    assert not service.upsert_items_checked([Item("case", title="Case")], ["title"]).warnings
    partial = service.upsert_items_checked([Item("case", accessory_for=["nope"])], ["accessory_for"])
    assert partial.warnings == (
        "items[0].accessory_for[0]: no item 'nope' in the catalogue; the link is kept and counts once"
        " that item is upserted",
    )


def test_at_most_a_hundred_warnings_then_how_many_more(service: Seenext) -> None:
    done = service.upsert_items_checked([Item("multi", accessory_for=[f"x{n}" for n in range(250)])])
    assert len(done.warnings) == MAX_WARNINGS == 100
    assert done.warnings[-2].startswith("items[0].accessory_for[98]:")
    assert done.warnings[-1] == "and 151 more accessory_for links to unknown items"
