"""Consent, erasure and access: what a customer allowed, forgetting them, and everything held on them.

Consent is recorded per customer, channel and purpose. A decision for one channel wins over a
decision for every channel (recorded with no channel); with neither, the installation's default
applies: marketing is refused and profiling allowed unless SEENEXT_CONSENT_DEFAULT_* say otherwise.

Forget erases every row that carries the customer's id (or an id merged into them) in every table
with a `customer_id` column, the customer's identifiers, and their vectors in every kept model
version; SQLite's secure_delete overwrites the freed bytes and the WAL is checkpointed.

Erasure survives a kill (issue 10): the transaction that deletes the rows also records the ids as a
pending erasure; the record goes only once no kept model version holds them. Start-up (before a
server serves) and every Forget, a retry that finds no customer included, finish what is pending, and
until then the registry drops the pending ids from any version it makes current. The ids of a pending
erasure never reach the log.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from models.domain import CHANNELS, Identifier
from models.errors import FailedPrecondition, InvalidArgument, NotFound
from models.identity.graph import IdentityGraph
from models.learning.artifact import DamagedArtifact
from models.privacy.consent import ALL_CHANNELS, PURPOSES, ConsentDefaults, allows
from models.serving.registry import ModelRegistry
from models.storage import Storage
from models.validation import check_identifier, quote

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ConsentRecord:
    channel: str  # "" = every channel
    purpose: str
    granted: bool
    updated_at: float


@dataclass(slots=True)
class ForgetResult:
    customer_id: str
    events: int = 0
    identifiers: int = 0
    consents: int = 0
    recommendations: int = 0
    other_rows: dict[str, int] = field(default_factory=dict)  # table -> rows, for tables other modules add
    model_versions: int = 0  # kept model versions the customer's vectors were removed from


@dataclass(slots=True)
class ExportDocument:
    kind: str  # "customer", "identifier", "event", "consent", "recommendation", or another table's name
    json: str


class Privacy:
    def __init__(self, storage: Storage, graph: IdentityGraph, defaults: ConsentDefaults) -> None:
        self.storage = storage
        self.graph = graph
        self.defaults = defaults

    # -- who ----------------------------------------------------------------------------------------

    def customer_of(self, who: Identifier | None, field: str = "who") -> str | None:
        """The customer `who` recognises, None if unknown; a shared device is refused, it is nobody."""
        if who is None:
            raise InvalidArgument(field, "is required")
        check_identifier(who, field)
        customer = self.graph.lookup(who, field)
        if customer is None and self.graph.is_shared(who, field):
            raise FailedPrecondition(
                f"{field}: this {who.kind} is shared by several customers and identifies none of them; "
                "use an identifier of the person"
            )
        return customer

    def require_customer(self, who: Identifier | None, field: str = "who") -> str:
        customer = self.customer_of(who, field)
        if customer is None:
            kind = who.kind if who is not None else ""
            raise NotFound(f"{field}: no customer has this {kind}")
        return customer

    # -- consent ------------------------------------------------------------------------------------

    def set_consent(
        self, who: Identifier | None, channel: str, purpose: str, granted: bool
    ) -> tuple[str, ConsentRecord]:
        """Records a decision. An unknown identifier becomes a customer, so an opt-out given before any
        event is already honoured when their first event arrives."""
        check_channel_purpose(channel, purpose)
        self.customer_of(who)  # validates, and refuses a shared device
        assert who is not None
        now = time.time()
        nodes = self.graph.nodes([who], "who")
        with self.storage.transaction():
            customer = self.graph.resolver(now).resolve(nodes).customer_id
            self.storage.set_consent(customer, channel or ALL_CHANNELS, purpose, granted, now)
        return customer, ConsentRecord(channel, purpose, granted, now)

    def import_consents(self, rows: Sequence[tuple[Identifier, str, str, bool, float]]) -> int:
        """Decisions recorded elsewhere (who, channel, purpose, granted, when), written in one transaction;
        unknown identifiers become customers, as with `set_consent`."""
        nodes = []
        for i, (who, channel, purpose, _, _) in enumerate(rows):
            check_channel_purpose(channel, purpose)
            nodes.append(self.graph.nodes([who], "consents", i))
        now = time.time()
        with self.storage.transaction():
            resolver = self.graph.resolver(now)
            for node, (_, channel, purpose, granted, at) in zip(nodes, rows, strict=True):
                customer = resolver.resolve(node).customer_id
                self.storage.set_consent(customer, channel or ALL_CHANNELS, purpose, granted, at)
        return len(rows)

    def consents(self, customer_id: str) -> list[ConsentRecord]:
        return [
            ConsentRecord("" if r.channel == ALL_CHANNELS else r.channel, r.purpose, r.granted, r.updated_at)
            for r in self.storage.consent_rows(customer_id)
        ]

    def has_consent(self, customer_id: str, channel: str, purpose: str) -> bool:
        """Whether the customer allows `purpose` in `channel` (models/privacy/consent.py decides)."""
        decisions = self.storage.consent_decisions([customer_id], channel, purpose).get(customer_id, {})
        return allows(decisions, channel, purpose, self.defaults)

    def with_consent(self, customer_ids: Iterable[str], channel: str, purpose: str) -> set[str]:
        """The customers of a list who allow `purpose` in `channel` (read at once, for campaigns)."""
        ids = list(dict.fromkeys(customer_ids))
        decided = self.storage.consent_decisions(ids, channel, purpose)
        return {cid for cid in ids if allows(decided.get(cid, {}), channel, purpose, self.defaults)}

    # -- erasure ------------------------------------------------------------------------------------

    def erase(self, customer_id: str) -> tuple[ForgetResult, list[str]]:
        """Deletes every row of the customer and of the ids merged into them; returns the counts and ids."""
        result = ForgetResult(customer_id)
        with self.storage.transaction():
            ids = [customer_id, *self.graph.aliases(customer_id)]
            deleted = self.storage.erase_customer(ids)
            # In the same transaction: once the rows are gone, the record of what the models still
            # hold is there too, whatever kills the process next.
            self.storage.add_pending_erasures(ids, time.time())
        result.events = deleted.pop("events", 0)
        result.identifiers = deleted.pop("identifiers", 0)
        result.consents = deleted.pop("consent", 0)
        result.recommendations = deleted.pop("recommendations", 0)
        for table in ("customers", "customer_merges"):
            deleted.pop(table, None)
        result.other_rows = {table: n for table, n in deleted.items() if n}
        self.storage.compact()
        return result, ids

    def erasures_pending(self) -> bool:
        """Whether an erasure still has model versions to rewrite (a Forget a kill interrupted)."""
        return bool(self.storage.pending_erasures())

    def finish_erasures(self, registry: ModelRegistry) -> int:
        """Removes every pending id from every kept model version, then drops the record; the number of
        versions rewritten (or removed as damaged). The caller holds training off."""
        ids = self.storage.pending_erasures()
        if not ids:
            return 0
        changed = erase_from_models(registry, ids)
        self.storage.clear_pending_erasures(ids)
        return changed

    def delete_recommendations(self, ids: list[str]) -> int:
        """Served rows the asynchronous log wrote while the customer was being erased."""
        return self.storage.delete_recommendations(ids)

    def checkpoint(self) -> None:
        """Erased rows leave the database's logs too."""
        self.storage.compact()

    # -- access -------------------------------------------------------------------------------------

    def export(self, customer_id: str, shown: Sequence[Identifier] = ()) -> Iterator[ExportDocument]:
        """Everything held about the customer, one JSON document per row (right of access); of e-mail and
        phone, only the one in `shown` (the identifier asked with) is shown, masked: the rest are hashes."""
        aliases = self.graph.aliases(customer_id)
        yield _doc(
            "customer",
            {
                "customer_id": customer_id,
                "created_at": _iso(self.storage.customer_created_at(customer_id)),
                "merged_ids": aliases,
                "note": "e-mail addresses and phone numbers are held only as keyed hashes: the one asked "
                "with is shown masked, the others by their kind alone",
            },
        )
        for ident in self.graph.identifiers(customer_id, shown):
            yield _doc(
                "identifier",
                {
                    "kind": ident.kind,
                    "value": ident.display,
                    "shared": ident.shared,
                    "created_at": _iso(ident.created_at),
                },
            )
        for rec in self.consents(customer_id):
            yield _doc(
                "consent",
                {
                    "channel": rec.channel or "all",
                    "purpose": rec.purpose,
                    "granted": rec.granted,
                    "updated_at": _iso(rec.updated_at),
                },
            )
        skip = ("customers", "identifiers", "consent", "customer_merges")
        for table, row in self.storage.customer_rows([customer_id, *aliases], skip):
            kind = {"events": "event", "recommendations": "recommendation"}.get(table, table)
            yield _doc(kind, _row_doc(row))


