"""Hypothesis strategies for any request of the contract, built from its message descriptor, and
for request bodies that do not decode at all.

Nothing here knows a particular RPC: a new field, message or service is fuzzed the day it is added.
Values lean on what breaks services: empty, huge and control-character strings, integers at the
edges of their type, timestamps at and beyond the range google.protobuf.Timestamp allows, repeated
fields from 0 to 10,001 entries, and enum numbers the contract does not name. A pool of values the
tiny world knows (item and customer ids, the store, placements, purposes) keeps a share of calls
valid enough to reach the code behind validation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, TypeAlias, cast

from google.protobuf import descriptor as _descriptor
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

if TYPE_CHECKING:  # a message's DESCRIPTOR is the pure-Python class or upb's, with one interface
    from google._upb._message import Descriptor as _UpbDescriptor
    from google._upb._message import FieldDescriptor as _UpbFieldDescriptor

    Descriptor: TypeAlias = _descriptor.Descriptor | _UpbDescriptor
    Field: TypeAlias = FieldDescriptor | _UpbFieldDescriptor
else:
    Descriptor = _descriptor.Descriptor
    Field = FieldDescriptor

# google.protobuf.Timestamp's range: 0001-01-01T00:00:00Z to 9999-12-31T23:59:59Z, nanos 0..999,999,999
TIMESTAMP_MIN = -62135596800
TIMESTAMP_MAX = 253402300799

INT32 = (-(2**31), -(2**31) + 1, -1, 0, 1, 2, 7, 100, 10_001, 2**31 - 2, 2**31 - 1)
INT64 = (-(2**63), -(2**62), -(2**31) - 1, -1, 0, 1, 2**31, 2**53 + 1, 2**62, 2**63 - 1)
UINT32 = (0, 1, 2**31, 2**32 - 1)
UINT64 = (0, 1, 2**63, 2**64 - 1)
DOUBLES = (0.0, -0.0, 5e-324, 0.5, 1.0, -1.0, 999.99, 1e15, 1e308, -1e308, math.inf, -math.inf, math.nan)
FLOATS = (0.0, -0.0, 1e-45, 0.5, -1.0, 3.4e38, -3.4e38, math.inf, -math.inf, math.nan)
TIMESTAMP_SECONDS = (
    -(2**63),
    -(2**62),
    TIMESTAMP_MIN - 10,
    TIMESTAMP_MIN - 1,
    TIMESTAMP_MIN,
    TIMESTAMP_MIN + 1,
    -1,
    0,
    1,
    1_700_000_000,
    4_102_444_800,  # 2100-01-01
    TIMESTAMP_MAX,
    TIMESTAMP_MAX + 1,
    TIMESTAMP_MAX + 10**6,
    2**62,
    2**63 - 1,
)
NANOS = (-(2**31), -1, 0, 1, 500_000_000, 999_999_999, 1_000_000_000, 2**31 - 1)

# Values the tiny world of tests/conftest.py knows, the identifiers issue 10 saw merge strangers,
# paths where a name is expected, and the characters that break logs, terminals and parsers.
KNOWN_STRINGS = (
    "",
    " ",
    "phone-1",
    "phone-2",
    "case-1",
    "flowers-1",
    "laptop-3",
    "u0",
    "u1",
    "u4",
    "store-1",
    "o1-0",
    "home",
    "product",
    "cart",
    "checkout",
    "newsletter",
    "marketing",
    "profiling",
    "EUR",
    "a@b.example",
    " A@B.Example ",
    "x@y@z",
    "a@.",
    "a\x00@b.example",
    "+44 20 7946 0958",
    "0044207946095",
    "-",
    " - ",
    "--",
    "../../etc/passwd",
    "/tmp/another/data/dir/models/v1",
    "..",
    "CURRENT",
    "\u202eevil",
    "\u200b",
    "\ufeffbom",
    "\x1b[31mred",
    "line\r\nbreak",
    "tab\there",
    "🙂🙂🙂",
    "名前",
    "e\u0301",
    "NaN",
    "-1",
    "%s%n%x",
    "' OR 1=1 --",
    '"',
    "\\",
)
CONTROL_ALPHABET = [chr(c) for c in range(32)] + ["\x7f", "\u202e", "\u2066", "\u200b", "\ufeff", "\ufffd"]
LONG_LENGTHS = (129, 257, 321, 1025, 4097, 20_000, 100_001)
LONG_CHARS = ("x", "é", "🙂", "\x00", "-")
BIG_REPEATS = (33, 1001, 10_001)  # past the usual page, past a thousand, past the batch limit
MAX_LIST = 3
MAX_DEPTH = 6

Strategy = st.SearchStrategy[Any]

# Values that pass validation more often than not: without them nearly every request would stop at
# the first check and the code behind it would go unfuzzed.
SANE_STRINGS = (
    "phone-1",
    "phone-2",
    "case-1",
    "case-3",
    "flowers-1",
    "laptop-3",
    "u0",
    "u1",
    "u4",
    "u7",
    "store-1",
    "card-7",
    "device-9",
    "o1-0",
    "home",
    "product",
    "cart",
    "checkout",
    "newsletter",
    "marketing",
    "profiling",
    "EUR",
    "a@b.example",
    "shopper@mail.example",
    "+44 20 7946 0958",
)
SANE_EPOCH = 1_767_225_600  # 2026-01-01: sane times fall within about a year of it
ITEM_IDS = tuple(f"{kind}-{n}" for kind in ("phone", "case", "flowers", "laptop") for n in range(1, 6))
# Plausible values by field name (the contract's vocabulary, not any one RPC): a sane Forget or
# SetConsent needs a purpose the service knows, a Recommend a placement, and so on.
FIELD_HINTS: dict[str, tuple[str, ...]] = {
    "purpose": ("marketing", "profiling"),
    "placement": ("home", "product", "cart", "checkout", "newsletter"),
    "currency": ("EUR", "GBP"),
    "store_id": ("", "store-1", "store-2"),
    "item_id": ITEM_IDS,
    "item_ids": ITEM_IDS,
    "basket_item_ids": ITEM_IDS,
    "accessory_for": ITEM_IDS,
    "exclude_item_ids": ITEM_IDS,
    "related_item_id": ITEM_IDS,
    "categories": ("phone", "phone case", "flowers", "laptop"),
    "category": ("phone", "phone case", "flowers", "laptop"),
}


def weighted(*choices: tuple[int, Strategy]) -> Strategy:
    """One of the strategies, each picked with its weight (st.one_of picks uniformly)."""
    table = [s for weight, s in choices if weight for _ in range(weight)]
    return st.integers(0, len(table) - 1).flatmap(lambda i: table[i])


def strings(extra: Sequence[str] = ()) -> Strategy:
    long = st.tuples(st.sampled_from(LONG_LENGTHS), st.sampled_from(LONG_CHARS)).map(lambda t: t[1] * t[0])
    return weighted(
        (6, st.sampled_from(KNOWN_STRINGS)),
        (1, st.sampled_from([*extra, "v0"])),  # one branch whatever `extra` holds: the same choices
        (2, st.text(max_size=24)),
        (1, st.text(alphabet=st.sampled_from([*CONTROL_ALPHABET, "a", "@", ".", "-"]), max_size=12)),
        (1, long),
    )


def sane_strings(extra: Sequence[str] = ()) -> Strategy:
    ident = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=12)
    return weighted((4, st.sampled_from(SANE_STRINGS)), (1, st.sampled_from([*extra, "v0"])), (2, ident))


def timestamps(sane: bool = False) -> Strategy:
    from google.protobuf.timestamp_pb2 import Timestamp

    if sane:
        days = weighted((2, st.integers(-30, 30)), (1, st.integers(-400, 400)))
        seconds = st.tuples(days, st.integers(0, 86_399)).map(lambda t: SANE_EPOCH + t[0] * 86_400 + t[1])
        return st.builds(Timestamp, seconds=seconds, nanos=st.integers(0, 999_999_999))
    seconds = weighted(
        (3, st.sampled_from(TIMESTAMP_SECONDS)), (1, st.integers(TIMESTAMP_MIN, TIMESTAMP_MAX))
    )
    nanos = weighted((3, st.just(0)), (2, st.sampled_from(NANOS)))
    return st.builds(Timestamp, seconds=seconds, nanos=nanos)


class Level(NamedTuple):
    """How hostile a request is."""

    sane: int  # weight of a plausible value at every leaf
    hostile: int  # weight of a value from the edges
    big: bool  # whether a repeated field may run to thousands of entries
    presence: tuple[int, int]  # odds (unset, set) of a field with presence


LEVELS = {
    "sane": Level(1, 0, False, (1, 7)),
    "mixed": Level(11, 1, True, (1, 3)),
    "hostile": Level(0, 1, True, (1, 1)),
}


class MessageStrategies:
    """Strategies for the messages of a contract. A request is sane (every value plausible), mixed
    (one value in twelve hostile) or hostile (every value drawn from the edges), 1:2:1.
    `extra_strings` are values worth trying where a string goes (the model versions a running
    server lists)."""

    def __init__(self, extra_strings: Sequence[str] = ()) -> None:
        self.extra_strings = tuple(extra_strings)
        self.hostile_string = strings(extra_strings)
        self.sane_string = sane_strings(extra_strings)
        self._cache: dict[tuple[str, str, bool, int], Strategy] = {}

    def request(self, descriptor: Descriptor) -> Strategy:
        return weighted(
            (1, self.message(descriptor, "sane")),
            (2, self.message(descriptor, "mixed")),
            (1, self.message(descriptor, "hostile")),
        )

    def message(
        self, descriptor: Descriptor, level: str = "hostile", big: bool = True, depth: int = 0
    ) -> Strategy:
        """A message with every field drawn at `level`; `big` allows one field somewhere to repeat
        thousands of times (one: 10,001 events of 1,001 identifiers each would fuzz the client)."""
        big = big and LEVELS[level].big
        key = (descriptor.full_name, level, big, depth)
        if key not in self._cache:
            self._cache[key] = st.deferred(lambda: self._build(descriptor, level, big, depth))
        return self._cache[key]

    def _build(self, descriptor: Descriptor, level: str, big: bool, depth: int) -> Strategy:
        if descriptor.full_name == "google.protobuf.Timestamp":
            return self._leaf(level, timestamps(sane=True), timestamps())
        cls = GetMessageClass(cast(_descriptor.Descriptor, descriptor))
        if depth >= MAX_DEPTH:
            return st.just(cls())
        fields = {f.name: self._field(f, level, big, depth) for f in descriptor.fields}
        return st.fixed_dictionaries(fields).map(lambda values: fill(cls(), descriptor, values))

    def _leaf(self, level: str, sane: Strategy, hostile: Strategy) -> Strategy:
        return weighted((LEVELS[level].sane, sane), (LEVELS[level].hostile, hostile))

    def _field(self, field: Field, level: str, big: bool, depth: int) -> Strategy:
        message_type = field.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            key = self._single(message_type.fields_by_name["key"], level, False, depth + 1)
            value = self._single(message_type.fields_by_name["value"], level, False, depth + 1)
            few_entries = st.dictionaries(key, value, max_size=MAX_LIST)
            if not big:
                return few_entries
            many_entries = st.tuples(st.sampled_from(BIG_REPEATS), value).map(
                lambda t: {f"k{i}": t[1] for i in range(t[0])}
            )
            return weighted((12, few_entries), (1, many_entries))
        if field.is_repeated:
            element = self._single(field, level, False, depth + 1)
            few = st.lists(self._single(field, level, big, depth + 1), max_size=MAX_LIST)
            if not big:
                return few
            many = st.tuples(st.sampled_from(BIG_REPEATS), element).map(lambda t: [t[1]] * t[0])
            return weighted((12, few), (1, many))
        value = self._single(field, level, big, depth + 1)
        if field.has_presence:  # unset is its own case (an anonymous `who`, an offer with no window)
            unset, present = LEVELS[level].presence
            return weighted((unset, st.none()), (present, value))
        return value

    def _single(self, field: Field, level: str, big: bool, depth: int) -> Strategy:
        if field.message_type is not None:
            return self.message(field.message_type, level, big, depth)
        sane, hostile = self._scalar(field)
        return self._leaf(level, sane, hostile)

    def _scalar(self, field: Field) -> tuple[Strategy, Strategy]:
        """(a plausible value, a value from the edges) for a scalar or enum field."""
        t = field.type
        if field.enum_type is not None:
            named = [v.number for v in field.enum_type.values]
            hostile = weighted(
                (4, st.sampled_from(named)), (1, st.sampled_from([-1, 99, 2**31 - 1, -(2**31)]))
            )
            return st.sampled_from([n for n in named if n] or named), hostile
        if t == FieldDescriptor.TYPE_STRING:
            hints = FIELD_HINTS.get(field.name, ())
            if field.name == "model_version":
                hints = self.extra_strings
            sane = weighted((3, st.sampled_from(hints)), (1, self.sane_string)) if hints else self.sane_string
            return sane, self.hostile_string
        if t == FieldDescriptor.TYPE_BYTES:
            return st.binary(max_size=16), st.binary(max_size=64)
        if t == FieldDescriptor.TYPE_BOOL:
            return st.booleans(), st.booleans()
        if t == FieldDescriptor.TYPE_DOUBLE:
            hostile = weighted(
                (2, st.sampled_from(DOUBLES)), (1, st.floats(allow_nan=True, allow_infinity=True))
            )
            return st.floats(0, 2000), hostile
        if t == FieldDescriptor.TYPE_FLOAT:
            return st.floats(0, 2000, width=32), st.sampled_from(FLOATS)
        if t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
            return st.integers(0, 20), st.sampled_from(UINT32)
        if t in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
            return st.integers(0, 20), st.sampled_from(UINT64)
        if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED64):
            return st.integers(0, 20), weighted((2, st.sampled_from(INT64)), (1, st.integers(-1000, 1000)))
        return st.integers(0, 20), weighted((2, st.sampled_from(INT32)), (1, st.integers(-10, 1000)))


def fill(msg: Message, descriptor: Descriptor, values: dict[str, Any]) -> Message:
    """Sets the drawn values on an empty message; None leaves a field unset."""
    for name, value in values.items():
        if value is None:
            continue
        field = descriptor.fields_by_name[name]
        target = getattr(msg, name)
        message_type = field.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            if message_type.fields_by_name["value"].message_type is not None:
                for k, v in value.items():
                    target[k].CopyFrom(v)
            else:
                target.update(value)
        elif field.is_repeated:
            target.extend(value)
        elif message_type is not None:
            target.CopyFrom(value)
        else:
            setattr(msg, name, value)
    return msg


# -- bodies that are not a request at all ------------------------------------------------------------


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


def _delimited(number: int, payload: bytes) -> bytes:
    return _tag(number, 2) + _varint(len(payload)) + payload


def bad_utf8_bodies(descriptor: Descriptor, depth: int = 0) -> list[bytes]:
    """A body whose only flaw is invalid UTF-8 in one string field, for every string field reachable
    (wrapped in its parents' fields): proto3 refuses such a string at decode time."""
    if depth > 3:
        return []
    out = []
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_STRING:
            out.append(_delimited(field.number, b"ok\xff\xfe\xc0\x80"))
        elif field.message_type is not None:
            inner = field.message_type
            if inner.GetOptions().map_entry:
                out.append(_delimited(field.number, _delimited(1, b"\xff\xfe")))
            else:
                out += [_delimited(field.number, body) for body in bad_utf8_bodies(inner, depth + 1)]
    return out


def malformed_wire() -> list[bytes]:
    """Wire-format errors any message type refuses."""
    return [
        b"\xff",  # a tag whose varint never ends
        _tag(1, 0) + b"\xff" * 11,  # a varint longer than 10 bytes
        _tag(1, 2) + _varint(1000) + b"ab",  # a length past the end of the body
        _tag(1, 2) + b"\xff\xff\xff\xff\x0f",  # a 4 GB length
        _tag(1, 3),  # a group that never ends
        _tag(1, 4),  # the end of a group that never began
        _tag(1, 6) + b"x",  # wire type 6 does not exist
        _tag(1, 7) + b"x",  # nor 7
        _tag(0, 0) + b"\x01",  # field number 0
        _tag(1, 5) + b"\x01\x02",  # a fixed32 cut short
        _tag(1, 1) + b"\x01\x02\x03",  # a fixed64 cut short
    ]


def raw_bodies(request_class: type[Message], messages: Strategy) -> Strategy:
    """Bodies for a method: corrupt wire format, invalid UTF-8 in each string field, valid requests
    cut short or with a byte flipped, and plain random bytes. Some of them still decode (random bytes
    can be a valid message with unknown fields); the test tells them apart with the message class."""
    descriptor = request_class.DESCRIPTOR
    crafted = malformed_wire() + bad_utf8_bodies(descriptor)
    serialized = messages.map(lambda m: m.SerializeToString()).filter(lambda b: 0 < len(b) < 1_000_000)

    def truncate(body: bytes, cut: int) -> bytes:
        return body[: max(0, min(cut, len(body) - 1))]

    def flip(body: bytes, at: int, bit: int) -> bytes:
        i = at % len(body)
        return body[:i] + bytes([body[i] ^ (1 << bit)]) + body[i + 1 :]

    cut = st.tuples(serialized, st.integers(0, 4096)).map(lambda t: truncate(*t))
    flipped = st.tuples(serialized, st.integers(0, 4096), st.integers(0, 7)).map(lambda t: flip(*t))
    if not descriptor.fields:  # an empty request serializes to nothing: nothing to cut or flip
        cut = flipped = st.binary(min_size=1, max_size=16)
    return weighted(
        (3, st.sampled_from(crafted)),
        (2, cut),
        (2, flipped),
        (2, st.binary(min_size=1, max_size=64)),
        (1, st.tuples(st.sampled_from(crafted), st.binary(max_size=16)).map(lambda t: t[1] + t[0])),
    )


def walk_strings(msg: Message) -> list[str]:
    """Every string value set anywhere in a message (to check none comes back whole in an error)."""
    found: list[str] = []
    for field, value in msg.ListFields():
        message_type = field.message_type
        if message_type is not None and message_type.GetOptions().map_entry:
            for k, v in value.items():
                found.append(k)
                found.extend(walk_strings(v) if isinstance(v, Message) else [v] if isinstance(v, str) else [])
            continue
        items = value if field.is_repeated else [value]
        for item in items:
            if isinstance(item, Message):
                found.extend(walk_strings(item))
            elif isinstance(item, str):
                found.append(item)
    return found
