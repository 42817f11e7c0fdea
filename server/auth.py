"""API keys per calling system, each with scopes, checked by one interceptor before any servicer runs.

Callers send `authorization: Bearer <key>` metadata. No key or an unknown key is UNAUTHENTICATED;
a key without the scope the RPC needs is PERMISSION_DENIED; the health and reflection services
stay open. Keys come from a JSON file (SEENEXT_KEYS_FILE):

    {"keys": [{"name": "web-shop", "key": "<secret>", "scopes": ["track", "recommend"]}, ...]}

Without SEENEXT_KEYS_FILE, the first start writes `<data_dir>/keys.json` (mode 0600) with one
random key per example caller and says so; SEENEXT_AUTH=0 turns checking off, loudly.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from models.settings import Settings
from server.errors import Continuation, Handler, Interceptor

log = logging.getLogger(__name__)

# Every scope a key may hold, and what it opens. "*" opens everything.
SCOPES: dict[str, str] = {
    "track": "EventService: Track, TrackBatch",
    "catalog": "CatalogService: UpsertItems, GetItem",
    "identify": "IdentityService: Identify",
    "recommend": "RecommendationService: Recommend, SimilarItems",
    "batch": "RecommendationService: RecommendBatch (campaign lists)",
    "profile": "ProfileService: GetProfile (the call-centre view)",
    "consent": "PrivacyService: SetConsent",
    "forget": "PrivacyService: Forget (erasure)",
    "export": "PrivacyService: Export (right of access)",
    "insights": "InsightsService: ChannelReport, FunnelReport (and DueReminders)",
    "reminders": "InsightsService: DueReminders (the e-mail system's reminder campaigns)",
    "status": "ModelService: GetModelStatus, ListModels",
    "train": "ModelService: Train, RollbackModel",
    "merchandising": "MerchandisingService: business rules, placements, experiments (change, preview, read)",
    "rules": "MerchandisingService: ListRules, GetRuleHistory, ListPlacements, ListExperiments, "
    "GetPlacementHistory, GetExperimentHistory (read only)",
}
# Scopes that already show a customer's identifiers (GetProfile, Export): a key holding one may see them
# in Identify's reply too and link any customer (the call centre checks who is on the line, the CRM and
# the operator are trusted). A key with "identify" alone is a channel's (web shop, till): Identify
# answers it the customer id only and links nothing to a person the call does not prove
# (docs/identity.md, "What a caller may learn and link").
IDENTITY_SCOPES = frozenset({"profile", "export", "*"})
# The scope of each service's RPCs, then the RPCs that need another one. An RPC added to a service
# later needs that service's scope; an RPC of a service not listed here needs "*".
_SERVICE_SCOPES = {
    "seenext.v1.EventService": "track",
    "seenext.v1.CatalogService": "catalog",
    "seenext.v1.IdentityService": "identify",
    "seenext.v1.RecommendationService": "recommend",
    "seenext.v1.ProfileService": "profile",
    "seenext.v1.PrivacyService": "consent",
    "seenext.v1.InsightsService": "insights",
    "seenext.v1.ModelService": "status",
    "seenext.v1.MerchandisingService": "merchandising",
}
_METHOD_SCOPES = {
    "/seenext.v1.RecommendationService/RecommendBatch": "batch",
    "/seenext.v1.PrivacyService/Forget": "forget",
    "/seenext.v1.PrivacyService/Export": "export",
    "/seenext.v1.ModelService/Train": "train",
    "/seenext.v1.ModelService/RollbackModel": "train",
    "/seenext.v1.InsightsService/DueReminders": "reminders",
    # what is in force, read only: the marketing page shows it beside the reports
    "/seenext.v1.MerchandisingService/ListRules": "rules",
    "/seenext.v1.MerchandisingService/GetRuleHistory": "rules",
    "/seenext.v1.MerchandisingService/ListPlacements": "rules",
    "/seenext.v1.MerchandisingService/ListExperiments": "rules",
    "/seenext.v1.MerchandisingService/GetPlacementHistory": "rules",
    "/seenext.v1.MerchandisingService/GetExperimentHistory": "rules",
}
# A scope that grants another one too: "insights" covered DueReminders before "reminders" existed, and
# keys files written then keep working; who reads the reports (marketing) or changes the rules
# (merchandisers) may read the rules in force.
_IMPLIED = {"insights": frozenset({"reminders", "rules"}), "merchandising": frozenset({"rules"})}
OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)
# What the generated development keys file holds: the callers of the design, one key each.
DEV_CALLERS = {
    "web-shop": ["track", "recommend", "identify"],
    "email": ["recommend", "batch", "consent", "reminders"],
    "pos": ["track", "recommend", "identify"],
    "callcentre": ["profile", "identify", "consent"],
    "marketing": ["insights", "status"],
    "merchandiser": ["merchandising"],
    "admin": ["*"],
}


def scope_of(method: str) -> str:
    """The scope an RPC (full method name, "/pkg.Service/Method") needs; "*" if none is assigned."""
    if method in _METHOD_SCOPES:
        return _METHOD_SCOPES[method]
    service = method.strip("/").split("/")[0]
    return _SERVICE_SCOPES.get(service, "*")


@dataclass(frozen=True)
class ApiKey:
    name: str
    scopes: frozenset[str]

    @property
    def manages_identities(self) -> bool:
        """Whether Identify shows this key a customer's identifiers and lets it link any customer."""
        return bool(self.scopes & IDENTITY_SCOPES)


