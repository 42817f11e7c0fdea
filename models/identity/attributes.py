"""Customer attributes (age band, segment, club status, …): the user features of the model.

Kept in their own table keyed by the resolved customer, written by the importers (and any caller
that knows a customer's attributes), read by training. Values are short strings; an empty value
means "unknown" and is not a feature.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

from models.domain import Identifier
from models.identity.graph import IdentityGraph
from models.storage import Storage


class CustomerAttributes:
    """Stored under the customer id, so identity merges re-point them and Forget erases them."""

    def __init__(self, storage: Storage, graph: IdentityGraph) -> None:
        self.storage = storage
        self.graph = graph

    def upsert(self, rows: Sequence[tuple[Identifier, Mapping[str, str]]]) -> int:
        """Sets the attributes of each identified customer (created if new, as an event would)."""
        now = time.time()
        nodes = [self.graph.nodes([ident], "customers", i) for i, (ident, _) in enumerate(rows)]
        with self.storage.transaction():
            resolver = self.graph.resolver(now)
            values: list[tuple[str, Mapping[str, str]]] = []
            for node, (_, attrs) in zip(nodes, rows, strict=True):
                customer_id = resolver.resolve(node).customer_id
                clean = {str(k): str(v) for k, v in attrs.items() if v is not None and str(v) != ""}
                values.append((customer_id, clean))
            if resolver.merges:  # a later row joined customers named by earlier ones
                values = [(resolver.find(c), a) for c, a in values]
            self.storage.set_customer_attributes(values, now)
        return len(rows)

    def get(self, customer_id: str) -> dict[str, str]:
        return self.storage.customer_attributes(customer_id)

    def all(self) -> dict[str, dict[str, str]]:
        return self.storage.all_customer_attributes()

    def count(self) -> int:
        return self.storage.customer_attributes_count()