def check_channel_purpose(channel: str, purpose: str) -> None:
    if channel and channel not in CHANNELS:
        raise InvalidArgument(
            "channel", f"must be one of {', '.join(CHANNELS)} or unset for every channel, got {channel!r}"
        )
    if purpose not in PURPOSES:
        raise InvalidArgument("purpose", f"must be one of {', '.join(PURPOSES)}, got {quote(purpose)}")


def erase_from_models(registry: ModelRegistry, ids: list[str]) -> int:
    """Removes the ids' rows from every kept model version on disk (the serving one first, and swapped in
    at once), so neither this process, another one, a restart nor a rollback ranks with their vectors
    again. A damaged version cannot be rewritten and may hold them: it is removed. Each rewrite is safe
    against a kill (ModelArtifact.save); the caller keeps the pending record until this returns."""
    wanted = set(ids)
    serving = registry.current.version if registry.current is not None else None
    changed = 0
    for version in sorted(registry.versions(), key=lambda v: v != serving):
        try:
            artifact = registry.artifact(version)
        except DamagedArtifact as exc:
            registry.remove(version)
            log.warning(
                "model %s could not be read to erase a customer from it, so it was removed: %s",
                version,
                exc.message,
            )
            changed += 1
            continue
        if artifact.without_users(wanted):
            artifact.save(registry.folder / version)
            changed += 1
        if version == serving:
            registry.refresh()  # the rewritten serving version replaces the one in memory now
    registry.refresh()
    return changed


def _doc(kind: str, body: Mapping[str, object]) -> ExportDocument:
    return ExportDocument(kind, json.dumps(body, sort_keys=True, ensure_ascii=False))


def _row_doc(row: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in row.items():
        if key.endswith("_at") and isinstance(value, (int, float)):
            value = _iso(value)
        elif key in ("attributes", "items") and isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = json.loads(value)
        out[key] = value
    return out


def _iso(seconds: float | None) -> str | None:
    return (
        None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    )
