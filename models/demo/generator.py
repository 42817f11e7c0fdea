"""A seeded, deterministic omnichannel retailer for the first run, the tests and the benchmark.

`generate` builds a catalogue (categories, brands, prices, accessory links, stock per store,
offers), customers with several identifiers each, and their journeys across web, app, e-mail, ads,
stores and the call centre, as plain `models.domain` objects; `seed` loads them into the catalogue
and the event store. The same `DemoConfig` (including `end`) always gives identical output.

Catalogue and customer traits are drawn with numpy in bulk; each customer's journeys are then
walked with a `random.Random` seeded from that numpy stream, because the walk draws a few scalars
per event and numpy's per-call overhead would dominate there.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cached_property
from typing import NamedTuple, Protocol, TypeVar

import numpy as np

from models.domain import DAY, BatchResult, Event, Identifier, Item, Offer

MAX_CHUNK = 10_000  # the catalogue's and the event store's batch limit


@dataclass(frozen=True)
class DemoConfig:
    """Size and seed of the demo retailer; `end` = None means the start of today (UTC)."""

    customers: int = 2000
    items: int = 600
    days: int = 400
    seed: int = 42
    stores: int = 5
    end: float | None = None


@dataclass(frozen=True)
class DemoCustomer:
    """The ground truth about one customer: every identifier they use, and their traits."""

    customer_id: str
    identifiers: tuple[Identifier, ...]
    segment: str  # tech, home, fashion, family, professional
    region: str
    channel_preference: str  # online, mixed, store
    home_store: str
    email_opt_in: bool
    seasonal: bool  # buys flowers around 14 February (and Mothering Sunday) every year
    replenisher: bool  # buys coffee about every 30 days
    favourite_categories: tuple[str, ...]

    def identifier(self, kind: str) -> str | None:
        """The first identifier of a kind, or None (e.g. a customer without a phone number)."""
        return next((i.value for i in self.identifiers if i.kind == kind), None)


@dataclass
class DemoRetailer:
    """The generated retailer: what `seed` loads, and the ground truth tests check answers against."""

    items: list[Item]
    events: list[Event]  # sorted by occurred_at
    stores: list[str]
    customers: list[DemoCustomer]
    start: float
    end: float

    @cached_property
    def _owners(self) -> dict[tuple[str, str], str]:
        return {(i.kind, i.value): c.customer_id for c in self.customers for i in c.identifiers}

    def customer_of(self, event: Event) -> str:
        """Which demo customer really made an event (ground truth the service has to infer)."""
        return next(self._owners[(i.kind, i.value)] for i in event.identifiers)


class _Cat(NamedTuple):
    name: str
    department: str
    share: float  # of the catalogue
    low: float  # price range
    high: float
    brands: tuple[str, ...]
    nouns: tuple[str, ...]
    repeatable: bool = False
    accessory_of: str = ""  # the category whose items this one's items fit
    extra_fits: int = 0  # each accessory fits up to this many more main items
    link_noun: str = ""  # only items with this noun are accessories (coffee pods, not beans)


# Main items come first: accessory titles name the item they fit.
_CATS = (
    _Cat("phones", "electronics", 0.05, 199, 1199, ("Nova", "Orbit", "Pixelon", "Kestrel"), ("Phone",)),
    _Cat("laptops", "electronics", 0.04, 449, 2499, ("Lumen", "Vertex", "Aero"), ("Laptop", "Ultrabook")),
    _Cat(
        "coffee_machines", "home", 0.03, 79, 699, ("Brevo", "Casa Bean"), ("Pod Machine", "Espresso Machine")
    ),
    _Cat(
        "phone_cases",
        "electronics",
        0.12,
        9,
        39,
        ("Shieldo", "CaseCraft", "ArmorLite"),
        ("Slim Case", "Rugged Case", "Wallet Case", "Clear Case"),
        False,
        "phones",
    ),
    _Cat(
        "chargers",
        "electronics",
        0.04,
        15,
        59,
        ("Voltix", "Ampere"),
        ("20W Charger", "30W Fast Charger", "Wireless Charging Pad", "Car Charger"),
        False,
        "phones",
        2,
    ),
    _Cat(
        "headphones",
        "electronics",
        0.05,
        29,
        349,
        ("Sonique", "Auralis"),
        ("Wireless Earbuds", "Over-Ear Headphones", "Sport Earphones"),
        False,
        "phones",
        3,
    ),
    _Cat(
        "laptop_bags",
        "electronics",
        0.04,
        25,
        129,
        ("Carryon", "Urbanpack"),
        ("Laptop Sleeve", "Laptop Backpack", "Messenger Bag"),
        False,
        "laptops",
        2,
    ),
    _Cat(
        "mice",
        "electronics",
        0.04,
        12,
        99,
        ("Clickr", "Vertex"),
        ("Wireless Mouse", "Travel Mouse", "Ergonomic Mouse"),
        False,
        "laptops",
        3,
    ),
    _Cat(
        "coffee",
        "grocery",
        0.06,
        3.5,
        18,
        ("Casa Bean", "Roastery No.5", "Brevo"),
        ("Coffee Pods", "Espresso Beans", "Ground Coffee"),
        True,
        "coffee_machines",
        1,
        "Coffee Pods",
    ),
    _Cat(
        "kitchen",
        "home",
        0.10,
        8,
        220,
        ("Homely", "Ferro", "Kitchenly"),
        ("Frying Pan", "Kettle", "Knife Set", "Toaster", "Mixing Bowls", "Cafetiere"),
    ),
    _Cat(
        "home_decor",
        "home",
        0.10,
        9,
        180,
        ("Homely", "Nordwood", "Lumo"),
        ("Table Lamp", "Cushion", "Vase", "Throw", "Wall Mirror", "Candle Set"),
    ),
    _Cat(
        "clothing",
        "fashion",
        0.14,
        12,
        180,
        ("Urbanwear", "Fieldline", "Maren"),
        ("T-Shirt", "Hoodie", "Jeans", "Jacket", "Dress", "Jumper"),
    ),
    _Cat(
        "shoes", "fashion", 0.07, 35, 160, ("Stride", "Fieldline", "Pace"), ("Trainers", "Boots", "Loafers")
    ),
    _Cat(
        "flowers",
        "flowers",
        0.06,
        19,
        79,
        ("Bloomwell", "Petal & Stem"),
        ("Red Roses Bouquet", "Tulip Bunch", "Spring Mix Bouquet", "Lily Arrangement", "Peony Bouquet"),
        True,
    ),
    _Cat(
        "household",
        "grocery",
        0.06,
        2.5,
        15,
        ("CleanCo", "Everfresh"),
        ("Washing Liquid", "Dish Tablets", "Kitchen Roll", "Hand Soap"),
        True,
    ),
)
_CAT_INDEX = {c.name: k for k, c in enumerate(_CATS)}
_MAINS = ("phones", "laptops", "coffee_machines")  # what accessories are bought for
_P_REPLACE = 0.04  # customers who replace a durable within the period (lost, broken)
_LINES = (
    "Classic",
    "Loft",
    "Nordic",
    "Studio",
    "Essential",
    "Heritage",
    "Urban",
    "Coast",
    "Alpine",
    "Signature",
)  # product lines, for titles of everyday items
_COLOURS = {
    "electronics": ("Black", "Silver", "Graphite", "Blue", "White", "Rose Gold"),
    "home": ("White", "Oak", "Sage", "Terracotta", "Charcoal"),
    "fashion": ("Navy", "Black", "Olive", "Beige", "Red", "Grey"),
    "flowers": ("Red", "Pink", "White", "Yellow", "Mixed"),
}
_BANDS = ("low", "mid", "high")
# Category taste per segment; categories not named get a small weight.
_SEGMENTS = {
    "tech": {"phones": 5, "headphones": 3, "laptops": 3, "mice": 1, "coffee": 1},
    "home": {"kitchen": 4, "home_decor": 4, "coffee_machines": 2, "coffee": 3, "household": 3, "flowers": 1},
    "fashion": {"clothing": 5, "shoes": 4, "home_decor": 1, "flowers": 2, "phones": 1},
    "family": {"household": 4, "kitchen": 2, "clothing": 3, "shoes": 2, "phones": 2, "coffee": 1},
    "professional": {
        "laptops": 3,
        "phones": 3,
        "coffee": 3,
        "coffee_machines": 2,
        "clothing": 2,
        "headphones": 2,
        "laptop_bags": 1,
    },
}
_REGIONS = ("London", "South East", "Midlands", "North West", "Scotland")
_PREFS = ("online", "mixed", "store")
_P_STORE = {"online": 0.1, "mixed": 0.45, "store": 0.8}  # share of purchases made in a store
_FIRST = (
    "Olivia",
    "Amelia",
    "Isla",
    "Ava",
    "Mia",
    "Grace",
    "Sophie",
    "Emily",
    "Lily",
    "Freya",
    "Noah",
    "Oliver",
    "George",
    "Arthur",
    "Leo",
    "Harry",
    "Oscar",
    "Jack",
    "Charlie",
    "Jacob",
    "Priya",
    "Omar",
)
_LAST = (
    "Smith",
    "Jones",
    "Taylor",
    "Brown",
    "Williams",
    "Wilson",
    "Johnson",
    "Davies",
    "Patel",
    "Evans",
    "Thomas",
    "Roberts",
    "Khan",
    "Walker",
    "Wright",
    "Robinson",
    "Thompson",
    "Hughes",
    "Green",
    "Hall",
)
_WEB_HOURS = np.cumsum([1, 1, 1, 1, 1, 1, 2, 3, 4, 5, 5, 6, 7, 7, 6, 6, 6, 7, 8, 9, 9, 8, 5, 2]).tolist()


def generate(config: DemoConfig) -> DemoRetailer:
    """The demo retailer for a config: catalogue, customers and their time-ordered events."""
    if config.items < len(_CATS):
        raise ValueError(f"items: at least {len(_CATS)} are needed (one per category), got {config.items}")
    if config.customers < 1 or config.days < 1 or config.stores < 1:
        raise ValueError(
            f"customers, days and stores must be >= 1, got {config.customers}, {config.days}, {config.stores}"
        )
    end = float(config.end if config.end is not None else time.time() // DAY * DAY)
    start = end - config.days * DAY
    rng = np.random.default_rng(config.seed)
    stores = [f"store-{s + 1:03d}" for s in range(config.stores)]
    cat = _Catalogue(config.items, stores, rng, end)
    world = _world(cat, stores, start, end)
    people = _people(world, config.customers, rng)
    out: list[tuple[float, int, Event]] = []
    for k, person in enumerate(people):
        _Walk(world, k, person, out).run()
    out.sort(key=lambda e: (e[0], e[1]))
    events = [e[2] for e in out]
    for n, ev in enumerate(events):
        ev.event_id = f"ev-{n + 1:08d}"
    return DemoRetailer(cat.items, events, stores, [p.who for p in people], start, end)


class SeedTarget(Protocol):
    """What seeding writes through: the service's own doors (the facade satisfies it)."""

    def upsert_items(self, items: Sequence[Item]) -> int: ...

    def track_batch(self, events: Sequence[Event]) -> BatchResult: ...

    def import_consents(self, rows: Sequence[tuple[Identifier, str, str, bool, float]]) -> int: ...


