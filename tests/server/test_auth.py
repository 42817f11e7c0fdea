"""API keys and scopes: every RPC x (no key, a key without its scope, a key with it); health stays open;
what each example caller may learn and link through Identify."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc

from clients.connection import customer, open_channel
from clients.customer import CustomerClient
from models.domain import Identifier
from models.settings import Settings
from protos.seenext.v1 import (
    common_pb2,
    identity_pb2,
    identity_pb2_grpc,
    profile_pb2,
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from server import auth
from server.app import SERVICE_NAMES, Running, create_server
from tests.conftest import tiny_settings

REFUSED = {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED}


def key_of(scope: str) -> str:
    return f"secret-for-{scope}-0123456789"


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.json"
    keys = [{"name": f"only-{s}", "key": key_of(s), "scopes": [s]} for s in auth.SCOPES]
    keys.append({"name": "admin", "key": key_of("*"), "scopes": ["*"]})
    path.write_text(json.dumps({"keys": keys}))
    return path


@pytest.fixture
def secured(tmp_path: Path, keys_file: Path) -> Iterator[Running]:
    running = create_server(tiny_settings(tmp_path / "data", auth=True, keys_file=str(keys_file)))
    yield running
    running.stop(grace=1.0)


@pytest.fixture
def plain(secured: Running) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{secured.port}") as ch:
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch


def every_rpc() -> list[tuple[str, Any, bool]]:
    """(full method, request class, server-streaming) of every RPC of every seenext service."""
    from server import app

    out = []
    for module in (
        app.events_pb2,
        app.catalog_pb2,
        app.identity_pb2,
        app.recommendation_pb2,
        app.profile_pb2,
        app.privacy_pb2,
        app.insights_pb2,
        app.model_pb2,
        app.merchandising_pb2,
    ):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                request = message_factory.GetMessageClass(method.input_type)
                out.append((f"/{service.full_name}/{method.name}", request, method.server_streaming))
    return out


RPCS = every_rpc()


def call(
    channel: grpc.Channel, method: str, request: Any, streaming: bool, key: str | None
) -> grpc.StatusCode:
    metadata = [("authorization", f"Bearer {key}")] if key is not None else None
    kind: Callable = channel.unary_stream if streaming else channel.unary_unary
    stub = kind(method, request_serializer=request.SerializeToString, response_deserializer=lambda b: b)
    try:
        reply = stub(request(), metadata=metadata, timeout=10)
        if streaming:
            list(reply)
    except grpc.RpcError as err:
        return err.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def test_the_matrix_covers_every_rpc_of_every_service() -> None:
    assert {m.split("/")[1] for m, _, _ in RPCS} == set(SERVICE_NAMES) and len(RPCS) >= 19
    assert all(auth.scope_of(m) in auth.SCOPES for m, _, _ in RPCS)  # every RPC has a named scope


@pytest.mark.parametrize(
    "method, request_class, streaming", RPCS, ids=[m.split("/", 1)[1] for m, _, _ in RPCS]
)
def test_every_rpc_without_key_wrong_scope_right_scope(
    plain: grpc.Channel,
    method: str,
    request_class: Any,
    streaming: bool,
) -> None:
    needed = auth.scope_of(method)
    wrong = "status" if needed != "status" else "track"
    assert call(plain, method, request_class, streaming, None) == grpc.StatusCode.UNAUTHENTICATED
    assert call(plain, method, request_class, streaming, key_of(wrong)) == grpc.StatusCode.PERMISSION_DENIED
    assert call(plain, method, request_class, streaming, key_of(needed)) not in REFUSED
    assert call(plain, method, request_class, streaming, key_of("*")) not in REFUSED


def test_refusals_say_what_to_do(plain: grpc.Channel) -> None:
    stub = recommendation_pb2_grpc.RecommendationServiceStub(plain)
    request = recommendation_pb2.RecommendRequest(channel=1)
    cases = [
        (None, grpc.StatusCode.UNAUTHENTICATED, "send the metadata 'authorization: Bearer <key>'"),
        ([("authorization", "Bearer not-a-key-of-ours")], grpc.StatusCode.UNAUTHENTICATED, "not known"),
        (
            [("authorization", f"Basic {key_of('recommend')}")],
            grpc.StatusCode.UNAUTHENTICATED,
            "expected 'Bearer <key>'",
        ),
        (
            [("authorization", f"Bearer {key_of('profile')}")],
            grpc.StatusCode.PERMISSION_DENIED,
            "'only-profile' lacks the scope 'recommend' that "
            "seenext.v1.RecommendationService/Recommend needs",
        ),
    ]
    for metadata, code, text in cases:
        with pytest.raises(grpc.RpcError) as err:
            stub.Recommend(request, metadata=metadata, timeout=5)
        assert err.value.code() == code and text in err.value.details()
    ok = stub.Recommend(request, metadata=[("authorization", f"bearer {key_of('recommend')}")], timeout=5)
    assert ok.strategy == "popular"


def test_health_and_reflection_stay_open(plain: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(plain).Check(health_pb2.HealthCheckRequest(service=""))
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    reply = next(
        reflection_pb2_grpc.ServerReflectionStub(plain).ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
    )
    assert "seenext.v1.PrivacyService" in {s.name for s in reply.list_services_response.service}


def test_python_clients_send_their_key(secured: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    target = f"127.0.0.1:{secured.port}"
    with open_channel(target, api_key=key_of("profile")) as ch:
        with pytest.raises(grpc.RpcError) as err:
            CustomerClient(ch).profile(customer("nobody"))
        assert err.value.code() == grpc.StatusCode.NOT_FOUND  # past the key check
    with open_channel(target, api_key=key_of("track")) as ch:
        with pytest.raises(grpc.RpcError) as err:
            CustomerClient(ch).profile(customer("nobody"))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as err:  # a streaming RPC carries the key too
            list(CustomerClient(ch).export(customer("nobody")))
        assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED and "'export'" in err.value.details()
    monkeypatch.setenv("SEENEXT_API_KEY", key_of("identify"))
    with open_channel(target) as ch:  # the clients' own way: SEENEXT_API_KEY, as the channel's credentials
        assert CustomerClient(ch).identify([customer("c9")]).customer_id == "c9"


def test_first_start_writes_private_development_keys(tmp_path: Path) -> None:
    settings = tiny_settings(tmp_path, auth=True)
    running = create_server(settings)
    try:
        path = tmp_path / "keys.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        keys = {k["name"]: k for k in json.loads(path.read_text())["keys"]}
        assert set(keys) == set(auth.DEV_CALLERS) and keys["admin"]["scopes"] == ["*"]
        header, text = auth.banner(running.keys, settings)
        assert keys["admin"]["key"] in header and keys["web-shop"]["key"] in text
        with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:
            stub = recommendation_pb2_grpc.RecommendationServiceStub(ch)
            web = [("authorization", f"Bearer {keys['web-shop']['key']}")]
            assert stub.Recommend(
                recommendation_pb2.RecommendRequest(channel=1), metadata=web, timeout=5
            ).strategy
    finally:
        running.stop(grace=1.0)
    again = create_server(settings)  # the second start reuses the file
    try:
        assert json.loads(path.read_text())["keys"][0]["key"] == keys["web-shop"]["key"]
    finally:
        again.stop(grace=1.0)


def test_development_mode_without_keys_is_explicit(tmp_path: Path) -> None:
    settings = tiny_settings(tmp_path, auth=False)
    assert auth.from_settings(settings) is None and not (tmp_path / "keys.json").exists()
    assert "AUTHENTICATION IS OFF" in auth.banner(None, settings)[1]
    assert Settings.from_env({"SEENEXT_AUTH": "0"}).auth is False and Settings().auth is True


@pytest.mark.parametrize(
    "content, problem",
    [
        ("not json", "is not JSON"),
        ('{"keys": []}', "holds no keys"),
        ('{"keys": [{"name": "x", "key": "short", "scopes": ["track"]}]}', "keys[0].key"),
        ('{"keys": [{"name": "x", "key": "long-enough-secret-1", "scopes": ["trak"]}]}', "unknown ['trak']"),
        (
            (
                '{"keys": [{"name": "a", "key": "long-enough-secret-1", "scopes": []},'
                ' {"name": "b", "key": "long-enough-secret-1", "scopes": []}]}'
            ),
            "keys[1].key: the same secret",
        ),
    ],
)
def test_a_bad_keys_file_stops_the_start_naming_the_problem(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(ValueError, match="keys file") as err:
        create_server(tiny_settings(tmp_path, auth=True, keys_file=str(path)))
    assert problem in str(err.value)
    with pytest.raises(ValueError, match="does not exist"):
        create_server(tiny_settings(tmp_path, auth=True, keys_file=str(tmp_path / "missing.json")))


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_tls_is_one_setting_away(tmp_path: Path, keys_file: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    running = create_server(
        tiny_settings(
            tmp_path / "data",
            auth=True,
            keys_file=str(keys_file),
            tls_cert_file=str(cert),
            tls_key_file=str(key),
        )
    )
    try:
        with open_channel(
            f"localhost:{running.port}", api_key=key_of("profile"), tls_ca_file=str(cert)
        ) as ch:
            with pytest.raises(grpc.RpcError) as err:
                CustomerClient(ch).profile(customer("nobody"))
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        with grpc.insecure_channel(f"localhost:{running.port}") as ch:  # plaintext is not served
            with pytest.raises(grpc.RpcError) as err:
                profile_stub = profile_pb2.DESCRIPTOR.services_by_name["ProfileService"]
                ch.unary_unary(f"/{profile_stub.full_name}/GetProfile")(b"", timeout=3)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        running.stop(grace=1.0)
    with pytest.raises(ValueError, match="needs both"):
        create_server(tiny_settings(tmp_path / "d2", tls_cert_file=str(cert)))


# -- what each caller may learn and link through Identify (issue 10 point 5) ---------------------------

VICTIM_MAIL = "Vera.Victim@Example.org"


def dev_key(name: str) -> str:
    return f"dev-secret-of-{name}-0123456789"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """The example callers' keys (auth.DEV_CALLERS) in front of the tiny world, trained; the victim is
    the tiny world's customer u2 with an e-mail, a phone, a loyalty card, a payment token and a device."""
    from tests.conftest import tiny_events, tiny_items

    folder = tmp_path_factory.mktemp("world")
    keys = [{"name": n, "key": dev_key(n), "scopes": s} for n, s in auth.DEV_CALLERS.items()]
    (folder / "keys.json").write_text(json.dumps({"keys": keys}))
    running = create_server(tiny_settings(folder / "data", auth=True, keys_file=str(folder / "keys.json")))
    svc = running.service
    svc.upsert_items(tiny_items())
    assert not svc.track_batch(tiny_events()).rejected
    svc.identify(
        [
            Identifier("CUSTOMER_ID", "u2"),
            Identifier("EMAIL", VICTIM_MAIL),
            Identifier("PHONE", "+44 7700 900555"),
            Identifier("LOYALTY_CARD", "6335 1111"),
            Identifier("POS_CARD_TOKEN", "tok_vera"),
            Identifier("DEVICE_ID", "vera-phone"),
        ]
    )
    svc.train()
    yield running
    running.stop(grace=1.0)


