"""The fuzz campaign's fixtures: one `python -m server serve` process over the tiny trained world
(its own process, so its resident memory is the server's alone), every RPC of the contract, the
checks every answer must pass, and the tally the campaign reports.

Knobs (environment variables without the SEENEXT_ prefix, which belongs to the server's settings):
FUZZ_EXAMPLES (generated requests per RPC, and as many raw bodies; 50 in `make test`),
FUZZ_SEED (base seed; runs are reproducible), FUZZ_MEMORY_ROUNDS (fuzz rounds between the two
memory readings; 0, the default, skips the memory test: `make fuzz` runs it), FUZZ_MEMORY_EXAMPLES
(requests per RPC in a memory round), FUZZ_REPORT (a JSON file the tally is written to at the end;
bench/fuzz.py reads it).
"""

from __future__ import annotations

import importlib
import json
import os
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass
from google.protobuf.text_format import MessageToString
from hypothesis import HealthCheck, Phase, given, seed, settings

from bench.serving import ServerProcess
from models.service import Seenext
from protos.seenext.v1 import events_pb2, model_pb2, model_pb2_grpc
from tests.conftest import tiny_events, tiny_items, tiny_settings
from tests.fuzz.strategies import Descriptor, MessageStrategies, raw_bodies, walk_strings

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))
SEED = int(os.environ.get("FUZZ_SEED", "20251"))
MEMORY_ROUNDS = int(os.environ.get("FUZZ_MEMORY_ROUNDS", "0"))
MEMORY_EXAMPLES = int(os.environ.get("FUZZ_MEMORY_EXAMPLES", "25"))
REPORT = os.environ.get("FUZZ_REPORT", "")
CALL_TIMEOUT = 120.0  # not a latency check: a call unanswered this long is a hung server
ECHO_LIMIT = 1024  # a request string this long must never come back whole in an error message
FORBIDDEN = {"INTERNAL", "UNKNOWN"}
# What gRPC itself says when the server's own answer never reached the caller (an error message too
# long for the trailers, a handler that raised outside the error interceptor).
TRANSPORT_ERRORS = ("Stream removed", "metadata size", "Exception deserializing", "Exception calling")


@dataclass(frozen=True)
class Rpc:
    path: str  # /seenext.v1.EventService/Track
    service: str  # EventService
    method: str  # Track
    request_class: type[Message]
    streaming: bool
    stub_module: Any  # the generated *_pb2_grpc module

    @property
    def name(self) -> str:
        return f"{self.service}/{self.method}"


def every_rpc() -> list[Rpc]:
    """Every RPC of every service declared in protos/seenext/v1/, from the generated descriptors."""
    out = []
    for proto in sorted((ROOT / "protos/seenext/v1").glob("*.proto")):
        module = importlib.import_module(f"protos.seenext.v1.{proto.stem}_pb2")
        for service in module.DESCRIPTOR.services_by_name.values():
            stubs = importlib.import_module(f"protos.seenext.v1.{proto.stem}_pb2_grpc")
            for m in service.methods:
                out.append(
                    Rpc(
                        f"/{service.full_name}/{m.name}",
                        service.name,
                        m.name,
                        GetMessageClass(m.input_type),
                        m.server_streaming,
                        stubs,
                    )
                )
    return out


RPCS = every_rpc()


# -- what an answer must be ---------------------------------------------------------------------------

_KEY = r"\[(?:\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\]]*)\]"
_SEGMENT = rf"([A-Za-z_][A-Za-z0-9_]*)((?:{_KEY})*)"
_PATH = re.compile(rf"^({_SEGMENT}(?:\.{_SEGMENT})*): ")