# The key of the call being served, set by the interceptor around the servicer: for the answers that
# depend on who asks (Identify). Left unset when the server checks no keys (SEENEXT_AUTH=0).
_CALLER: ContextVar[ApiKey | None] = ContextVar("seenext_api_key", default=None)


def current_key() -> ApiKey | None:
    """The API key of the call this thread serves; None when the server checks no keys."""
    return _CALLER.get()


def manages_identities() -> bool:
    """Whether the caller being served may see and link any customer's identifiers (IDENTITY_SCOPES).
    Without key checking (SEENEXT_AUTH=0, development) every caller may do everything, this included."""
    key = current_key()
    return key is None or key.manages_identities


class ApiKeys:
    """The keys of a keys file, indexed by a hash of the secret (compared in constant time)."""

    def __init__(self, entries: list[tuple[str, str, list[str]]], path: Path | None = None) -> None:
        self.path = path
        self._by_digest: dict[bytes, tuple[str, ApiKey]] = {}
        for name, secret, scopes in entries:
            self._by_digest[_digest(secret)] = (secret, ApiKey(name, frozenset(scopes)))

    def __len__(self) -> int:
        return len(self._by_digest)

    def find(self, secret: str) -> ApiKey | None:
        found = self._by_digest.get(_digest(secret))
        if found is None or not hmac.compare_digest(found[0].encode(), secret.encode()):
            return None
        return found[1]

    def caller(self, metadata: Any) -> ApiKey | None:
        """The key a call's metadata names, if it is one of ours."""
        header = next((v for k, v in metadata or () if k == "authorization"), None)
        scheme, _, secret = str(header or "").strip().partition(" ")
        return self.find(secret.strip()) if scheme.lower() == "bearer" and secret.strip() else None

    def check(self, method: str, metadata: Any) -> tuple[grpc.StatusCode, str] | None:
        """None if the call may go ahead, else the status and a message saying what to do."""
        return self.authorise(method, metadata)[1]

    def authorise(
        self, method: str, metadata: Any
    ) -> tuple[ApiKey | None, tuple[grpc.StatusCode, str] | None]:
        """(the key the metadata names if it is one of ours, the refusal or None): the key is looked up
        once per call (it was twice: once to check, once to serve as)."""
        header = next((v for k, v in metadata or () if k == "authorization"), None)
        scheme, _, secret = str(header or "").strip().partition(" ")
        secret = secret.strip()
        key = self.find(secret) if scheme.lower() == "bearer" and secret else None
        if method.strip("/").split("/")[0] in OPEN_SERVICES:
            return key, None
        if header is None:
            return None, (
                grpc.StatusCode.UNAUTHENTICATED,
                f"{method} needs an API key: send the metadata 'authorization: Bearer <key>'",
            )
        if scheme.lower() != "bearer" or not secret:
            return None, (grpc.StatusCode.UNAUTHENTICATED, "authorization: expected 'Bearer <key>'")
        if key is None:
            return None, (
                grpc.StatusCode.UNAUTHENTICATED,
                "authorization: this API key is not known to the server",
            )
        needed = scope_of(method)
        implied = {s for held in key.scopes for s in _IMPLIED.get(held, ())}
        if "*" in key.scopes or needed in key.scopes or needed in implied:
            return key, None
        return key, (
            grpc.StatusCode.PERMISSION_DENIED,
            f"the API key {key.name!r} lacks the scope {needed!r} that {method.strip('/')} needs "
            f"(it has: {', '.join(sorted(key.scopes)) or 'none'})",
        )