def as_key(name: str) -> list[tuple[str, str]]:
    return [("authorization", f"Bearer {dev_key(name)}")]


def identify(
    world: Running, name: str, *who: common_pb2.Identifier
) -> identity_pb2.IdentifyResponse | grpc.StatusCode:
    with grpc.insecure_channel(f"127.0.0.1:{world.port}") as ch:
        stub = identity_pb2_grpc.IdentityServiceStub(ch)
        try:
            return stub.Identify(
                identity_pb2.IdentifyRequest(identifiers=list(who)), metadata=as_key(name), timeout=10
            )
        except grpc.RpcError as err:
            return err.code()  # type: ignore[no-any-return]


def recommend_as_admin(world: Running, who: common_pb2.Identifier) -> recommendation_pb2.RecommendResponse:
    with grpc.insecure_channel(f"127.0.0.1:{world.port}") as ch:
        stub = recommendation_pb2_grpc.RecommendationServiceStub(ch)
        request = recommendation_pb2.RecommendRequest(who=who, channel=common_pb2.CHANNEL_WEB, k=3)
        return stub.Recommend(request, metadata=as_key("admin"), timeout=10)


def test_the_victim_is_recommended_for_personally(world: Running) -> None:
    """The premise of the attacks: her identifiers get her personal ranking."""
    rec = recommend_as_admin(
        world, common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_EMAIL, value=VICTIM_MAIL)
    )
    assert rec.customer_id == "u2" and "personalised" in rec.strategy.split("+")