def named_field(descriptor: Descriptor, message: str) -> str | None:
    """The field path an INVALID_ARGUMENT message starts with, if it names a field of the request.

    The house form (models/errors.py InvalidArgument) is `path: problem`, the path being dotted
    segments, each a field name with optional `[index]` or `[key]` suffixes: `events[3].attributes: …`,
    `who.value: …`, `window_end: …`. "Names a field" means every segment resolves in the request's
    descriptor: the first is a field of the request message, each next one a field of the message
    type of the one before; nothing follows a scalar or a map of scalars."""
    match = _PATH.match(message)
    if match is None:
        return None
    path = match.group(1)
    current: Descriptor | None = descriptor
    for segment in re.finditer(_SEGMENT, path):
        if current is None:  # a segment after a scalar field
            return None
        f = current.fields_by_name.get(segment.group(1))
        if f is None:
            return None
        inner = f.message_type
        if inner is not None and inner.GetOptions().map_entry:
            inner = inner.fields_by_name["value"].message_type
        current = inner
    return path


@dataclass
class Outcome:
    code: str  # the status name, "OK" for a reply
    details: str
    replies: list[bytes] = field(default_factory=list)


def judge(rpc: Rpc, request: Message | None, outcome: Outcome) -> list[tuple[str, str]]:
    """The campaign's rules for one answer, as (rule, what broke it); `request` is None when the body
    did not decode."""
    broken: list[tuple[str, str]] = []
    code, details = outcome.code, outcome.details
    if code in FORBIDDEN:
        broken.append(("no INTERNAL or UNKNOWN", f"{code}: {details}"))
    elif code in ("DEADLINE_EXCEEDED", "UNAVAILABLE"):
        broken.append(("the server answers", f"{code}: {details}"))
    elif any(t in details for t in TRANSPORT_ERRORS):
        broken.append(("the server's own error reaches the caller", f"{code}: {details}"))
    if request is None:
        if code not in FORBIDDEN and code != "INVALID_ARGUMENT":
            broken.append(("an undecodable body is INVALID_ARGUMENT", f"{code}: {details}"))
        return broken
    if code == "INVALID_ARGUMENT" and named_field(rpc.request_class.DESCRIPTOR, details) is None:
        broken.append(("INVALID_ARGUMENT names a request field", details))
    long_values = [s for s in walk_strings(request) if len(s) >= ECHO_LIMIT]
    if code != "OK" and any(s in details for s in long_values):
        broken.append(("no oversized value echoed", f"{code}: {len(details)} characters"))
    if code == "OK" and rpc.method == "TrackBatch":
        reply = events_pb2.TrackBatchResponse.FromString(outcome.replies[0])
        for r in reply.rejected:
            if named_field(rpc.request_class.DESCRIPTOR, f"{r.field}: ") is None:
                broken.append(("a rejection names a request field", f"field={r.field!r}: {r.reason[:200]}"))
            if any(s in r.reason for s in long_values):
                broken.append(("no oversized value echoed", f"rejection: {len(r.reason)} characters"))
    return broken


def _shape(details: str) -> str:
    """A message with its particulars taken out, so one defect is one line of the report."""
    text = re.sub(r"incident [0-9a-f]+", "incident …", details)
    text = re.sub(r"'[^']{0,80}'|\"[^\"]{0,80}\"", "'…'", text)
    text = re.sub(r"\d+", "N", text)
    return text[:160]


def describe(msg: Message | None, body: bytes) -> str:
    """A request short enough for a report: long strings shown by their length."""
    if msg is None:
        return f"undecodable body {body[:40]!r}{'…' if len(body) > 40 else ''} ({len(body)} bytes)"
    text = MessageToString(msg, as_one_line=True, print_unknown_fields=False)
    text = re.sub(r'"((?:[^"\\]|\\.){60})(?:[^"\\]|\\.)+"', r'"\1…"', text)
    return text[:400]


@dataclass
class Violation:
    kind: str  # "message" (through the stub) or "raw" (a body as it is)
    rpc: str
    rule: str
    status: str
    shape: str
    example: str
    details: str
    count: int = 0


