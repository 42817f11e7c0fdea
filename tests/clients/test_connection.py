"""The caller's key travels one way: as the channel's call credentials, once per call, on every call kind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from clients.connection import open_channel, run_command
from clients.web import WebClient
from clients.web import main as web_main
from models.settings import SettingsError


class Recorder(grpc.ServerInterceptor):  # type: ignore[type-arg]
    """Keeps the `authorization` entries of every call's metadata."""

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    def intercept_service(self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails) -> Any:
        self.seen.append([v for k, v in details.invocation_metadata if k == "authorization"])
        return continuation(details)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Recorder]]:
    recorder = Recorder()
    srv = grpc.server(futures.ThreadPoolExecutor(max_workers=2), interceptors=[recorder])
    health_pb2_grpc.add_HealthServicer_to_server(health.HealthServicer(), srv)
    port = srv.add_insecure_port("127.0.0.1:0")
    srv.start()
    yield f"127.0.0.1:{port}", recorder
    srv.stop(grace=None)


def test_the_key_goes_once_with_unary_and_streaming_calls(server: tuple[str, Recorder]) -> None:
    target, recorder = server
    with open_channel(target, api_key="secret-key-1") as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        stub.Check(health_pb2.HealthCheckRequest(), timeout=5)
        watch = stub.Watch(health_pb2.HealthCheckRequest(), timeout=5)
        next(watch)
        watch.cancel()
    assert recorder.seen[-2:] == [["Bearer secret-key-1"], ["Bearer secret-key-1"]]


def test_the_clients_add_no_key_of_their_own(
    server: tuple[str, Recorder], monkeypatch: pytest.MonkeyPatch
) -> None:
    target, recorder = server
    monkeypatch.setenv("SEENEXT_API_KEY", "secret-from-env")
    with open_channel(target) as ch, pytest.raises(grpc.RpcError) as err:
        WebClient(ch).home(customer_id="alice")  # this server has no RecommendationService
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert recorder.seen[-1] == ["Bearer secret-from-env"]
    with open_channel(target, api_key="") as ch:  # an explicit empty key: none sent
        health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert recorder.seen[-1] == []


def test_a_key_is_never_sent_over_plaintext_to_another_machine() -> None:
    with pytest.raises(ValueError, match="over TLS only"):
        open_channel("192.0.2.1:50051", api_key="secret-key-1")  # TEST-NET-1: not this machine
    open_channel("192.0.2.1:50051", api_key="").close()  # without a key plaintext goes anywhere


def test_a_misspelt_client_variable_stops_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SEENEXT_" + "API_KY", "secret-key-1")  # split: tests/test_settings.py greps for names
    with pytest.raises(SettingsError, match="did you mean SEENEXT_API_KEY"):
        open_channel()
    with pytest.raises(SystemExit, match=r"_API_KY \(did you mean SEENEXT_API_KEY\?\)"):
        run_command(lambda: web_main(["--customer", "alice"]))