@pytest.mark.parametrize("name", list(auth.DEV_CALLERS))
def test_each_key_against_reading_a_stranger_by_email(world: Running, name: str) -> None:
    """Attack 1: Identify{EMAIL <someone's address>} answered that customer's card, token and devices to
    any key. Now a channel's key learns the customer id at most; the call centre and the operator (keys
    that read identifiers through GetProfile or Export anyway) see them, the e-mail asked with masked."""
    mail = common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_EMAIL, value=VICTIM_MAIL)
    reply = identify(world, name, mail)
    scopes = set(auth.DEV_CALLERS[name])
    if not scopes & {"identify", "*"}:
        assert reply == grpc.StatusCode.PERMISSION_DENIED
        return
    assert isinstance(reply, identity_pb2.IdentifyResponse) and reply.customer_id == "u2"
    shown = {(common_pb2.IdentifierKind.Name(i.kind), i.value) for i in reply.identifiers}
    if scopes & {"profile", "export", "*"}:
        assert shown == {
            ("IDENTIFIER_KIND_CUSTOMER_ID", "u2"),
            ("IDENTIFIER_KIND_EMAIL", "v***@example.org"),
            ("IDENTIFIER_KIND_PHONE", ""),  # not asked with: its kind alone
            ("IDENTIFIER_KIND_LOYALTY_CARD", "63351111"),
            ("IDENTIFIER_KIND_POS_CARD_TOKEN", "tok_vera"),
            ("IDENTIFIER_KIND_DEVICE_ID", "vera-phone"),
        }
    else:
        assert shown == set(), name  # web-shop, pos: the id, nothing more


