"""Storage interface: identifiers, customers, merges, customer attributes (the PII key check is meta)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple


class IdentifierRow(NamedTuple):
    """An identifier node as stored: `key` is the hash for e-mail and phone, else the normalised value.
    (A named tuple: a batch reads hundreds at once.)"""

    kind: str
    key: str
    customer_id: str
    shared: bool  # seen with several persons: links and recognises no one
    links: int  # times this device joined two persons (or brought a person new identifiers)


class NewIdentifier(NamedTuple):
    """An identifier to add (`insert_identifiers`): not shared, no links yet."""

    kind: str
    key: str
    customer_id: str
    display: str  # what a response may show: empty for e-mail and phone (held as hashes only)
    created_at: float


@dataclass(frozen=True, slots=True)
class CustomerFacts:
    """What the identity graph weighs about a customer before linking: when it was first seen (None:
    no such customer row) and its identifiers of the kinds asked for that are not marked shared."""

    created_at: float | None
    keys: tuple[tuple[str, str], ...]  # (kind, key)


@dataclass(slots=True)
class IdentifierView:
    """What a caller may see of a customer's identifier."""

    kind: str
    # The value for kinds stored in clear; for e-mail and phone nothing is stored (empty), and the graph
    # shows the mask of the value a caller sent, if it sent this one (models/identity/graph.py).
    display: str
    shared: bool
    created_at: float
    # The stored key (the keyed hash for e-mail and phone): how the graph recognises the identifier a
    # caller sent among the customer's. Never put in a response.
    key: str = field(default="", repr=False, compare=False)


class IdentityStorage(ABC):
    """The identity graph's rows: identifiers, customers, merges, attributes."""

    # -- identifiers ---------------------------------------------------------------------------------

    @abstractmethod
    def identifier_row(self, kind: str, key: str) -> IdentifierRow | None:
        """The stored identifier of this kind and key; None if unknown."""

    @abstractmethod
    def identifier_rows(self, kind: str, keys: Sequence[str]) -> list[IdentifierRow]:
        """The stored identifiers of one kind among `keys` (a batch's identifiers at once)."""

    @abstractmethod
    def identifier_rows_of(self, nodes: Sequence[tuple[str, str]]) -> list[IdentifierRow]:
        """The stored identifiers among (kind, key) pairs of any kinds: a whole batch's in one (chunked)
        read."""

    @abstractmethod
    def customer_identifier_keys(self, customer_id: str, kinds: Collection[str]) -> list[tuple[str, str]]:
        """(kind, key) of the customer's identifiers of these kinds that are not marked shared."""

    @abstractmethod
    def insert_identifier(
        self, kind: str, key: str, customer_id: str, display: str, created_at: float
    ) -> None:
        """Adds an identifier for the customer (not shared, no links); one already stored is left as it is.
        `display` is what a response may show: empty for e-mail and phone, which are held as hashes only."""

    @abstractmethod
    def insert_identifiers(self, rows: Sequence[NewIdentifier]) -> None:
        """`insert_identifier` for many, in order, as one statement (a batch's new identifiers)."""

    @abstractmethod
    def add_identifier_link(self, kind: str, key: str) -> None:
        """Counts one more person-level link made through this identifier."""

    @abstractmethod
    def add_identifier_links(self, nodes: Sequence[tuple[str, str]]) -> None:
        """`add_identifier_link` for each (kind, key): one that appears n times gains n links."""

    @abstractmethod
    def mark_identifier_shared(self, kind: str, key: str) -> None:
        """Marks the identifier as used by several persons."""

    @abstractmethod
    def mark_identifiers_shared(self, nodes: Sequence[tuple[str, str]]) -> None:
        """`mark_identifier_shared` for each (kind, key)."""

    @abstractmethod
    def identifier_views(self, customer_id: str) -> list[IdentifierView]:
        """The customer's identifiers as stored (display and key), oldest first."""

    # -- customers and merges ------------------------------------------------------------------------

    @abstractmethod
    def create_customer(self, customer_id: str, created_at: float) -> None:
        """Adds the customer; one already stored is left as it is."""

    @abstractmethod
    def create_customers(self, rows: Sequence[tuple[str, float]]) -> None:
        """`create_customer` for each (customer_id, created_at), in order: the first row of an id wins."""

    @abstractmethod
    def customer_created_at(self, customer_id: str) -> float | None:
        """When the customer was first seen; None if unknown."""

    @abstractmethod
    def customer_facts(self, customer_ids: Sequence[str], kinds: Collection[str]) -> dict[str, CustomerFacts]:
        """`customer_created_at` and `customer_identifier_keys` of many customers in two (chunked)
        reads; every id asked for has an entry (created_at None when it is not a customer)."""

    @abstractmethod
    def merge_customers(self, loser: str, survivor: str, created_at: float, merged_at: float) -> None:
        """Re-points every row of `loser` (in every table with a customer id) to `survivor`, keeping the
        newer consent decision where both decided; `survivor` gets `created_at`; records the alias."""

    @abstractmethod
    def merge_customers_many(self, merges: Sequence[tuple[str, str, float]], merged_at: float) -> None:
        """`merge_customers` of each (loser, survivor, created_at), in order, as merging them one after
        the other would leave the rows (a survivor may be a later pair's loser)."""

    @abstractmethod
    def customer_aliases(self, customer_id: str) -> list[str]:
        """Ids merged into this customer, oldest merge first."""

    # -- customer attributes -------------------------------------------------------------------------

    @abstractmethod
    def set_customer_attributes(
        self, rows: Sequence[tuple[str, Mapping[str, str]]], updated_at: float
    ) -> None:
        """Replaces the attributes of each (customer, attributes); a later row of a customer wins."""

    @abstractmethod
    def customer_attributes(self, customer_id: str) -> dict[str, str]:
        """The customer's attributes; empty if none were set."""

    @abstractmethod
    def all_customer_attributes(self) -> dict[str, dict[str, str]]:
        """The attributes of every customer that has some (training's user features)."""

    @abstractmethod
    def customer_attributes_count(self) -> int: ...
