"""Consent, erasure and access: what a customer allowed, forgetting them, and everything held on them.

Consent is recorded per customer, channel and purpose. A decision for one channel wins over a
decision for every channel (recorded with no channel); with neither, the installation's default
applies: marketing is refused and profiling allowed unless SEENEXT_CONSENT_DEFAULT_* say otherwise.

Forget erases every row that carries the customer's id (or an id merged into them) in every table
with a `customer_id` column, the customer's identifiers, and their vectors in every kept model
version; SQLite's secure_delete overwrites the freed bytes and the WAL is checkpointed.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from models.domain import CHANNELS, Identifier
from models.errors import FailedPrecondition, InvalidArgument, NotFound
from models.identity.graph import IdentityGraph, customer_tables
from models.learning.artifact import ModelArtifact
from models.privacy.consent import ALL_CHANNELS, PURPOSES, decision
from models.serving.registry import ModelRegistry
from models.storage import Storage
from models.validation import check_identifier

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
    def __init__(self, db: Storage, graph: IdentityGraph, defaults: Mapping[str, bool]) -> None:
        self.db = db
        self.graph = graph
        self.defaults = dict(defaults)
        # Freed pages and cells are overwritten with zeros, so erased data does not linger in the file.
        db.writer.execute("PRAGMA secure_delete=ON")

    # -- who ----------------------------------------------------------------------------------------

    def customer_of(self, who: Identifier | None, field: str = "who") -> str | None:
        """The customer `who` recognises, None if unknown; a shared device is refused, it is nobody."""
        if who is None:
            raise InvalidArgument(field, "is required")
        check_identifier(who, field)
        conn = self.db.reader()
        customer = self.graph.lookup(conn, who, field)
        if customer is None and self.graph.is_shared(conn, who, field):
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
        with self.db.transaction() as conn:
            customer = self.graph.resolver(conn, now).resolve(nodes).customer_id
            conn.execute(
                "INSERT OR REPLACE INTO consent (customer_id, channel, purpose, granted, updated_at) VALUES (?,?,?,?,?)",
                (customer, channel or ALL_CHANNELS, purpose, int(granted), now),
            )
        return customer, ConsentRecord(channel, purpose, granted, now)

    def consents(self, customer_id: str) -> list[ConsentRecord]:
        rows = (
            self.db.reader()
            .execute(
                "SELECT channel, purpose, granted, updated_at FROM consent WHERE customer_id=? ORDER BY purpose, channel",
                (customer_id,),
            )
            .fetchall()
        )
        return [ConsentRecord("" if c == ALL_CHANNELS else c, p, bool(g), t) for c, p, g, t in rows]

    def has_consent(self, customer_id: str, channel: str, purpose: str) -> bool:
        """Whether the customer allows `purpose` in `channel`: their decision for the channel, else their
        decision for every channel, else the default (marketing False, profiling True unless configured)."""
        decided = decision(self.db.reader(), customer_id, channel, purpose)
        return self.defaults.get(purpose, False) if decided is None else decided

    def with_consent(self, customer_ids: Iterable[str], channel: str, purpose: str) -> set[str]:
        """The customers of a list who allow `purpose` in `channel` (one query per 500, for campaigns)."""
        ids = list(dict.fromkeys(customer_ids))
        decided: dict[str, dict[str, int]] = {}
        conn = self.db.reader()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for cid, ch, granted in conn.execute(
                f"SELECT customer_id, channel, granted FROM consent WHERE purpose=? AND channel IN (?, ?)"
                f" AND customer_id IN ({marks})",
                (purpose, channel or ALL_CHANNELS, ALL_CHANNELS, *chunk),
            ):
                decided.setdefault(cid, {})[ch] = granted
        default = self.defaults.get(purpose, False)
        out = set()
        for cid in ids:
            rows = decided.get(cid, {})
            value = rows.get(channel, rows.get(ALL_CHANNELS))
            if default if value is None else bool(value):
                out.add(cid)
        return out

    # -- erasure ------------------------------------------------------------------------------------

    def erase(self, customer_id: str) -> tuple[ForgetResult, list[str]]:
        """Deletes every row of the customer and of the ids merged into them; returns the counts and ids."""
        result = ForgetResult(customer_id)
        with self.db.transaction() as conn:
            ids = [customer_id, *self.graph.aliases(conn, customer_id)]
            marks = ",".join("?" * len(ids))
            for table in customer_tables(conn):
                if table in ("customers", "customer_merges"):
                    continue
                n = conn.execute(f'DELETE FROM "{table}" WHERE customer_id IN ({marks})', ids).rowcount
                if table == "events":
                    result.events = n
                elif table == "identifiers":
                    result.identifiers = n
                elif table == "consent":
                    result.consents = n
                elif table == "recommendations":
                    result.recommendations = n
                elif n:
                    result.other_rows[table] = n
            conn.execute(
                f"DELETE FROM customer_merges WHERE customer_id IN ({marks}) OR merged_id IN ({marks})",
                ids + ids,
            )
            conn.execute(f"DELETE FROM customers WHERE customer_id IN ({marks})", ids)
        self.checkpoint()
        return result, ids

    def delete_recommendations(self, ids: list[str]) -> int:
        """Served rows the asynchronous log wrote while the customer was being erased."""
        marks = ",".join("?" * len(ids))
        with self.db.transaction() as conn:
            return conn.execute(f"DELETE FROM recommendations WHERE customer_id IN ({marks})", ids).rowcount

    def checkpoint(self) -> None:
        """Moves the WAL into the main file and truncates it, so erased rows leave the WAL too."""
        with self.db.write_lock:
            self.db.writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- access -------------------------------------------------------------------------------------

    def export(self, customer_id: str) -> Iterator[ExportDocument]:
        """Everything held about the customer, one JSON document per row (right of access)."""
        conn = self.db.reader()
        row = conn.execute("SELECT created_at FROM customers WHERE customer_id=?", (customer_id,)).fetchone()
        aliases = self.graph.aliases(conn, customer_id)
        yield _doc(
            "customer",
            {
                "customer_id": customer_id,
                "created_at": _iso(row[0] if row else None),
                "merged_ids": aliases,
                "note": "e-mail addresses and phone numbers are held only as keyed hashes; they are shown masked",
            },
        )
        for ident in self.graph.identifiers(conn, customer_id):
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
        ids = [customer_id, *aliases]
        marks = ",".join("?" * len(ids))
        for table in customer_tables(conn):
            if table in ("customers", "identifiers", "consent", "customer_merges"):
                continue
            kind = {"events": "event", "recommendations": "recommendation"}.get(table, table)
            order = " ORDER BY occurred_at, seq" if table == "events" else ""
            cur = conn.execute(f'SELECT * FROM "{table}" WHERE customer_id IN ({marks}){order}', ids)
            names = [d[0] for d in cur.description]
            for values in cur:
                yield _doc(kind, _row_doc(dict(zip(names, values))))


def check_channel_purpose(channel: str, purpose: str) -> None:
    if channel and channel not in CHANNELS:
        raise InvalidArgument(
            "channel", f"must be one of {', '.join(CHANNELS)} or unset for every channel, got {channel!r}"
        )
    if purpose not in PURPOSES:
        raise InvalidArgument("purpose", f"must be one of {', '.join(PURPOSES)}, got {purpose!r}")


def erase_from_models(registry: ModelRegistry, ids: list[str]) -> int:
    """Removes the customers' rows from every kept model version on disk, then reloads the serving one,
    so neither this process, a restart nor a rollback ranks with their vectors again."""
    wanted = np.array(sorted(set(ids)), dtype=str)
    changed = 0
    for version in registry.versions():
        folder: Path = registry.folder / version
        artifact = ModelArtifact.load(folder)
        keep = ~np.isin(artifact.user_ids.astype(str), wanted)
        if keep.all():
            continue
        artifact.user_ids = artifact.user_ids[keep]
        artifact.user_vectors = artifact.user_vectors[keep]
        artifact.user_biases = artifact.user_biases[keep]
        artifact.save(folder)
        changed += 1
    current = registry.current
    if changed and current is not None:
        registry.rollback(current.version)  # re-reads the rewritten artifact and swaps it in
    return changed


def _doc(kind: str, body: Mapping[str, object]) -> ExportDocument:
    return ExportDocument(kind, json.dumps(body, sort_keys=True, ensure_ascii=False))


def _row_doc(row: dict) -> dict:
    out: dict = {}
    for key, value in row.items():
        if key.endswith("_at") and isinstance(value, (int, float)):
            value = _iso(value)
        elif key in ("attributes", "items") and isinstance(value, str):
            try:
                value = json.loads(value)
            except ValueError:
                pass
        out[key] = value
    return out


def _iso(seconds: float | None) -> str | None:
    return (
        None if seconds is None else datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
    )