@pytest.mark.parametrize("name", list(auth.DEV_CALLERS))
def test_each_key_against_linking_its_device_to_a_stranger(world: Running, name: str) -> None:
    """Attack 2: Identify{<someone's e-mail>, DEVICE <attacker's>} made Recommend{DEVICE <attacker's>}
    personalised as the victim. A channel's key is refused (FAILED_PRECONDITION, nothing linked) unless
    the call carries the customer's CUSTOMER_ID (a login); the call centre and the operator still link."""
    mail = common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_EMAIL, value=VICTIM_MAIL)
    device = common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_DEVICE_ID, value=f"attacker-of-{name}")
    reply = identify(world, name, mail, device)
    rec = recommend_as_admin(world, device)
    scopes = set(auth.DEV_CALLERS[name])
    if not scopes & {"identify", "*"}:
        assert reply == grpc.StatusCode.PERMISSION_DENIED
    elif scopes & {"profile", "export", "*"}:
        assert isinstance(reply, identity_pb2.IdentifyResponse) and reply.customer_id == "u2"
        assert rec.recognised and rec.customer_id == "u2"  # kept: the agent vouches for the caller
        return
    else:
        assert reply == grpc.StatusCode.FAILED_PRECONDITION, name
    assert not rec.recognised and rec.customer_id == "" and "personalised" not in rec.strategy.split("+")
    if scopes & {"identify"}:  # with the customer's login on the call, the same channel links the device
        login = common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value="u2")
        own = common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_DEVICE_ID, value=f"u2-laptop-via-{name}")
        linked = identify(world, name, login, own)
        assert isinstance(linked, identity_pb2.IdentifyResponse) and linked.customer_id == "u2"
        assert list(linked.identifiers) == []
        assert recommend_as_admin(world, own).customer_id == "u2"


def test_the_email_key_runs_every_command_of_the_email_client(world: Running) -> None:
    """Issue 9 point 10: the development `email` key lacked the scope `clients.email reminders` needs
    (PERMISSION_DENIED with the documented key); a key holding "insights" keeps DueReminders."""
    import datetime as dt

    from clients.email import EmailClient

    start = dt.datetime.now(dt.UTC)
    for name in ("email", "marketing"):
        with open_channel(f"127.0.0.1:{world.port}", api_key=dev_key(name)) as ch:
            list(EmailClient(ch).reminders(start, start + dt.timedelta(days=7)))  # raises when refused
    with open_channel(f"127.0.0.1:{world.port}", api_key=dev_key("email")) as ch:
        assert list(EmailClient(ch).offers(["u2"], k=2))


class _Details(grpc.HandlerCallDetails):
    def __init__(self, method: str, metadata: tuple[tuple[str, str], ...]) -> None:
        self.method = method
        self.invocation_metadata = metadata


def test_each_call_is_served_as_its_own_key_though_the_wrapping_is_built_once() -> None:
    keys = auth.ApiKeys([("a", key_of("a"), ["*"]), ("b", key_of("b"), ["recommend"])])
    interceptor = auth.AuthInterceptor(keys)
    inner = grpc.unary_unary_rpc_method_handler(lambda request, context: auth.current_key())
    method = "/seenext.v1.RecommendationService/Recommend"

    def served_as(metadata: tuple[tuple[str, str], ...]) -> Any:
        handler = interceptor.intercept_service(lambda details: inner, _Details(method, metadata))
        assert handler is not None
        return handler

    first = served_as((("authorization", f"Bearer {key_of('a')}"),))
    assert served_as((("authorization", f"Bearer {key_of('a')}"),)) is first  # built once per method and key
    names = [
        served_as((("authorization", f"Bearer {key_of(n)}"),)).unary_unary(None, None).name for n in "aba"
    ]
    assert names == ["a", "b", "a"]
    refused = served_as((("authorization", "Bearer not-a-key-of-ours-0000"),))
    assert refused is not first