@dataclass
class Campaign:
    """The tally of one pytest session: answers per RPC and kind, rules broken, memory, log lines."""

    calls: dict[str, Counter[str]] = field(default_factory=dict)  # "message"/"raw" + rpc -> status -> n
    violations: dict[tuple[str, ...], Violation] = field(default_factory=dict)
    shapes: dict[str, Counter[str]] = field(default_factory=dict)  # kind, rpc, status -> messages' shapes
    memory: dict[str, Any] = field(default_factory=dict)
    log_lines: dict[str, int] = field(default_factory=dict)  # rpc -> lines the raw bodies added
    undecodable: Counter[str] = field(default_factory=Counter)  # rpc -> raw bodies that did not decode

    def record(self, kind: str, rpc: Rpc, request: Message | None, body: bytes, outcome: Outcome) -> None:
        self.calls.setdefault(f"{kind} {rpc.name}", Counter())[outcome.code] += 1
        if outcome.code != "OK":
            self.shapes.setdefault(f"{kind} {rpc.name} {outcome.code}", Counter())[
                _shape(outcome.details)
            ] += 1
        for rule, what in judge(rpc, request, outcome):
            key = (kind, rpc.name, rule, outcome.code, _shape(what))
            v = self.violations.setdefault(
                key,
                Violation(kind, rpc.name, rule, outcome.code, key[-1], describe(request, body), what[:500]),
            )
            v.count += 1

    def broken(self, rpc: Rpc, kind: str) -> list[Violation]:
        return [v for v in self.violations.values() if v.rpc == rpc.name and v.kind == kind]

    def as_json(self) -> dict[str, Any]:
        return {
            "examples": EXAMPLES,
            "memory_examples": MEMORY_EXAMPLES,
            "seed": SEED,
            "calls": {k: dict(c) for k, c in sorted(self.calls.items())},
            "violations": [vars(v) for v in self.violations.values()],
            "shapes": {k: dict(c.most_common()) for k, c in sorted(self.shapes.items())},
            "memory": self.memory,
            "log_lines": self.log_lines,
            "undecodable": dict(self.undecodable),
        }


def explain(violations: list[Violation]) -> str:
    lines = [f"{len(violations)} kind(s) of answer broke the campaign's rules:"]
    for v in sorted(violations, key=lambda v: -v.count):
        lines.append(f"- {v.rpc} [{v.rule}] x{v.count}: {v.status} {v.details[:300]!r}\n    e.g. {v.example}")
    return "\n".join(lines)


# -- the server and the calls -------------------------------------------------------------------------


class FuzzServer:
    """The server process and one caller channel to it with the admin key, as a caller would."""

    def __init__(self, process: ServerProcess, data_dir: Path, log_path: Path) -> None:
        self.process = process
        self.data_dir = data_dir
        self.log_path = log_path
        self.channel = grpc.insecure_channel(process.target)
        grpc.channel_ready_future(self.channel).result(timeout=30)
        self._stubs: dict[str, Any] = {}

    def alive(self) -> bool:
        return self.process.proc.poll() is None

    def rss_kb(self) -> int:
        return self.process.memory_kb()["VmRSS"]

    def data_bytes(self) -> int:
        """The data folder's size: the store and the model versions the fuzzing made grow."""
        return sum(p.stat().st_size for p in self.data_dir.rglob("*") if p.is_file())

    def log_size(self) -> int:
        return len(self.log_path.read_text(errors="replace").splitlines())

    def call(self, rpc: Rpc, request: Message) -> Outcome:
        """Through the generated stub; a stream is read to its end."""
        if rpc.service not in self._stubs:
            self._stubs[rpc.service] = getattr(rpc.stub_module, f"{rpc.service}Stub")(self.channel)
        method = getattr(self._stubs[rpc.service], rpc.method)
        return self._run(method, request, rpc.streaming, lambda m: m.SerializeToString())

    def call_raw(self, rpc: Rpc, body: bytes) -> Outcome:
        """The body as it is, on the method's path: what a broken or hostile client sends."""
        kind = self.channel.unary_stream if rpc.streaming else self.channel.unary_unary
        method = kind(rpc.path, request_serializer=None, response_deserializer=None)
        return self._run(method, body, rpc.streaming, lambda b: b)

    def _run(self, method: Any, request: Any, streaming: bool, to_bytes: Any) -> Outcome:
        try:
            if streaming:
                replies = [
                    to_bytes(r) for r in method(request, metadata=self.process.metadata, timeout=CALL_TIMEOUT)
                ]
            else:
                replies = [to_bytes(method(request, metadata=self.process.metadata, timeout=CALL_TIMEOUT))]
        except grpc.RpcError as err:
            return Outcome(err.code().name, err.details() or "")
        return Outcome("OK", "", replies)

    def model_versions(self) -> list[str]:
        reply = model_pb2_grpc.ModelServiceStub(self.channel).ListModels(
            model_pb2.ListModelsRequest(), metadata=self.process.metadata, timeout=CALL_TIMEOUT
        )
        return [m.model_version for m in reply.models]

    def close(self) -> None:
        self.channel.close()