def seed(target: SeedTarget, retailer: DemoRetailer) -> dict[str, int]:
    """Loads the catalogue and the events in chunks the batch limits allow; returns the counts."""
    items = sum(target.upsert_items(chunk) for chunk in _chunks(retailer.items))
    accepted = duplicates = 0
    for chunk in _chunks(retailer.events):
        result = target.track_batch(chunk)
        if result.rejected:
            bad = result.rejected[0]
            raise ValueError(
                f"demo event {bad.event_id!r} rejected: {bad.field}: {bad.reason} "
                f"({len(result.rejected)} rejected in this chunk)"
            )
        accepted += result.accepted
        duplicates += result.duplicates
    # E-mail marketing consent of the customers who opted in (the others have none recorded).
    consents = target.import_consents(
        [
            (Identifier("CUSTOMER_ID", c.customer_id), "EMAIL", "marketing", True, retailer.start)
            for c in retailer.customers
            if c.email_opt_in
        ]
    )
    return {
        "items": items,
        "events": accepted,
        "duplicates": duplicates,
        "customers": len(retailer.customers),
        "stores": len(retailer.stores),
        "consents": consents,
    }


_T = TypeVar("_T")


def _chunks(rows: Sequence[_T]) -> list[Sequence[_T]]:
    return [rows[i : i + MAX_CHUNK] for i in range(0, len(rows), MAX_CHUNK)]


