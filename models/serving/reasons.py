"""Why an item is recommended: a machine-readable code and a short sentence for people.

The sentence is written so that it can go into an e-mail or be read out by a call-centre agent as
it is ("Accessory for the Nova X12 Phone you bought on 3 March"). Codes are stable; sentences may be
reworded. `CODES` lists every code with what it means (docs/channels.md shows it as a table).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from models.catalog import CatalogSnapshot


@dataclass(slots=True)  # one per candidate the ranking walks: slots make it cheaper to build
class Reason:
    """One reason of a recommended item (re-exported by models.serving.recommender)."""

    code: str
    text: str = ""
    related_item_id: str = ""
    related_at: float | None = None
    detail: str = ""  # what the sentence needs beyond the item and date (a category, an interval)


CODES: Mapping[str, str] = {
    "personalised": "ranked by the customer's model affinity (what they bought and looked at)",
    "similar_to_viewed": "close to items of the current session (anonymous or newer than the model)",
    "similar_to_item": "close to the item being viewed, in the model's embedding space",
    "accessory_for_owned": "a catalogue accessory of an item the customer bought",
    "accessory_for_basket": "a catalogue accessory of an item in the basket",
    "bought_together": "often bought together with an item in the basket or that the customer bought",
    "popular": "popular with all customers (the fallback for a known customer)",
    "popular_in_channel": "popular in this channel (the fallback for an anonymous visitor)",
    "popular_in_store": "popular in this store (the fallback for an anonymous shopper at a till)",
    "due_again": "a repeatable item whose usual replenishment interval has elapsed",
    "seasonal": "the customer bought in this category around the same date in an earlier year",
    "in_basket": "the customer put it in the basket lately and has not bought it or taken it out",
    "wishlisted": "the customer put it on their wish list lately and has not bought it",
    "viewed": "the customer looked at it lately (a view, a click, an ad or mail click) and did not buy it",
    "promoted": "placed by a merchandising rule (a pinned item, or a promotion's reserved places)",
    "new_in": "a new item the model has not learned yet, tried in the last places of a list (exploration)",
}

# The looked-at source's sentences (models/serving/looked_at.py): dated, and without a date.
LOOKED_AT: Mapping[str, tuple[str, str]] = {
    "in_basket": ("Still in your basket since {when}", "Still in your basket"),
    "wishlisted": ("On your wish list since {when}", "On your wish list"),
    "viewed": ("You looked at this on {when}", "You looked at this lately"),
}

CHANNEL_WORDS: Mapping[str, str] = {
    "WEB": "in our web shop",
    "APP": "in our app",
    "EMAIL": "with our subscribers",
    "POS": "in our stores",
    "CALL_CENTER": "with our customers",
    "ADS": "with our customers",
}


def sentence(reason: Reason, snapshot: CatalogSnapshot, channel: str = "", now: float | None = None) -> str:
    """The human sentence for a reason, naming the related item and date when there are some."""
    name = item_name(reason.related_item_id, snapshot)
    when = day_phrase(reason.related_at, now) if reason.related_at is not None else ""
    code = reason.code
    if code == "personalised":
        return "Picked for you from what you bought and looked at"
    if code == "similar_to_viewed":
        return f"Similar to the {name} you looked at" if name else "Similar to what you looked at"
    if code == "similar_to_item":
        return f"Similar to the {name}" if name else "Similar to this item"
    if code.startswith("popular"):
        return _popular_sentence(code, channel)
    if code == "accessory_for_owned":
        return f"Accessory for the {name} you bought" + (f" on {when}" if when else "")
    if code == "accessory_for_basket":
        return f"Accessory for the {name} in your basket"
    if code == "bought_together":
        if when:
            return f"Often bought with the {name} you bought on {when}"
        return f"Often bought together with the {name}"
    if code == "due_again":
        every = f"; you buy it about every {reason.detail} days" if reason.detail else ""
        return f"Time to stock up: you last bought the {name} on {when}{every}"
    if code == "seasonal":
        what = reason.detail or "this"
        if reason.related_at is None:
            return f"You bought {what} around this time last year"
        return f"You bought {what} around {year_phrase(reason.related_at, now)}"
    return _item_sentence(code, name, when)


def _item_sentence(code: str, name: str, when: str) -> str:
    """New in; still in the basket, on the wish list, looked at: dated when the date is known (not for
    a new item: "new" says it); any other code is returned as it is."""
    if code == "new_in":
        return f"New in: {name}" if name else "New in"
    if code == "promoted":  # placed by a merchandising rule
        return "Featured"
    if code not in LOOKED_AT:
        return code
    dated, undated = LOOKED_AT[code]
    return dated.format(when=when) if when else undated


def _popular_sentence(code: str, channel: str) -> str:
    if code == "popular_in_channel":
        return f"Popular {CHANNEL_WORDS.get(channel, 'with our customers')} right now"
    if code == "popular_in_store":
        return "Popular in this store right now"
    return "Popular with our customers right now" if code == "popular" else code


def item_name(item_id: str, snapshot: CatalogSnapshot) -> str:
    if not item_id:
        return ""
    item = snapshot.items.get(item_id)
    return item.title if item is not None and item.title else item_id


def day_phrase(at: float | None, now: float | None = None) -> str:
    """'3 March' within the last year, '3 March 2023' before that (UTC)."""
    if at is None:
        return ""
    day = dt.datetime.fromtimestamp(at, dt.UTC)
    text = f"{day.day} {day:%B}"
    reference = dt.datetime.now(dt.UTC) if now is None else dt.datetime.fromtimestamp(now, dt.UTC)
    return text if 0 <= (reference - day).days < 300 else f"{text} {day.year}"


def year_phrase(at: float, now: float | None = None) -> str:
    """'14 February last year' / '14 February 2022' for seasonal reminders."""
    day = dt.datetime.fromtimestamp(at, dt.UTC)
    reference = dt.datetime.now(dt.UTC) if now is None else dt.datetime.fromtimestamp(now, dt.UTC)
    text = f"{day.day} {day:%B}"
    return f"{text} last year" if reference.year - day.year == 1 else f"{text} {day.year}"