def _seed_for(rpc: Rpc, base: int, kind: str) -> int:
    return base + zlib.crc32(f"{kind} {rpc.path}".encode())


def _hypothesis(examples: int, seed_value: int) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Generate only: the test never raises inside Hypothesis (every answer is tallied, then judged), so
    there is nothing to shrink, and no example database is written."""

    def wrap(fn: Callable[..., None]) -> Callable[..., None]:
        return settings(
            max_examples=examples,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )(seed(seed_value)(fn))

    return wrap


def fuzz_messages(server: FuzzServer, rpc: Rpc, campaign: Campaign, examples: int, base_seed: int) -> None:
    """`examples` generated requests of the RPC's type through its stub, each answer tallied."""
    strategies = MessageStrategies(server.model_versions())

    @_hypothesis(examples, _seed_for(rpc, base_seed, "message"))
    @given(strategies.request(rpc.request_class.DESCRIPTOR))
    def run(request: Message) -> None:
        campaign.record("message", rpc, request, b"", server.call(rpc, request))

    run()


def fuzz_raw(server: FuzzServer, rpc: Rpc, campaign: Campaign, examples: int, base_seed: int) -> None:
    """`examples` raw bodies on the RPC's path; a body that happens to decode is judged as a request."""
    strategies = MessageStrategies()
    bodies = raw_bodies(
        rpc.request_class, strategies.message(rpc.request_class.DESCRIPTOR, "mixed", big=False)
    )

    @_hypothesis(examples, _seed_for(rpc, base_seed, "raw"))
    @given(bodies)
    def run(body: bytes) -> None:
        try:
            request: Message | None = rpc.request_class.FromString(body)
        except DecodeError:
            request = None
            campaign.undecodable[rpc.name] += 1
        campaign.record("raw", rpc, request, body, server.call_raw(rpc, body))

    run()


@pytest.fixture(scope="session")
def campaign() -> Iterator[Campaign]:
    tally = Campaign()
    yield tally
    if REPORT:
        Path(REPORT).write_text(json.dumps(tally.as_json(), indent=2, default=str))


@pytest.fixture(scope="session")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzServer]:
    """The tiny world stored and trained in a data folder, then served by its own process with API
    keys on (ServerProcess gives the caller an admin key)."""
    data = tmp_path_factory.mktemp("fuzz") / "data"
    with Seenext(tiny_settings(data)) as service:
        service.upsert_items(tiny_items())
        assert not service.track_batch(tiny_events()).rejected
        service.train()
    log_path = data.parent / "server.log"
    with ServerProcess(
        data, log_path=log_path, epochs=20, components=8, train_threads=1, learning_rate=0.05, workers=8
    ) as process:
        server = FuzzServer(process, data, log_path)
        yield server
        server.close()
