"""The identity graph: identifiers are nodes, an event or an `Identify` call carrying several links
them, and connected identifiers are one customer.

Storage is a flattened union-find: every identifier row points straight at its customer, and a
merge re-points the loser's rows (events, identifiers, consent, served recommendations and any
other table with a `customer_id` column) to the survivor inside the caller's transaction, so reads
never walk chains. Ids merged away are kept in `customer_merges`: a model trained before the merge
still knows the customer by them.

Over-merging guard (docs/identity.md): a customer holds at most one CUSTOMER_ID, so two accounts
are never joined automatically; devices and payment-card tokens are weak evidence — they attach
anonymous history to a person but never join two persons; a device seen with a second person is
marked shared and from then on links and recognises no one.

Channel callers (docs/identity.md, "What a caller may learn and link"): `identify(..., trusted=False)`
may look a customer up and add to what the call itself proves — the account of a CUSTOMER_ID on the
call, identifiers nobody holds, anonymous histories — but never changes another person: typing
someone's e-mail beside your device must not make the device theirs.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from models.domain import Identifier
from models.errors import FailedPrecondition, InvalidArgument
from models.identity import pii
from models.settings import Settings
from models.storage import Storage
from models.storage.identity import CustomerFacts, NewIdentifier
from models.storage.identity import IdentifierView as IdentifierView  # re-exported: the graph's view type
from models.validation import check_batch_size, check_identifier

log = logging.getLogger(__name__)

# Identifiers of one person (an account, their address, their number, their card) ...
STRONG_KINDS = frozenset({"CUSTOMER_ID", "EMAIL", "PHONE", "LOYALTY_CARD"})
# ... and of a thing several people may use (a family tablet, a shared payment card).
WEAK_KINDS = frozenset({"DEVICE_ID", "POS_CARD_TOKEN"})
MAX_IDENTIFY = 100
# Person-level links one device may make before it is treated as shared: the setting's default, so the
# number is written in one place (SEENEXT_DEVICE_LINK_LIMIT).
DEVICE_LINK_LIMIT: int = Settings.device_link_limit
_NODE_CACHE = 50_000  # identifiers normalised and hashed once; cleared when full (bounds memory)


class Node(NamedTuple):
    """An identifier as stored: `key` is the hash for e-mail and phone, the normalised value otherwise;
    `display` is what a response may show of it from storage: empty for e-mail and phone."""

    kind: str
    key: str
    display: str


@dataclass(slots=True)
class Resolution:
    customer_id: str
    created: bool = False  # no identifier was known before
    merged: bool = False  # two or more known customers were joined
    conflicts: list[str] = field(default_factory=list)  # links the guard refused, for the log


@dataclass(slots=True)
class IdentifyResult:
    customer_id: str
    identifiers: list[IdentifierView]
    created: bool
    merged: bool


class IdentityGraph:
    """Normalises and hashes identifiers, answers lookups, and hands out per-transaction resolvers."""

    def __init__(
        self,
        storage: Storage,
        key: pii.PiiKey,
        country_code: str = "",
        device_link_limit: int = DEVICE_LINK_LIMIT,
    ) -> None:
        self.storage = storage
        self.key = key
        self.country_code = country_code
        self.device_link_limit = device_link_limit
        self._nodes: dict[tuple[str, str], Node] = {}

    def node(self, ident: Identifier, field: str = "identifier") -> Node:
        cached = self._nodes.get((ident.kind, ident.value))
        if cached is not None:
            return cached
        value = pii.normalise(ident.kind, ident.value, f"{field}.value", self.country_code)
        if ident.kind in pii.HASHED_KINDS:  # nothing readable is stored: masks are made at read time
            node = Node(ident.kind, self.key.digest(ident.kind, value), "")
        else:
            node = Node(ident.kind, value, value)
        if len(self._nodes) >= _NODE_CACHE:
            self._nodes.clear()
        self._nodes[(ident.kind, ident.value)] = node
        return node

    def nodes(self, idents: Iterable[Identifier], field: str, index: int | None = None) -> tuple[Node, ...]:
        """The nodes of an event's or a call's identifiers, in order, without repeats. Errors name
        `field[n]`, or `field[index].identifiers[n]` when an index is given (built only on an error)."""
        cache = self._nodes
        out = []
        for n, ident in enumerate(idents):
            node = cache.get((ident.kind, ident.value))
            if node is None:
                where = f"{field}[{n}]" if index is None else f"{field}[{index}].identifiers[{n}]"
                node = self.node(ident, where)
            out.append(node)
        return (out[0],) if len(out) == 1 else tuple(dict.fromkeys(out))

    def lookup(self, ident: Identifier, field: str = "who") -> str | None:
        """The customer an identifier recognises: None when unknown, or a device marked shared."""
        check_identifier(ident, field)
        node = self.node(ident, field)
        row = self.storage.identifier_row(node.kind, node.key)
        if row is None or row.shared:
            return None
        return row.customer_id

    def is_shared(self, ident: Identifier, field: str = "who") -> bool:
        """Whether the identifier is known and marked shared (it recognises no one)."""
        node = self.node(ident, field)
        row = self.storage.identifier_row(node.kind, node.key)
        return row is not None and row.shared

    def identifiers(self, customer_id: str, shown: Sequence[Identifier] = ()) -> list[IdentifierView]:
        """The customer's identifiers as a caller may see them, oldest first.

        E-mail and phone are held as hashes only, so the one a caller sent (`shown`: the identifier it
        looked the customer up with) is shown masked from the value it sent ("a***@example.com"), and
        every other one as its kind alone (empty value). Other kinds show their stored value.
        """
        masks: dict[tuple[str, str], str] = {}
        for ident in shown:
            if ident.kind in pii.HASHED_KINDS:
                try:
                    value = pii.normalise(ident.kind, ident.value, "who.value", self.country_code)
                except InvalidArgument:
                    continue  # not an identifier of theirs, then
                masks[(ident.kind, self.key.digest(ident.kind, value))] = pii.mask(ident.kind, value)
        return [
            replace(
                v,
                display=masks.get((v.kind, v.key), "") if v.kind in pii.HASHED_KINDS else v.display,
                key="",  # the hash stays in the graph
            )
            for v in self.storage.identifier_views(customer_id)
        ]

    def aliases(self, customer_id: str) -> list[str]:
        """Ids merged into this customer, oldest merge first."""
        return self.storage.customer_aliases(customer_id)

    def resolver(self, now: float, strict: bool = False, deferred: bool = False) -> Resolver:
        """A resolver for one write transaction: use it inside `with storage.transaction():`.
        `deferred`: its writes wait for `Resolver.flush()` (a batch's, as a few statements)."""
        return Resolver(self.storage, now, strict, self.device_link_limit, deferred)

    def identify(self, idents: Sequence[Identifier], now: float, trusted: bool = True) -> IdentifyResult:
        """Links the identifiers into one customer (IdentityService.Identify).

        Unlike an event, a call that would join two accounts fails (FAILED_PRECONDITION) and changes nothing.
        A caller that is not `trusted` (a channel: web shop, till) may not change a person the call does
        not prove (FAILED_PRECONDITION, nothing changed): see `Resolver.unproven_person`.
        """
        check_batch_size(len(idents), "identifiers", "identifier", MAX_IDENTIFY)
        for n, ident in enumerate(idents):
            check_identifier(ident, f"identifiers[{n}]")
        nodes = self.nodes(idents, "identifiers")
        with self.storage.transaction():
            resolver = self.resolver(now, strict=True)
            if not trusted:
                stranger = resolver.unproven_person(nodes)
                if stranger is not None:
                    n = next(i for i, ident in enumerate(idents) if self.node(ident) == stranger)
                    raise FailedPrecondition(
                        f"identifiers[{n}]: this {stranger.kind} belongs to an existing customer, and the "
                        "call would link other identifiers to them; a channel's key links identifiers to an "
                        "existing customer only with that customer's CUSTOMER_ID (a login) on the same call. "
                        "Nothing was linked"
                    )
            res = resolver.resolve(nodes)
            views = self.identifiers(res.customer_id, idents)
        for conflict in res.conflicts:
            log.warning("identify: %s", conflict)
        return IdentifyResult(res.customer_id, views, res.created, res.merged)


@dataclass(slots=True)
class _Row:
    owner: str
    shared: bool
    links: int  # times this device joined two persons (or brought a person new identifiers)


# What `Resolver.customer` finds for an identifier whose row this transaction has not read (compared by
# identity; never stored).
_UNREAD = _Row("", False, 0)


@dataclass(slots=True)
class _Info:
    account: str | None  # the CUSTOMER_ID this customer holds, if any
    kinds: frozenset[str]  # the strong kinds it holds; any at all makes it a person
    created_at: float  # the stored one, or the transaction's time while there is no customer row
    stored: bool  # whether a customer row exists (a created_at was stored)

    @classmethod
    def of(cls, facts: CustomerFacts, now: float) -> _Info:
        account = None
        for kind, key in facts.keys:
            if kind == "CUSTOMER_ID":
                account = key
        born = facts.created_at
        kinds = frozenset(k for k, _ in facts.keys)
        return cls(account, kinds, born if born is not None else now, born is not None)

    @property
    def person(self) -> bool:
        return bool(self.kinds)


@dataclass(slots=True)
class _Seen:
    """A call's identifiers as the graph knows them."""

    # customer -> tied to the call by a strong identifier
    known: dict[str, bool] = field(default_factory=dict)
    # customer -> the call's weak identifiers it holds
    devices: dict[str, list[Node]] = field(default_factory=dict)
    new: list[Node] = field(default_factory=list)
    shared: list[Node] = field(default_factory=list)


class Resolver:
    """One write transaction's view of the graph: identifier rows read or written in it, what it knows
    of the customers involved, and an in-memory union-find of the customers merged in it (so a batch
    resolves each set once).

    Set-based for a batch (issue 11: a read inside a PostgreSQL write transaction is a round trip, and
    a batch of 1,000 demo events made ~300 statements): `prefetch` reads every identifier of the batch
    and the customers its resolutions will weigh in two reads; new customers, new identifiers, links
    and shared marks are queued and written by `flush()` as one statement each. The queue is written
    before anything that reads or re-points stored rows (a merge, a read of an unknown customer), and
    what the resolver knows of a customer is kept up to date as it writes, so every decision is the
    one a resolver reading and writing row by row would make.
    """

    def __init__(
        self,
        storage: Storage,
        now: float,
        strict: bool = False,
        device_link_limit: int = DEVICE_LINK_LIMIT,
        deferred: bool = False,
    ) -> None:
        self.storage = storage
        self.now = now
        self.strict = strict
        self.device_link_limit = device_link_limit
        self.deferred = deferred  # False: every resolve() writes before it returns
        self.merges = 0
        self._rows: dict[tuple[str, str], _Row | None] = {}
        self._parent: dict[str, str] = {}
        self._info: dict[str, _Info] = {}
        self._sets: dict[tuple[Node, ...], str] = {}
        # writes not sent yet, in order per kind (flush() sends customers, identifiers, links, marks)
        self._new_customers: list[tuple[str, float]] = []
        self._new_identifiers: list[NewIdentifier] = []
        self._links: list[tuple[str, str]] = []
        self._marks: list[tuple[str, str]] = []
        self._merges: list[tuple[str, str, float]] = []  # (loser, survivor, survivor's created_at)

    def flush(self) -> None:
        """Writes what is queued. The order between kinds is safe: a customer or identifier row only
        ever gets links or a shared mark after it exists in the resolver's view; merges go last, in the
        order made, so they re-point every row queued before them (a row queued after a merge names a
        customer that is still a root then, never its loser); every read of stored rows flushes first.
        Merges wait here too, rather than each flushing what was queued before it: a batch of 1,000 demo
        events makes ~8, and each flush before one was a few more statements (issue 11)."""
        if self._new_customers:
            self.storage.create_customers(self._new_customers)
            self._new_customers = []
        if self._new_identifiers:
            self.storage.insert_identifiers(self._new_identifiers)
            self._new_identifiers = []
        if self._links:
            self.storage.add_identifier_links(self._links)
            self._links = []
        if self._marks:
            self.storage.mark_identifiers_shared(self._marks)
            self._marks = []
        if self._merges:
            self.storage.merge_customers_many(self._merges, self.now)
            self._merges = []

    # -- reads --------------------------------------------------------------------------------------

    def find(self, customer_id: str) -> str:
        """The customer an id stands for now, after the merges made in this transaction."""
        root = customer_id
        while root in self._parent:
            root = self._parent[root]
        return root

    def prefetch(self, sets: Iterable[Sequence[Node]]) -> None:
        """Reads what resolving these identifier sets (a batch's events) will weigh, in two reads
        instead of a few per event: every identifier row, then the customers of each set that is not
        simply one known customer (and the accounts its CUSTOMER_IDs name). Anything not read here is
        read when needed, so this changes how many statements run, never an answer."""
        self.flush()
        sets = list(dict.fromkeys(tuple(nodes) for nodes in sets))  # a customer's events repeat their set
        rows = self._rows
        wanted = list(dict.fromkeys(k for nodes in sets for n in nodes if (k := (n.kind, n.key)) not in rows))
        for k in wanted:
            rows[k] = None
        if wanted:
            for stored in self.storage.identifier_rows_of(wanted):
                rows[(stored.kind, stored.key)] = _Row(stored.customer_id, stored.shared, stored.links)
        customers: dict[str, None] = {}
        for nodes in sets:
            owners: dict[str, None] = {}
            simple = True
            for n in nodes:
                row = rows[(n.kind, n.key)]
                if row is None:
                    simple = False
                elif not row.shared:
                    owners[self.find(row.owner)] = None
            if simple and len(owners) <= 1:
                continue  # a look-up of one customer (or shared devices only): nothing to weigh
            customers.update(owners)
            customers.update((n.key, None) for n in nodes if n.kind == "CUSTOMER_ID")
        unknown = [c for c in customers if c not in self._info]
        if unknown:
            for c, facts in self.storage.customer_facts(unknown, STRONG_KINDS).items():
                self._info[c] = _Info.of(facts, self.now)

    def _row(self, node: Node) -> _Row | None:
        k = (node.kind, node.key)
        if k not in self._rows:
            self.flush()
            row = self.storage.identifier_row(*k)
            self._rows[k] = _Row(row.customer_id, row.shared, row.links) if row else None
        return self._rows[k]

    def _about(self, customer_id: str) -> _Info:
        info = self._info.get(customer_id)
        if info is None:
            self.flush()  # the read must see this transaction's queued rows of the customer
            facts = self.storage.customer_facts([customer_id], STRONG_KINDS)[customer_id]
            info = self._info[customer_id] = _Info.of(facts, self.now)
        return info

    def unproven_person(self, nodes: Sequence[Node]) -> Node | None:
        """For a channel's call: the first identifier that reaches an existing person the call would
        change (give identifiers or merge) without proving them, or None if the call may go ahead.

        A call proves the customer of the CUSTOMER_ID it carries (a login the channel checked). It may
        also create customers and join anonymous histories (device only). A pure look-up (every
        identifier already on one customer) changes nothing and is always allowed. Reads only.
        """
        seen = self._classify(tuple(nodes))
        if not seen.new and len(seen.known) <= 1:
            return None  # a look-up, or only shared devices: nobody's identifiers change
        login = next((n for n in nodes if n.kind == "CUSTOMER_ID"), None)
        login_row = self._row(login) if login is not None else None
        proven = self.find(login_row.owner) if login_row is not None and not login_row.shared else None
        for n in nodes:
            row = self._row(n)
            if row is None or row.shared:
                continue
            owner = self.find(row.owner)
            if owner != proven and self._about(owner).person:
                return n
        return None

    # -- resolving ----------------------------------------------------------------------------------

    def resolve(self, nodes: Sequence[Node]) -> Resolution:
        """The customer of these identifiers (from `IdentityGraph.nodes`), linking and merging as the
        policy allows. Unless the resolver is `deferred`, its writes are sent before it returns."""
        res = self._resolve(nodes)
        if not self.deferred:
            self.flush()
        return res

    def customer(self, nodes: tuple[Node, ...]) -> str:
        """`resolve(nodes).customer_id`, without making a Resolution for a set this transaction has
        resolved already (most of a batch: a customer's events carry the same identifiers)."""
        cached = self._sets.get(nodes)
        if cached is not None:
            return self.find(cached)
        # The common case of `_resolve` decided here, without a `_Seen` or a `Resolution` (~2 us per
        # event of a TrackBatch, issue 11): every identifier's row already read, none new, and the ones
        # not shared all of one customer. Anything else (a row not read yet, a new identifier, two
        # customers, shared devices only) goes the whole way, which decides the same for this case.
        rows, owner = self._rows, None
        for n in nodes:
            row = rows.get((n.kind, n.key), _UNREAD)
            if row is None or row is _UNREAD:
                break
            if row.shared:
                continue
            found = self.find(row.owner)
            if owner is None:
                owner = found
            elif found != owner:
                break
        else:
            if owner is not None:
                self._sets[nodes] = owner
                return owner
        return self.resolve(nodes).customer_id

    def _resolve(self, nodes: Sequence[Node]) -> Resolution:
        if not isinstance(nodes, tuple):
            nodes = tuple(nodes)
        cached = self._sets.get(nodes)
        if cached is not None:
            return Resolution(self.find(cached))
        seen = self._classify(nodes)
        known, new = seen.known, seen.new
        if not known and not new:
            return Resolution(self._shared_customer(seen.shared[0]))
        if len(known) == 1 and not new:  # the common case: one known customer
            owner = next(iter(known))
            self._sets[nodes] = owner
            return Resolution(owner)

        # Strong evidence links whatever it names, except two accounts.
        strong = [c for c, s in known.items() if s]
        new_strong = [n for n in new if n.kind in STRONG_KINDS]
        accounts = list(
            dict.fromkeys(
                [n.key for n in new_strong if n.kind == "CUSTOMER_ID"]
                + [a for c in strong if (a := self._about(c).account) is not None]
            )
        )
        if len(accounts) > 1:
            return self._two_accounts(nodes, accounts)

        members, conflicts = self._members(strong, new_strong, seen)
        target = self._target(accounts, members)
        for c in members:
            if c != target:
                self._merge(c, target)
        for n in new:
            self._attach(n, target)
        self._sets[nodes] = target
        return Resolution(target, created=not known, merged=len(members) > 1, conflicts=conflicts)

    def _classify(self, nodes: tuple[Node, ...]) -> _Seen:
        """Sorts a call's identifiers into known customers, new identifiers and shared devices."""
        seen = _Seen()
        for n in nodes:
            row = self._row(n)
            if row is None:
                seen.new.append(n)
            elif row.shared:
                seen.shared.append(n)
            else:
                owner = self.find(row.owner)
                seen.known[owner] = seen.known.get(owner, False) or n.kind in STRONG_KINDS
                if n.kind in WEAK_KINDS:
                    seen.devices.setdefault(owner, []).append(n)
        return seen

    def _members(self, strong: list[str], new_strong: list[Node], seen: _Seen) -> tuple[list[str], list[str]]:
        """The customers a call joins, and the links the guard refused.

        Customers reached only through a device: an anonymous history always joins; a person joins
        only if no strong kind collides (two e-mails, two accounts, ... = two people) and the
        device has not linked persons too often already. Otherwise the device is marked shared.
        """
        weak = [c for c, s in seen.known.items() if not s]
        persons = [c for c in weak if self._about(c).person]
        members = strong + [c for c in weak if c not in persons]
        kinds = {k for c in strong for k in self._about(c).kinds} | {n.kind for n in new_strong}
        if not strong and not new_strong and persons:  # only devices on this call: the first person anchors
            members.append(persons[0])
            kinds |= self._about(persons.pop(0)).kinds
        conflicts = []
        for person in persons:
            devices = seen.devices[person]
            theirs = self._about(person).kinds
            links = max(self._rows[(n.kind, n.key)].links for n in devices)  # type: ignore[union-attr]
            if theirs & kinds or links >= self.device_link_limit:
                conflicts.append(self._mark_shared(devices, person))
                continue
            members.append(person)
            kinds |= theirs
            self._count_link(devices)
        return members, conflicts

    def _target(self, accounts: list[str], members: list[str]) -> str:
        """The surviving id: the account, else the oldest person, else the oldest anonymous history,
        else a new anonymous customer."""
        account = next((a for a in accounts), None) or next(
            (a for c in members if (a := self._about(c).account) is not None), None
        )
        if account is not None:
            self._ensure_customer(
                account, min((self._about(c).created_at for c in members), default=self.now)
            )
            return account
        if members:
            return min(members, key=lambda c: (not self._about(c).person, self._about(c).created_at, c))
        target = "anon-" + uuid.uuid4().hex[:20]
        self._info[target] = _Info(None, frozenset(), self.now, False)  # a new id: nothing stored yet
        self._ensure_customer(target, self.now)
        return target

    def _attach(self, node: Node, customer_id: str) -> None:
        self._new_identifiers.append(NewIdentifier(node.kind, node.key, customer_id, node.display, self.now))
        self._rows[(node.kind, node.key)] = _Row(customer_id, False, 0)
        info = self._info.get(customer_id)
        if info is not None and node.kind in STRONG_KINDS:  # what a read of the customer would now say
            account = node.key if node.kind == "CUSTOMER_ID" else info.account
            self._info[customer_id] = _Info(account, info.kinds | {node.kind}, info.created_at, info.stored)

    def _count_link(self, devices: list[Node]) -> None:
        for n in devices:
            self._links.append((n.kind, n.key))
            row = self._rows[(n.kind, n.key)]
            assert row is not None
            row.links += 1

    def _two_accounts(self, nodes: tuple[Node, ...], accounts: list[str]) -> Resolution:
        """Identifiers of two accounts on one call: nothing is linked; an event goes to the account it
        names."""
        if self.strict:
            raise FailedPrecondition(
                f"identifiers: they belong to {len(accounts)} different accounts ({', '.join(accounts)}); "
                "two customer ids are never merged automatically"
            )
        named = next((n for n in nodes if n.kind == "CUSTOMER_ID"), None)
        if named is not None:
            row = self._row(named)
            if row is not None:
                target = self.find(row.owner)
            else:
                target = named.key
                self._ensure_customer(target, self.now)
                self._attach(named, target)
        else:
            first = next(
                r
                for n in nodes
                if (r := self._row(n)) is not None and not r.shared and n.kind in STRONG_KINDS
            )
            target = self.find(first.owner)
        message = (
            f"identifiers of {len(accounts)} accounts ({', '.join(accounts)}) on one call were not linked"
        )
        log.warning("%s; the event is kept for %s", message, target)
        return Resolution(target, conflicts=[message])

    def _mark_shared(self, devices: list[Node], owner: str) -> str:
        for n in devices:
            self._marks.append((n.kind, n.key))
            row = self._rows[(n.kind, n.key)]
            assert row is not None
            row.shared = True
        self._sets.clear()  # sets resolved through these devices resolve differently now
        # What the resolver knows of `owner` stands: only weak kinds are ever marked shared, and a
        # customer's facts are its strong identifiers (`_about`).
        kinds = ", ".join(sorted({n.kind for n in devices}))
        message = (
            f"a {kinds} of {owner} was seen with another person; marked shared, it links no one from now on"
        )
        log.warning(message)
        return message

    def _shared_customer(self, node: Node) -> str:
        """Events that carry only shared devices belong to no person: one anonymous customer per device."""
        digest = hashlib.blake2b(f"{node.kind}\x00{node.key}".encode(), digest_size=10).hexdigest()
        customer_id = f"shared-{digest}"
        self._ensure_customer(customer_id, self.now)
        return customer_id

    def _ensure_customer(self, customer_id: str, created_at: float) -> None:
        """Adds the customer unless stored (the first row of an id wins, as in storage)."""
        self._new_customers.append((customer_id, created_at))
        info = self._info.get(customer_id)
        if info is not None and not info.stored:
            self._info[customer_id] = _Info(info.account, info.kinds, created_at, True)

    # -- merging ------------------------------------------------------------------------------------

    def _merge(self, loser: str, survivor: str) -> None:
        """Re-points everything of `loser` to `survivor`; both histories are kept whole."""
        lost, kept = self._about(loser), self._about(survivor)
        born = min(lost.created_at, kept.created_at)
        self._merges.append((loser, survivor, born))  # written by flush(), after the rows queued before
        self._parent[loser] = survivor
        self._info.pop(loser, None)
        # The survivor now holds both sides' identifiers and the earlier first-seen time, stored.
        account = kept.account if kept.account is not None else lost.account
        self._info[survivor] = _Info(account, kept.kinds | lost.kinds, born, True)
        self.merges += 1
        log.debug("customer %s merged into %s", loser, survivor)