def load_keys(path: Path) -> ApiKeys:
    """Reads and checks a keys file; a mistake in it stops the start with the entry and field at fault."""
    doc = _read_json(path)
    if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
        raise ValueError(
            f'keys file {path}: expected {{"keys": [{{"name": ..., "key": ..., "scopes": [...]}}]}}'
        )
    entries: list[tuple[str, str, list[str]]] = []
    seen: set[str] = set()
    for n, entry in enumerate(doc["keys"]):
        where = f"keys file {path}: keys[{n}]"
        if not isinstance(entry, dict):
            raise ValueError(f"{where}: expected an object")
        name, secret, scopes = entry.get("name"), entry.get("key"), entry.get("scopes")
        if not isinstance(name, str) or not name:
            raise ValueError(f"{where}.name: a non-empty string is required")
        if not isinstance(secret, str) or len(secret) < 16:
            raise ValueError(
                f"{where}.key: a secret of at least 16 characters is required (e.g. openssl rand -hex 24)"
            )
        if secret in seen:
            raise ValueError(f"{where}.key: the same secret is given to two keys")
        if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes):
            raise ValueError(f"{where}.scopes: a list of scope names is required")
        unknown = [s for s in scopes if s != "*" and s not in SCOPES]
        if unknown:
            raise ValueError(f"{where}.scopes: unknown {unknown}; known: {', '.join(SCOPES)} or *")
        seen.add(secret)
        entries.append((name, secret, scopes))
    if not entries:
        raise ValueError(f"keys file {path} holds no keys: nobody could call the server")
    return ApiKeys(entries, path)


