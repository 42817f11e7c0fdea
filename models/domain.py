"""Plain data the service works with, independent of any transport.

Enumerations are their proto names without the prefix ("WEB", "PURCHASE", "EMAIL"); times are
seconds since the epoch (UTC) as floats.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DAY = 86_400.0  # seconds in a day; every window and age in the service is in seconds

CHANNELS = ("WEB", "APP", "EMAIL", "POS", "CALL_CENTER", "ADS")
EVENT_TYPES = (
    "VIEW",
    "CLICK",
    "ADD_TO_CART",
    "REMOVE_FROM_CART",
    "PURCHASE",
    "RETURN",
    "EMAIL_OPEN",
    "EMAIL_CLICK",
    "AD_CLICK",
    "SEARCH",
    "IMPRESSION",
    "EMAIL_SENT",
    "VISIT",
    "WISHLIST",
)
IDENTIFIER_KINDS = ("CUSTOMER_ID", "EMAIL", "PHONE", "LOYALTY_CARD", "DEVICE_ID", "POS_CARD_TOKEN")
# Event types that are about one item and so must name it.
ITEM_EVENT_TYPES = frozenset(
    {"VIEW", "CLICK", "ADD_TO_CART", "REMOVE_FROM_CART", "PURCHASE", "RETURN", "IMPRESSION", "WISHLIST"}
)


@dataclass(frozen=True, slots=True)
class Identifier:
    kind: str
    value: str


@dataclass(slots=True)
class Event:
    event_id: str
    identifiers: tuple[Identifier, ...]
    channel: str
    type: str
    item_id: str = ""
    quantity: int = 1
    price: float = 0.0
    store_id: str = ""
    order_id: str = ""
    recommendation_id: str = ""
    occurred_at: float | None = None
    attributes: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class Offer:
    price: float = 0.0
    promo_price: float = 0.0
    valid_from: float | None = None
    valid_until: float | None = None
    offer_id: str = ""
    currency: str = ""


@dataclass(slots=True)
class Item:
    item_id: str
    title: str = ""
    category: str = ""
    brand: str = ""
    price: float = 0.0
    accessory_for: list[str] = field(default_factory=list)
    repeatable: bool | None = None  # the catalogue's override; None: learned from the history
    attributes: dict[str, str] = field(default_factory=dict)
    stock: dict[str, int] = field(default_factory=dict)  # store_id ("" = online) -> units
    offer: Offer | None = None
    active: bool = True


@dataclass(slots=True)
class TrackResult:
    customer_id: str
    duplicate: bool


@dataclass(slots=True)
class Rejection:
    index: int
    event_id: str
    field: str
    reason: str


@dataclass(slots=True)
class BatchResult:
    accepted: int
    duplicates: int
    rejected: list[Rejection]