class _Catalogue:
    """Items plus the arrays the journeys draw from (category, popularity, accessory links)."""

    def __init__(self, n: int, stores: list[str], rng: np.random.Generator, end: float) -> None:
        self.cat = np.repeat(np.arange(len(_CATS)), _allocate(n))
        self.by_cat = [np.flatnonzero(self.cat == c) for c in range(len(_CATS))]
        self.sku = rng.permutation(n) + 1  # sku numbers do not give the category away
        self.width = max(5, len(str(n)))
        self.ids = [f"sku-{s:0{self.width}d}" for s in self.sku.tolist()]
        self.pop, self.price = np.empty(n), np.empty(n)
        self.brand, self.noun, self.band = (np.empty(n, dtype=np.int64) for _ in range(3))
        for spec, members in zip(_CATS, self.by_cat, strict=True):
            m = len(members)
            # Zipf popularity within each category, so a popularity baseline is meaningful.
            self.pop[rng.permutation(members)] = 1.0 / np.arange(1, m + 1) ** 0.8
            self.brand[members] = rng.integers(0, len(spec.brands), m)
            self.noun[members] = rng.integers(0, len(spec.nouns), m)
            raw = np.exp(rng.uniform(np.log(spec.low), np.log(spec.high), m))
            self.price[members] = np.where(raw < 10, np.round(raw, 1), np.round(raw)) - 0.01
            self.band[members] = np.argsort(np.argsort(self.price[members])) * 3 // m
        self.main = np.isin(self.cat, [_CAT_INDEX[c] for c in _MAINS])
        self.repeatable = np.array([c.repeatable for c in _CATS])[self.cat]
        # Promotions: about 10% running now, 4% that ended months ago.
        kind, days = rng.random(n), rng.uniform(3, 21, (n, 2))
        self.promo = np.round(self.price * rng.uniform(0.7, 0.9, n), 2)
        ended_from = end - (30 + 300 * kind / 0.14) * DAY
        start = np.where(kind < 0.10, end - days[:, 0] * DAY, np.where(kind < 0.14, ended_from, np.inf))
        until = np.where(kind < 0.10, end + days[:, 1] * DAY, start + days[:, 1] * DAY)
        self.offer_from, self.offer_until = np.floor(start / 3600) * 3600, np.floor(until / 3600) * 3600
        stock = rng.integers(1, 40, (n, len(stores) + 1)) * (rng.random((n, len(stores) + 1)) >= 0.15)
        stock[:, 0] = rng.integers(5, 250, n) * (rng.random(n) >= 0.04)  # online ("") runs out less often
        self.fits: list[list[int]] = [[] for _ in range(n)]
        self.accessories: dict[int, list[int]] = {}
        for spec, members in zip(_CATS, self.by_cat, strict=True):
            if spec.accessory_of:
                self._link(spec, members, self.by_cat[_CAT_INDEX[spec.accessory_of]], rng)
        self.items = self._items(rng.integers(2, 60, n), rng.integers(0, 12, n), stock, ["", *stores])
        self._cum: dict[tuple[int, int, int], np.ndarray] = {}

    def _items(
        self, models: np.ndarray, looks: np.ndarray, stock: np.ndarray, stores: list[str]
    ) -> list[Item]:
        """The catalogue as `Item`s, ordered by id. Main items come first in `_CATS`, so their model
        names are known when their accessories' titles ("Shieldo Slim Case for Nova N12") are made."""
        names: dict[int, str] = {}
        items = []
        for spec, members in zip(_CATS, self.by_cat, strict=True):
            for i in members.tolist():
                brand, noun = spec.brands[self.brand[i]], spec.nouns[self.noun[i]]
                band, look = self.band[i], looks[i]
                if spec.name in _MAINS:
                    names[i] = f"{brand} {brand[0]}{models[i]}{' Pro' if band == 2 else ''}"
                    title = f"{names[i]} {noun}"
                elif self.fits[i]:
                    title = f"{brand} {noun} for {names[self.fits[i][0]]}"
                else:
                    title = f"{brand} {_LINES[models[i] % len(_LINES)]} {noun}"
                attrs = {"department": spec.department, "price_band": _BANDS[band], "type": noun}
                palette = _COLOURS.get(spec.department)
                if palette:
                    attrs["colour"] = palette[look % len(palette)]
                if spec.name == "phones":
                    attrs["storage"] = ("128GB", "256GB", "512GB")[band]
                elif spec.name == "laptops":
                    attrs["screen"] = ("13in", "14in", "15in", "16in")[look % 4]
                elif spec.name == "flowers":
                    attrs["occasion"] = ("valentine", "mothers_day", "everyday")[look % 3]
                offer = None
                if np.isfinite(self.offer_from[i]):
                    offer = Offer(
                        float(self.price[i]),
                        float(self.promo[i]),
                        float(self.offer_from[i]),
                        float(self.offer_until[i]),
                        f"promo-{self.sku[i]:0{self.width}d}",
                        "GBP",
                    )
                items.append(
                    Item(
                        item_id=self.ids[i],
                        title=title,
                        category=spec.name,
                        brand=brand,
                        price=float(self.price[i]),
                        accessory_for=[self.ids[m] for m in self.fits[i]],
                        repeatable=spec.repeatable,
                        attributes=attrs,
                        offer=offer,
                        stock=dict(zip(stores, stock[i].tolist(), strict=True)),
                    )
                )
        return sorted(items, key=lambda it: it.item_id)

    def _link(self, spec: _Cat, acc: np.ndarray, mains: np.ndarray, rng: np.random.Generator) -> None:
        """Deals main items out to accessories in stretches, so every main item gets its share and
        neighbours (same brand, as mains are ordered by brand) share chargers, bags and mice."""
        acc = np.array([a for a in acc if not spec.link_noun or spec.nouns[self.noun[a]] == spec.link_noun])
        if len(acc) == 0:
            return
        order = mains[np.lexsort((mains, self.brand[mains]))].tolist()
        m, k = len(order), len(acc)
        extra = rng.integers(0, spec.extra_fits + 1, k)
        for j, a in enumerate(acc.tolist()):
            lo = j * m // k
            hi = max((j + 1) * m // k, lo + 1) + int(extra[j])
            fits = sorted({order[p % m] for p in range(lo, min(hi, lo + m))})
            self.fits[a] = fits
            for main in fits:
                self.accessories.setdefault(main, []).append(a)

    def draw(self, c: int, brand: int, band: int, u: np.ndarray) -> list[int]:
        """Items of category c drawn by popularity, boosted for a preferred brand and price band."""
        key = (c, brand, band)
        cum = self._cum.get(key)
        members = self.by_cat[c]
        if cum is None:
            w = self.pop[members] * np.where(self.brand[members] == brand, 4.0, 1.0)
            cum = self._cum[key] = np.cumsum(w * np.where(self.band[members] == band, 2.0, 1.0))
        picks = members[np.minimum(np.searchsorted(cum, u * cum[-1]), len(members) - 1)]
        return list(dict.fromkeys(picks.tolist()))

    def price_at(self, i: int, t: float) -> float:
        return float(self.promo[i] if self.offer_from[i] <= t < self.offer_until[i] else self.price[i])


def _allocate(n: int) -> np.ndarray:
    """Items per category: shares of n by largest remainder, at least one each, summing to n."""
    share = np.array([c.share for c in _CATS]) * n
    counts: np.ndarray = np.maximum(np.floor(share).astype(np.int64), 1)
    for k in np.argsort(-(share - np.floor(share)), kind="stable"):
        if counts.sum() >= n:
            break
        counts[k] += 1
    while counts.sum() > n:
        counts[np.argmax(counts)] -= 1
    return counts


@dataclass
class _Person:
    """A customer as the journeys see them: identifiers, taste and habits."""

    who: DemoCustomer
    join: float  # first event (sign-up, or first login of a customer from before the period)
    favs: list[int]  # favourite categories, most liked first
    taste: dict[int, list[int]]  # category -> the items of it they like
    explore: list[int]  # popular items they might stray to
    coffee: list[int]
    flowers: list[int]
    seed: int
    engagement: float  # multiplies how often they come back
    open_rate: float  # of newsletters


class _World(NamedTuple):
    """What every customer's walk shares: the catalogue, the stores, the period and its calendar."""

    cat: _Catalogue
    stores: list[str]
    start: float
    end: float
    newsletters: list[float]  # send times, fortnightly
    occasions: list[tuple[float, str]]  # (midnight of the day, occasion) for flower buyers


def _world(cat: _Catalogue, stores: list[str], start: float, end: float) -> _World:
    first = (start // DAY + 3) * DAY + 7 * 3600
    years = range(_utc(start).year, _utc(end).year + 1)
    return _World(
        cat,
        stores,
        start,
        end,
        [first + k * 14 * DAY for k in range(int((end - first) // (14 * DAY)) + 1)],
        [(_ts(date(y, 2, 14)), "valentine") for y in years]
        + [(_ts(_easter(y) - timedelta(days=21)), "mothers_day") for y in years],  # Mothering Sunday
    )


def _people(world: _World, n: int, rng: np.random.Generator) -> list[_Person]:
    """Customers' identifiers, traits and taste (preferred items per category), drawn in bulk."""
    cat, segs, width = world.cat, list(_SEGMENTS), max(5, len(str(n)))
    segment = rng.choice(len(segs), n, p=[0.2, 0.2, 0.2, 0.22, 0.18])
    pref = rng.choice(3, n, p=[0.4, 0.35, 0.25])
    region = rng.integers(0, len(_REGIONS), n)
    u = rng.random((n, 13))
    hexes = rng.integers(0, 2**62, (n, 3))
    weights = np.log([[_SEGMENTS[g].get(c.name, 0.3) for c in _CATS] for g in segs])
    favs = np.argsort(-(weights[segment] + rng.gumbel(size=(n, len(_CATS)))), axis=1)[:, :3].tolist()
    family = segment == segs.index("family")  # families watch prices
    band = (u[:, 12] >= np.where(family, 0.5, 0.3)).astype(int) + (u[:, 12] >= np.where(family, 0.85, 0.75))
    brand_u, taste_u = rng.random((n, 5)), rng.random((n, 5, 10))
    cum = np.cumsum(cat.pop)
    explore = np.minimum(np.searchsorted(cum, rng.random((n, 12)) * cum[-1]), len(cum) - 1).tolist()
    seeds = rng.integers(0, 2**63, n).tolist()
    engagement, open_rate = rng.lognormal(-0.18, 0.6, n).tolist(), rng.beta(2, 4, n).tolist()
    people = []
    for k in range(n):
        g, pr, uk = segs[segment[k]], _PREFS[pref[k]], u[k].tolist()
        local = [s for j, s in enumerate(world.stores) if j % len(_REGIONS) == region[k]] or world.stores
        first, last = _FIRST[int(uk[0] * len(_FIRST))], _LAST[int(uk[1] * len(_LAST))]
        ids = [Identifier("CUSTOMER_ID", f"cust-{k + 1:0{width}d}")]
        if uk[2] < 0.9:
            ids.append(Identifier("EMAIL", f"{first}.{last}{k + 1}@example.com".lower()))
        if uk[3] < 0.45:
            ids.append(Identifier("PHONE", f"+44 7700 9{k % 100000:05d}{k // 100000 or ''}"))
        if uk[4] < {"online": 0.4, "mixed": 0.75, "store": 0.95}[pr]:
            ids.append(Identifier("LOYALTY_CARD", f"6335{(k * 7919 + 104729) % 10**9:012d}"))
        if uk[5] < 0.8 or (pr != "online" and ids[-1].kind != "LOYALTY_CARD"):  # store shoppers pay somehow
            ids.append(Identifier("POS_CARD_TOKEN", f"tok_{hexes[k, 0]:016x}"))
        for j in range(1 + int(uk[6] < 0.4)):
            ids.append(Identifier("DEVICE_ID", f"dev-{hexes[k, 1 + j]:016x}"))
        who = DemoCustomer(
            ids[0].value,
            tuple(ids),
            g,
            _REGIONS[region[k]],
            pr,
            local[int(uk[7] * len(local))],
            email_opt_in=ids[1].kind == "EMAIL" and uk[8] < 0.7,
            seasonal=uk[9] < (0.25 if g in ("fashion", "family") else 0.1),
            replenisher=uk[10] < (0.3 if g in ("home", "professional") else 0.1),
            favourite_categories=tuple(_CATS[c].name for c in favs[k]),
        )
        # 70% were customers before the period (seasonal buyers all were); the rest sign up during it.
        late = uk[11] >= 0.7 and not who.seasonal
        join = world.start + (uk[11] * (world.end - world.start) * 0.9 if late else uk[11] * 2 * DAY)
        b = int(band[k])
        people.append(
            _Person(
                who,
                float(join // 60 * 60),
                favs[k],
                {
                    c: cat.draw(c, int(brand_u[k, j] * len(_CATS[c].brands)), b, taste_u[k, j])
                    for j, c in enumerate(favs[k])
                },
                explore[k],
                cat.draw(_CAT_INDEX["coffee"], int(brand_u[k, 3] * 3), b, taste_u[k, 3, :2]),
                cat.draw(_CAT_INDEX["flowers"], int(brand_u[k, 4] * 2), b, taste_u[k, 4, :3]),
                seeds[k],
                engagement[k],
                open_rate[k],
            )
        )
    return people


class _Walk:
    """One customer's life over the period: every journey they take, as events appended to `out`."""

    def __init__(self, world: _World, k: int, person: _Person, out: list[tuple[float, int, Event]]) -> None:
        self.w, self.cat, self.k, self.p, self.who, self.out = world, world.cat, k, person, person.who, out
        self.r = random.Random(person.seed)
        self.orders, self.owned = 0, set[int]()
        # A phone, laptop or coffee machine is replaced after years, longer than the demo's history: one
        # of each kind per customer, but for the few who lose or break one and buy another in the
        # period. What the service learns about durables comes from this (docs/learning.md).
        self.durable_kinds = set[int]()
        self.replaces = self.r.random() < _P_REPLACE
        kinds: dict[str, list[Identifier]] = {}
        for ident in self.who.identifiers:
            kinds.setdefault(ident.kind, []).append(ident)
        cust, devs, token = kinds["CUSTOMER_ID"][0], kinds["DEVICE_ID"], kinds.get("POS_CARD_TOKEN", [])
        # What each touchpoint knows of them: a device cookie, a login, a payment card, a loyalty card.
        self.anon = [(d,) for d in devs]
        self.logged = [(cust, d) for d in devs]
        self.pay = [(cust, d, *token) for d in devs]
        self.pos = tuple(kinds.get("LOYALTY_CARD", []) + token)
        self.phone = tuple(kinds.get("PHONE", []))
        self.mail = tuple(kinds.get("EMAIL", []))
        self.signup = (cust, *self.mail, *self.phone, *kinds.get("LOYALTY_CARD", []), devs[0])
        self.new_device = math.inf  # when the second device (if any) is first used

    def run(self) -> None:
        p, r, who, end = self.p, self.r, self.who, self.w.end
        months = (end - p.join) / (30 * DAY) * p.engagement
        action = "signup" if p.join > self.w.start + 2 * DAY else "login"
        self.emit(p.join, "WEB", "VISIT", self.signup, attrs={"action": action})
        if len(self.anon) > 1:  # story 2: a new device browses anonymously, then logs in
            t = self.new_device = self.when(p.join + DAY, end)
            for j, i in enumerate(self.pick(self.interest(), 2)):
                self.emit(t + 40 * j, "APP", "VIEW", self.anon[1], i)
            self.emit(t + 100, "APP", "VISIT", self.logged[1], attrs={"action": "login"})
            self.emit(t + 130, "APP", "VIEW", self.logged[1], r.choice(self.interest()))
        sessions = {"online": 0.55, "mixed": 0.4, "store": 0.2}[who.channel_preference]
        for _ in range(self.count(sessions * months)):
            self.browse(self.when(p.join, end))
        for _ in range(self.count(_P_STORE[who.channel_preference] * 0.8 * months) if self.pos else 0):
            t = self.when(p.join, end, store=True)
            self.buy(t, "POS", self.wanted(self.pick(self.interest(), 1 + int(r.random() < 0.4))))
        for _ in range(self.count(0.1 * months)):
            self.ad(self.when(p.join, end))
        for t in self.w.newsletters if who.email_opt_in else []:
            if t > p.join:
                self.newsletter(t)
        for t, occasion in self.w.occasions if who.seasonal else []:
            if occasion == "valentine" or self.k % 2 == 0:  # half of them remember Mothering Sunday too
                flower = p.flowers[0] if r.random() < 0.7 else r.choice(p.flowers)
                day = t - r.randint(0, 3) * DAY
                self.buy(self.hour(day, store=True), self.channel(), [flower], {"occasion": occasion})
        t = p.join + r.uniform(0, 30) * DAY
        while who.replenisher and t < end:
            coffee = p.coffee[0] if r.random() < 0.85 else r.choice(p.coffee)
            self.buy(self.hour(t // DAY * DAY), self.channel(), [coffee], qty=r.randint(1, 2))
            t += r.gauss(30, 3) * DAY

    def browse(self, t: float) -> None:
        """A web or app session: search, views, maybe add to cart, maybe checkout."""
        r = self.r
        dev = 1 if t > self.new_device and r.random() < 0.5 else 0
        channel, logged = ("WEB", "APP")[dev], r.random() < 0.65
        ids = self.logged[dev] if logged else self.anon[dev]
        items = self.interest()
        if r.random() < 0.3:
            query = _CATS[self.cat.cat[items[0]]].name.replace("_", " ")
            self.emit(t, channel, "SEARCH", ids, attrs={"query": query})
        seen = self.pick(items, r.randint(2, 5))
        for j, i in enumerate(seen):
            self.emit(t + 30 + 45 * j, channel, "VIEW", ids, i)
        want = self.wanted(seen)[: 1 + int(r.random() < 0.3)]
        if want and r.random() < 0.35:
            t += 60 + 45 * len(seen)
            if r.random() < 0.55:
                self.buy(t, channel, want, dev=dev, logged=logged)
            else:  # abandoned cart: where journeys break (story 6)
                for i in want:
                    self.emit(t, channel, "ADD_TO_CART", ids, i)
                if r.random() < 0.15:
                    self.emit(t + 20, channel, "REMOVE_FROM_CART", ids, want[0])

    def ad(self, t: float) -> None:
        """Ad click -> web views -> (often) a purchase days later, in the store for store shoppers."""
        r = self.r
        dev = 1 if t > self.new_device and r.random() < 0.5 else 0
        items = self.interest()
        offers = [i for i in items if self.cat.offer_from[i] <= t < self.cat.offer_until[i]]
        item = r.choice(offers or items)
        self.emit(t, "ADS", "AD_CLICK", self.anon[dev], item, attrs={"campaign": f"ad-{self.cat.ids[item]}"})
        ids = self.logged[dev] if r.random() < 0.6 else self.anon[dev]
        self.emit(t + 5, ("WEB", "APP")[dev], "VIEW", ids, item, attrs={"utm_source": "ads"})
        if r.random() < 0.5:
            later = self.hour(t // DAY * DAY + r.randint(1, 7) * DAY, store=True)
            self.buy(later, self.channel(), [item], dev=dev)

    def newsletter(self, t: float) -> None:
        """EMAIL_SENT -> maybe open -> maybe click an item -> web view -> maybe web purchase."""
        r, campaign = self.r, f"nl-{_utc(t).date().isoformat()}"
        t += r.randrange(1800)
        self.emit(t, "EMAIL", "EMAIL_SENT", self.mail, attrs={"campaign": campaign})
        if r.random() >= self.p.open_rate:
            return
        t += r.uniform(600, 2 * DAY)
        self.emit(t, "EMAIL", "EMAIL_OPEN", self.mail, attrs={"campaign": campaign})
        if r.random() >= 0.3:
            return
        item = r.choice(self.interest())
        dev = 1 if t > self.new_device and r.random() < 0.5 else 0
        # The click's redirect sees the browser's cookie: the event that ties a device to an e-mail.
        click = (*self.mail, self.anon[dev][0])
        self.emit(t + 20, "EMAIL", "EMAIL_CLICK", click, item, attrs={"campaign": campaign})
        ids = self.logged[dev] if r.random() < 0.5 else self.anon[dev]
        self.emit(t + 25, "WEB", "VIEW", ids, item, attrs={"utm_source": "newsletter", "campaign": campaign})
        if r.random() < 0.3 and self.buyable(item):
            self.buy(t + 200, "WEB", [item], dev=dev, logged=ids is self.logged[dev])

    def buy(
        self,
        t: float,
        channel: str,
        items: list[int],
        attrs: dict[str, str] | None = None,
        dev: int = 0,
        qty: int = 1,
        logged: bool = True,
    ) -> None:
        """One order. Online: login if needed, add to cart, pay. A main item (phone, laptop, coffee
        machine) usually brings an accessory for it, in the same basket or days later."""
        r = self.r
        lines = [i for i in dict.fromkeys(items) if self.buyable(i)]
        follow: list[int] = []
        for i in lines:
            if self.cat.main[i] and i in self.cat.accessories and r.random() < 0.85:
                follow += self.pick(self.cat.accessories[i], 1 + int(r.random() < 0.3))
        if not lines or t >= self.w.end:
            return
        same = r.random() < 0.45
        follow = [a for a in dict.fromkeys(follow) if a not in self.owned and a not in lines]
        lines += follow if same else []
        self.orders += 1
        order = f"ord-{self.k + 1:05d}-{self.orders:03d}"
        store = ""
        if channel == "POS":
            ids, store = self.pos, (self.who.home_store if r.random() < 0.8 else r.choice(self.w.stores))
        elif self.phone and r.random() < 0.04:
            channel, ids = "CALL_CENTER", self.phone
        else:
            channel = ("WEB", "APP")[dev]
            if not logged:
                self.emit(t, channel, "VISIT", self.logged[dev], attrs={"action": "login"})
            for j, i in enumerate(lines):
                self.emit(t + 10 + j, channel, "ADD_TO_CART", self.logged[dev], i, attrs=attrs)
            ids, t = self.pay[dev], t + 60 + len(lines)
        for i in lines:
            q = qty if self.cat.repeatable[i] else 1
            self.emit(t, channel, "PURCHASE", ids, i, q, store, order, attrs)
            if not self.cat.repeatable[i]:
                self.own(i)
                if r.random() < 0.02:
                    self.emit(t + r.uniform(3, 20) * DAY, channel, "RETURN", ids, i, 1, store, order)
        if follow and not same:
            later = self.hour(t // DAY * DAY + r.randint(1, 10) * DAY, store=True)
            self.buy(later, self.channel(), follow, dev=dev)

    # -- small draws ---------------------------------------------------------------------------

    def interest(self) -> list[int]:
        """Items for one session: mostly a favourite category's preferred items, sometimes popular ones."""
        r, favs = self.r, self.p.favs
        if r.random() < 0.15:
            return self.p.explore
        return self.p.taste[favs[0 if r.random() < 0.5 else 1 if r.random() < 0.6 else 2]]

    def own(self, i: int) -> None:
        self.owned.add(i)
        if self.cat.main[i]:
            self.durable_kinds.add(int(self.cat.cat[i]))

    def buyable(self, i: int) -> bool:
        """Not an item they own (but what is bought again), nor a second phone, laptop or coffee
        machine (but for the few who replace one)."""
        if self.cat.repeatable[i]:
            return True
        if i in self.owned:
            return False
        return not self.cat.main[i] or self.replaces or int(self.cat.cat[i]) not in self.durable_kinds

    def wanted(self, items: list[int]) -> list[int]:
        """What a customer would put in the basket: what they may buy, and a phone, laptop or coffee
        machine only now and then (they are considered, not bought on a whim)."""
        return [
            i
            for i in items
            if self.buyable(i) and (self.cat.repeatable[i] or not self.cat.main[i] or self.r.random() < 0.4)
        ]

    def pick(self, items: list[int], n: int) -> list[int]:
        return self.r.sample(items, min(n, len(items)))

    def channel(self) -> str:
        return "POS" if self.r.random() < _P_STORE[self.who.channel_preference] and self.pos else "WEB"

    def count(self, mean: float) -> int:
        """A Poisson count (Knuth's method; the means here are small)."""
        limit, n, prod = math.exp(-mean), 0, self.r.random()
        while prod > limit:
            n, prod = n + 1, prod * self.r.random()
        return n

    def when(self, lo: float, hi: float, store: bool = False) -> float:
        return max(lo + 60, self.hour((lo + self.r.random() * (hi - lo)) // DAY * DAY, store))

    def hour(self, day: float, store: bool = False) -> float:
        r = self.r
        h = r.randint(9, 18) if store else r.choices(range(24), cum_weights=_WEB_HOURS)[0]
        return day + h * 3600 + r.randrange(3600)

    def emit(
        self,
        t: float,
        channel: str,
        etype: str,
        ids: tuple[Identifier, ...],
        item: int = -1,
        qty: int = 1,
        store: str = "",
        order: str = "",
        attrs: dict[str, str] | None = None,
    ) -> None:
        """Records one event, unless it falls before they joined or after the end of the period."""
        if not self.p.join <= t < self.w.end or not ids:
            return
        t = float(int(t))
        price = self.cat.price_at(item, t) if etype in ("PURCHASE", "RETURN", "ADD_TO_CART") else 0.0
        item_id = self.cat.ids[item] if item >= 0 else ""
        event = Event("", ids, channel, etype, item_id, qty, price, store, order, "", t, dict(attrs or {}))
        self.out.append((t, len(self.out), event))


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)


def _ts(d: date) -> float:
    return datetime(d.year, d.month, d.day, tzinfo=UTC).timestamp()


def _easter(y: int) -> date:
    """Easter Sunday (anonymous Gregorian algorithm); Mothering Sunday is three weeks before."""
    a, b, c = y % 19, y // 100, y % 100
    h = (19 * a + b - b // 4 - (b - (b + 8) // 25 + 1) // 3 + 15) % 30
    el = (32 + 2 * (b % 4) + 2 * (c // 4) - h - c % 4) % 7
    m = (a + 11 * h + 22 * el) // 451
    return date(y, (h + el - 7 * m + 114) // 31, (h + el - 7 * m + 114) % 31 + 1)