def _read_json(path: Path) -> Any:
    """The keys file's JSON; every way of not being one names the file."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"keys file {path} does not exist (SEENEXT_KEYS_FILE)") from None
    except UnicodeDecodeError as exc:  # a binary file: the bare decode error would not name it
        raise ValueError(
            f"keys file {path} is not text: byte 0x{exc.object[exc.start]:02x} at offset {exc.start} is not "
            'UTF-8; expected JSON {"keys": [...]} (SEENEXT_KEYS_FILE)'
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"keys file {path} is not JSON: {exc}") from None
    except OSError as exc:  # a folder, or a file this user may not read
        raise ValueError(f"keys file {path} cannot be read: {exc.strerror} (SEENEXT_KEYS_FILE)") from None


def write_dev_keys(path: Path) -> None:
    """A keys file with one fresh key per example caller, readable by its owner only."""
    keys = [
        {"name": name, "key": secrets.token_urlsafe(24), "scopes": scopes}
        for name, scopes in DEV_CALLERS.items()
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # written aside, linked whole into place
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"keys": keys}, fh, indent=2)
        fh.write("\n")
    try:
        os.link(tmp, path)  # FileExistsError if another process of this server made it first
    finally:
        tmp.unlink()


def from_settings(settings: Settings) -> ApiKeys | None:
    """The keys a server checks, or None in the open development mode (SEENEXT_AUTH=0)."""
    if not settings.auth:
        log.warning(
            "!!! AUTHENTICATION IS OFF (SEENEXT_AUTH=0): any caller may call every RPC, Forget included. "
            "Development only. !!!"
        )
        return None
    path = settings.keys_path
    if not path.exists() and not settings.keys_file:
        try:
            write_dev_keys(path)
            log.warning(
                "no SEENEXT_KEYS_FILE: wrote development keys to %s (one per example caller); "
                "give real deployments their own keys file",
                path,
            )
        except FileExistsError:
            pass  # another process of this server wrote it first
    keys = load_keys(path)
    log.info("API keys: %d loaded from %s", len(keys), path)
    return keys


def banner(keys: ApiKeys | None, settings: Settings) -> tuple[str, str]:
    """The grpcurl header to show in the start-up banner, and what to tell a developer about keys.

    The generated development keys are printed (they are in a 0600 file of the data folder anyway);
    keys of a configured file never are.
    """
    if keys is None:
        return "", (
            "\n  !!! AUTHENTICATION IS OFF (SEENEXT_AUTH=0): development mode, every caller may "
            "call every RPC. !!!\n"
        )
    if settings.keys_file or keys.path is None:
        return "-H 'authorization: Bearer <key>' ", f"\nAPI keys: {len(keys)} from {keys.path}\n"
    entries = [(k["name"], k["key"], k["scopes"]) for k in json.loads(keys.path.read_text())["keys"]]
    admin = next((key for name, key, scopes in entries if "*" in scopes), entries[0][1])
    web = next((key for name, key, scopes in entries if name == "web-shop"), admin)
    width = max(len(name) for name, _, _ in entries)
    lines = [f"  {name:<{width}}  {key}  {' '.join(scopes)}" for name, key, scopes in entries]
    text = (
        f"\nDevelopment API keys (from {keys.path};"
        " set SEENEXT_KEYS_FILE for your own, SEENEXT_AUTH=0 for none):\n"
        + "\n".join(lines)
        + "\nThe Python clients send SEENEXT_API_KEY: the key of the caller you play"
        + " (web-shop for clients.web, email for clients.email, pos for clients.pos,"
        + " callcentre for clients.customer), e.g."
        + f"\n  export SEENEXT_API_KEY={web}\n"
    )
    return f"-H 'authorization: Bearer {admin}' ", text


_MAX_SERVING = 10_000  # (method, key) wrappings kept: a few dozen methods x a few keys per keys file


class AuthInterceptor(Interceptor):
    """Refuses a call before its servicer runs unless its key holds the RPC's scope."""

    def __init__(self, keys: ApiKeys) -> None:
        self.keys = keys
        # (method, key) -> (the handler wrapped, it wrapped to serve as the key): the same for every call
        # of a method with a key, so built once (methods and keys are few; refusals are not kept)
        self._serving: dict[tuple[str, ApiKey | None], tuple[Handler, Handler]] = {}

    def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = continuation(details)
        if handler is None:
            return None
        key, refused = self.keys.authorise(details.method, details.invocation_metadata)
        if refused is not None:
            return _refusing(handler, *refused)
        cached = self._serving.get((details.method, key))
        if cached is not None and cached[0] is handler:
            return cached[1]
        serving = _serving_as(handler, key)
        if len(self._serving) < _MAX_SERVING:  # a keys file reloaded anew brings new key objects
            self._serving[(details.method, key)] = (handler, serving)
        return serving


def _serving_as(handler: Handler, key: ApiKey | None) -> Handler:
    """The handler with `current_key()` answering `key` while its servicer runs (and, for a streamed
    reply, while the reply is produced: gRPC iterates it on the same thread)."""

    def unary(inner: Any) -> Any:
        def run(request: Any, context: grpc.ServicerContext) -> Any:
            token = _CALLER.set(key)
            try:
                return inner(request, context)
            finally:
                _CALLER.reset(token)

        return run

    def streamed(inner: Any) -> Any:
        def run(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            token = _CALLER.set(key)
            try:
                yield from inner(request, context)
            finally:
                _CALLER.reset(token)

        return run

    args = (handler.request_deserializer, handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(unary(handler.unary_unary), *args)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(streamed(handler.unary_stream), *args)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(unary(handler.stream_unary), *args)
    return grpc.stream_stream_rpc_method_handler(streamed(handler.stream_stream), *args)


def _refusing(handler: Handler, code: grpc.StatusCode, message: str) -> Handler:
    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(code, message)

    args = (handler.request_deserializer, handler.response_serializer)
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(refuse, *args)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(refuse, *args)
    if handler.stream_unary:
        return grpc.stream_unary_rpc_method_handler(refuse, *args)
    return grpc.stream_stream_rpc_method_handler(refuse, *args)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
