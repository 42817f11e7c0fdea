"""A retailer's own world without flags (issue 9, points 3 and 4): what customers buy again is only in
the history.

Items carry id, title, category and price; no `repeatable`, no `accessory_for`, no stock. Forty
customers each bought one phone (and its case in the same order) between 30 and 225 days ago and
never another phone; fifteen buy the same coffee every 30 days (give or take two); twenty buy mugs,
books and lamps (one of them an hour ago). Then the customers the tests ask about:

* `newbie` bought phone-2 (alone) 8 days ago: no phone should come back, case-2 should;
* `regular` bought coffee-1 every 30 days, last 31 days ago: due again;
* `stocked` bought coffee-1 every 30 days, last 3 days ago: not yet.
"""

from __future__ import annotations

import time
from typing import NamedTuple

DAY = 86400.0
NOW = time.time()


class Sku(NamedTuple):
    item_id: str
    title: str
    category: str
    price: float


class Buy(NamedTuple):
    event_id: str
    customer: str
    item_id: str
    order_id: str
    at: float
    channel: str = "WEB"


def items() -> list[Sku]:
    out: list[Sku] = []
    for n in range(1, 6):
        out.append(Sku(f"phone-{n}", f"Nova X{n} Phone", "phones", 500.0 + 50 * n))
        out.append(Sku(f"case-{n}", f"Slim Case for Nova X{n}", "phone cases", 19.0 + n))
    for n in range(1, 4):
        out.append(Sku(f"coffee-{n}", f"Espresso Beans {n}", "coffee", 8.0 + n))
    for kind, category, count, price in (
        ("mug", "mugs", 4, 12.0),
        ("book", "books", 4, 15.0),
        ("lamp", "lamps", 3, 40.0),
    ):
        out += [Sku(f"{kind}-{n}", f"{kind.title()} {n}", category, price + n) for n in range(1, count + 1)]
    return out


def _coffee(customer: str, item: str, last_days_ago: float, times: int, jitter: int) -> list[Buy]:
    """Monthly purchases of one coffee, the newest `last_days_ago` days ago."""
    out = []
    at = NOW - last_days_ago * DAY
    for j in range(times):
        out.append(
            Buy(f"{customer}-c{j}", customer, item, f"{customer}-oc{j}", at, "POS" if j % 2 else "WEB")
        )
        at -= (30 + (jitter + j) % 5 - 2) * DAY  # 28 to 32 days between purchases
    return out


def purchases() -> list[Buy]:
    out: list[Buy] = []
    for i in range(40):
        cid, n = f"p{i:02d}", i % 5 + 1
        at = NOW - (30 + 5 * i) * DAY
        out.append(Buy(f"{cid}-phone", cid, f"phone-{n}", f"{cid}-o1", at))
        out.append(Buy(f"{cid}-case", cid, f"case-{n}", f"{cid}-o1", at + 60))
        out.append(Buy(f"{cid}-mug", cid, f"mug-{i % 4 + 1}", f"{cid}-o2", at + 20 * DAY))
    for i in range(15):
        out += _coffee(f"k{i:02d}", f"coffee-{i % 3 + 1}", 3 + i % 10, 7, i)
    for i in range(20):
        cid = f"m{i:02d}"
        out.append(Buy(f"{cid}-1", cid, f"book-{i % 4 + 1}", f"{cid}-o1", NOW - (10 + 7 * i) * DAY))
        out.append(Buy(f"{cid}-2", cid, f"lamp-{i % 3 + 1}", f"{cid}-o2", NOW - (12 + 7 * i) * DAY))
    out.append(Buy("m00-today", "m00", "mug-1", "m00-o3", NOW - 3600))  # a live shop: sales today
    out.append(Buy("newbie-phone", "newbie", "phone-2", "newbie-o1", NOW - 8 * DAY))
    out += _coffee("regular", "coffee-1", 31, 5, 2)
    out += _coffee("stocked", "coffee-1", 3, 5, 2)
    return out
