"""What a caller or an operator gets wrong, answered with a status and a message that say what
happened (issue 10, points 8 and 9): undecodable request bodies, a full or failing disk, a busy
port, a swapped TLS pair, a binary keys file, and a Train while a Forget erases.
"""

from __future__ import annotations

import os
import random
import resource
import shutil
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from bench.serving import free_port  # below the ephemeral range: no server on port 0 takes it
from models.errors import AlreadyRunning
from models.privacy.rights import Privacy
from models.service import Seenext
from models.settings import Settings
from models.storage.sqlite.connection import Connections
from protos.seenext.v1 import (
    catalog_pb2,
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    identity_pb2,
    insights_pb2,
    model_pb2,
    model_pb2_grpc,
    privacy_pb2,
    privacy_pb2_grpc,
    profile_pb2,
    recommendation_pb2,
)
from server import errors
from server.app import Running, create_server
from tests.conftest import stored_rows, tiny_settings

ROOT = Path(__file__).resolve().parents[2]

SERVICES: list[ServiceDescriptor] = [
    *(
        m.DESCRIPTOR.services_by_name[name]
        for m, name in (
            (events_pb2, "EventService"),
            (catalog_pb2, "CatalogService"),
            (identity_pb2, "IdentityService"),
            (recommendation_pb2, "RecommendationService"),
            (profile_pb2, "ProfileService"),
            (privacy_pb2, "PrivacyService"),
            (insights_pb2, "InsightsService"),
            (model_pb2, "ModelService"),
        )
    ),
    health_pb2.DESCRIPTOR.services_by_name["Health"],
    reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"],
]


def undecodable(method: MethodDescriptor, rng: random.Random, n: int) -> list[bytes]:
    """`n` random bodies that do not decode as the method's request (a fixed seed: the same every run)."""
    cls = message_factory.GetMessageClass(method.input_type)
    found: list[bytes] = []
    while len(found) < n:
        body = rng.randbytes(rng.randint(1, 64))
        try:
            cls.FromString(body)
        except DecodeError:
            found.append(body)
    return found


def call_raw(channel: grpc.Channel, method: MethodDescriptor, body: bytes) -> grpc.RpcError:
    """Sends `body` as it is (no serializer) with the method's call type; the error it ends with."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    try:
        if method.client_streaming and method.server_streaming:
            list(channel.stream_stream(path)(iter([body]), timeout=10))
        elif method.client_streaming:
            channel.stream_unary(path)(iter([body]), timeout=10)
        elif method.server_streaming:
            list(channel.unary_stream(path)(body, timeout=10))
        else:
            channel.unary_unary(path)(body, timeout=10)
    except grpc.RpcError as err:
        return err
    raise AssertionError(f"{path} answered {body!r} without an error")


class Upload:
    """A stream-request service the contract does not have yet, so all four call types are checked."""

    full_name = "test.Upload"

    @staticmethod
    def handler() -> grpc.GenericRpcHandler:
        def count(requests: Iterator[Any], context: grpc.ServicerContext) -> bytes:
            return str(sum(1 for _ in requests)).encode()

        def echo(requests: Iterator[Any], context: grpc.ServicerContext) -> Iterator[bytes]:
            for request in requests:
                yield request.SerializeToString()

        args = {
            "request_deserializer": health_pb2.HealthCheckRequest.FromString,
            "response_serializer": lambda b: b,
        }
        return grpc.method_handlers_generic_handler(
            "test.Upload",
            {
                "Count": grpc.stream_unary_rpc_method_handler(count, **args),
                "Echo": grpc.stream_stream_rpc_method_handler(echo, **args),
            },
        )


def test_undecodable_bodies_are_invalid_argument_on_every_method_and_log_one_line(
    server: Running, channel: grpc.Channel, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 10 point 8: garbage bytes gave INTERNAL and one ERROR traceback each."""
    monkeypatch.setattr(errors, "undecodable_log", errors.BurstLog(every=3600.0))  # one burst, however slow
    server.server.add_generic_rpc_handlers([Upload.handler()])
    rng = random.Random(10)
    methods = [m for service in SERVICES for m in service.methods]
    calls = 0
    caplog.set_level("INFO")
    for method in methods:
        for body in undecodable(method, rng, 3):
            err = call_raw(channel, method, body)
            assert (err.code(), err.details()) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request body: not a valid {method.input_type.full_name}",
            ), (method.full_name, body)
            calls += 1
    bad = b"\xff"  # a truncated tag: decodes as nothing
    for name, streaming in (("Count", False), ("Echo", True)):  # no RPC of the contract streams requests
        path = f"/test.Upload/{name}"
        with pytest.raises(grpc.RpcError) as raised:  # a good message first, then garbage
            good = health_pb2.HealthCheckRequest(service="x").SerializeToString()
            if streaming:
                list(channel.stream_stream(path)(iter([good, bad]), timeout=10))
            else:
                channel.stream_unary(path)(iter([good, bad]), timeout=10)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert raised.value.details() == "request body: not a valid grpc.health.v1.HealthCheckRequest"
        calls += 1
    assert len(methods) >= 20 and calls == 3 * len(methods) + 2
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "server.errors"]
    assert len(warnings) == 1 and "1 undecodable request body" in warnings[0].getMessage()
    assert not [r for r in caplog.records if r.levelno >= 40], "an undecodable body is not a server error"
    # The burst is counted into the next line once the interval has passed.
    errors.undecodable_log.every = 0.0
    call_raw(channel, methods[0], bad)
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and r.name == "server.errors"]
    assert f"{calls} undecodable request bodies" in warnings[-1].getMessage()


def test_the_burst_log_writes_one_line_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    burst = errors.BurstLog(every=10.0, clock=lambda: now[0])
    with caplog.at_level("WARNING", logger="server.errors"):
        for t in (0.0, 1.0, 2.0, 9.9, 10.0, 11.0, 25.0):
            now[0] = t
            burst.note("/m", "request body: not a valid X")
    assert [r.getMessage().split(" since")[0] for r in caplog.records] == [
        "1 undecodable request body",
        "4 undecodable request bodies",
        "2 undecodable request bodies",
    ]


# -- a full or failing disk ----------------------------------------------------------------------


def _event(n: int, note: str = "") -> events_pb2.Event:
    """A small event; `note` fills pages faster."""
    return events_pb2.Event(
        event_id=f"ev-{n}",
        channel=common_pb2.CHANNEL_WEB,
        type=common_pb2.EVENT_TYPE_PURCHASE if n % 3 == 0 else common_pb2.EVENT_TYPE_VIEW,
        item_id=f"item-{n % 11}",
        identifiers=[common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=f"c{n % 17}")],
        attributes={"note": note} if note else {},
    )


def test_a_full_database_answers_resource_exhausted_and_loses_nothing_acknowledged(
    server: Running, channel: grpc.Channel, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 10 point 8: TrackBatch on a full disk gave INTERNAL ("cannot rollback - no transaction is
    active"). The database may not grow (SQLite's page limit: a full disk without a small filesystem)."""
    stub = events_pb2_grpc.EventServiceStub(channel)
    assert stub.TrackBatch(events_pb2.TrackBatchRequest(events=[_event(n) for n in range(20)])).accepted == 20
    acknowledged = 20
    monkeypatch.setattr(Connections, "page_limit", 1)  # no page more than the file has now
    refused: grpc.RpcError | None = None
    for batch in range(1, 200):
        events = [_event(batch * 100 + n, "x" * 200) for n in range(50)]
        try:
            acknowledged += stub.TrackBatch(events_pb2.TrackBatchRequest(events=events)).accepted
        except grpc.RpcError as err:
            refused = err
            break
    assert refused is not None, "the database never filled up"
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "storage full" in (refused.details() or "") and "SQLITE_FULL" in (refused.details() or "")
    assert not [r for r in caplog.records if "cannot rollback" in r.getMessage()]
    assert server.service.count_events() == acknowledged  # the refused batch left nothing behind
    monkeypatch.setattr(Connections, "page_limit", None)  # space freed: the same batch goes in
    assert stub.TrackBatch(events_pb2.TrackBatchRequest(events=events)).accepted == 50
    assert server.service.count_events() == acknowledged + 50


def _start(data_dir: Path, *args: str, **env: str) -> tuple[subprocess.Popen[str], int, list[str]]:
    """`seenext serve` in its own process; its output is drained into a list (a full pipe would block it)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "serve", *args],
        cwd=ROOT,
        env=dict(
            os.environ,
            SEENEXT_DATA_DIR=str(data_dir),
            SEENEXT_PORT=env.pop("SEENEXT_PORT", "0"),
            SEENEXT_DEMO="0",
            SEENEXT_AUTH="0",
            SEENEXT_EPOCHS="5",
            SEENEXT_COMPONENTS="8",
            SEENEXT_TRAIN_THREADS="1",
            SEENEXT_EVAL_HOLDOUT_DAYS="0",
            **env,
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    lines: list[str] = []
    port: list[int] = []
    ready = threading.Event()

    def drain() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line)
            if "seenext is serving on" in line and not port:
                port.append(int(line.rsplit(":", 1)[1]))
                ready.set()
        ready.set()

    threading.Thread(target=drain, daemon=True).start()
    if not ready.wait(90) or not port:
        proc.kill()
        raise RuntimeError("server did not start:\n" + "".join(lines))
    return proc, port[0], lines


def _modes(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): oct(stat.S_IMODE(p.stat().st_mode))
        for p in [folder, *folder.rglob("*")]
        if not p.is_symlink()
    }


def test_a_failing_disk_answers_a_status_removes_the_half_written_model_and_keeps_the_events(
    tmp_path: Path,
) -> None:
    """Issue 10 points 8 and 9, against `seenext serve` as an operator runs it: every file of the data
    folder is private; then the server may write no byte more (RLIMIT_FSIZE 0 set on the running
    process: every file write fails, as on a dead or full disk). TrackBatch and Forget answer
    UNAVAILABLE (SQLite's I/O error), Train RESOURCE_EXHAUSTED ("File too large") and leaves no
    half-written version; once the disk writes again, the refused batch goes in and nothing
    acknowledged is missing."""
    data = tmp_path / "data"
    proc, port, lines = _start(data)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            events = events_pb2_grpc.EventServiceStub(ch)
            models = model_pb2_grpc.ModelServiceStub(ch)
            privacy = privacy_pb2_grpc.PrivacyServiceStub(ch)
            first = [_event(n) for n in range(200)]
            assert events.TrackBatch(events_pb2.TrackBatchRequest(events=first)).accepted == 200
            trained = models.Train(model_pb2.TrainRequest()).model_version
            modes = _modes(data)
            assert {"seenext.db", "seenext.db-wal", "models", f"models/{trained}/model.npz"} <= set(modes)
            assert {name for name, mode in modes.items() if mode not in ("0o600", "0o700")} == set(), modes

            limit = resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
            try:
                second = [_event(n) for n in range(200, 260)]
                with pytest.raises(grpc.RpcError) as err:
                    events.TrackBatch(events_pb2.TrackBatchRequest(events=second))
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE, err.value.details()
                assert "storage unavailable" in (err.value.details() or "")
                with pytest.raises(grpc.RpcError) as err:
                    models.Train(model_pb2.TrainRequest())
                assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, err.value.details()
                assert "writing model" in (err.value.details() or ""), "".join(lines)
                assert sorted(p.name for p in (data / "models").iterdir() if p.is_dir()) == [trained]
                with pytest.raises(grpc.RpcError) as err:
                    who = common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value="c3")
                    privacy.Forget(privacy_pb2.ForgetRequest(who=who))
                assert err.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)
            finally:
                resource.prlimit(proc.pid, resource.RLIMIT_FSIZE, limit)
            assert events.TrackBatch(events_pb2.TrackBatchRequest(events=second)).accepted == 60
            assert models.Train(model_pb2.TrainRequest()).model_version != trained
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    log = "".join(lines)
    assert "cannot rollback" not in log and "incident" not in log, log
    stored = {r[0] for r in stored_rows(tiny_settings(data), "SELECT event_id FROM events")}
    assert {e.event_id for e in first + second} <= stored


# -- the port ------------------------------------------------------------------------------------


def test_a_second_server_cannot_take_a_busy_port(server: Running, tmp_path: Path) -> None:
    """Issue 10 point 9: SO_REUSEPORT was on for every server, so a second one bound the port of the
    first and took a share of its connections."""
    with pytest.raises(OSError, match=f"port {server.port} is already in use"):
        create_server(tiny_settings(tmp_path / "second", port=server.port))
    # The processes of one `serve --processes N` (children) do share their port.
    port = free_port()
    children = [create_server(tiny_settings(tmp_path / "shared", port=port, child=True)) for _ in range(2)]
    try:
        assert [c.port for c in children] == [port, port]
        with pytest.raises(OSError, match="already in use"):
            create_server(tiny_settings(tmp_path / "third", port=port))
    finally:
        for c in children:
            c.stop(grace=0.5)


def test_seenext_serve_on_a_busy_port_stops_with_a_clear_message(server: Running, tmp_path: Path) -> None:
    env = dict(os.environ, SEENEXT_DATA_DIR=str(tmp_path / "d"), SEENEXT_AUTH="0", SEENEXT_DEMO="0")
    for extra in ([], ["--processes", "2"]):
        done = subprocess.run(
            [sys.executable, "-m", "server", "serve", "--port", str(server.port), *extra],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode != 0
        assert (
            f"cannot listen on 127.0.0.1:{server.port}: port {server.port} is already in use" in done.stderr
        )
        assert "Traceback" not in done.stderr


def test_serve_processes_share_one_port(tmp_path: Path) -> None:
    """`serve --processes 2` still starts: its children (and only they) share the port."""
    port = free_port()
    proc, bound, lines = _start(tmp_path, "--processes", "2", SEENEXT_PORT=str(port))
    try:
        assert bound == port
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            deadline = time.monotonic() + 120
            while True:  # the banner comes before the children have bound: poll until one answers
                try:
                    model_pb2_grpc.ModelServiceStub(ch).GetModelStatus(
                        model_pb2.GetModelStatusRequest(), timeout=5
                    )
                    break
                except grpc.RpcError as err:
                    assert time.monotonic() < deadline, f"{err}\n{''.join(lines)}"
                    time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=60)
    assert code == 0 and "Traceback" not in "".join(lines), "".join(lines)


# -- start-up messages -----------------------------------------------------------------------------


def _certificate(folder: Path, name: str) -> tuple[Path, Path]:
    cert, key = folder / f"{name}.crt", folder / f"{name}.key"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=localhost", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command to make a certificate")
def test_a_swapped_or_mismatched_tls_pair_names_the_files(tmp_path: Path) -> None:
    """Issue 10 point 9: a swapped certificate and key said "Failed to bind to address"."""
    cert, key = _certificate(tmp_path, "a")
    other_cert, _ = _certificate(tmp_path, "b")
    with pytest.raises(ValueError, match="look swapped") as err:
        create_server(tiny_settings(tmp_path / "d1", tls_cert_file=str(key), tls_key_file=str(cert)))
    assert str(cert) in str(err.value) and str(key) in str(err.value)
    with pytest.raises(ValueError, match="the key does not match the certificate") as err:
        create_server(tiny_settings(tmp_path / "d2", tls_cert_file=str(other_cert), tls_key_file=str(key)))
    assert str(other_cert) in str(err.value) and str(key) in str(err.value)
    with pytest.raises(ValueError, match=f"cannot read {tmp_path / 'none.crt'}"):
        create_server(
            tiny_settings(tmp_path / "d3", tls_cert_file=str(tmp_path / "none.crt"), tls_key_file=str(key))
        )


def test_a_binary_keys_file_names_the_file(tmp_path: Path) -> None:
    """Issue 10 point 9: a binary keys file gave a bare UnicodeDecodeError that named no file."""
    path = tmp_path / "keys.json"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    with pytest.raises(ValueError) as err:
        create_server(tiny_settings(tmp_path / "data", auth=True, keys_file=str(path)))
    assert f"keys file {path} is not text" in str(err.value)
    env = dict(
        os.environ, SEENEXT_DATA_DIR=str(tmp_path / "data"), SEENEXT_KEYS_FILE=str(path), SEENEXT_PORT="0"
    )
    done = subprocess.run(
        [sys.executable, "-m", "server", "serve"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0 and f"keys file {path} is not text" in done.stderr
    assert "Traceback" not in done.stderr


# -- Train while a Forget erases ---------------------------------------------------------------------


def test_train_during_forget_says_an_erasure_is_running(
    server: Running, channel: grpc.Channel, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 10 point 9: Train during Forget said "a training is already running"."""
    stub = events_pb2_grpc.EventServiceStub(channel)
    assert stub.TrackBatch(events_pb2.TrackBatchRequest(events=[_event(n) for n in range(60)])).accepted == 60
    erasing, release = threading.Event(), threading.Event()
    erase = Privacy.erase

    def slow_erase(self: Privacy, *args: Any, **kwargs: Any) -> Any:
        erasing.set()
        assert release.wait(30)
        return erase(self, *args, **kwargs)

    monkeypatch.setattr(Privacy, "erase", slow_erase)
    who = common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value="c3")
    forget = threading.Thread(
        target=lambda: privacy_pb2_grpc.PrivacyServiceStub(channel).Forget(privacy_pb2.ForgetRequest(who=who))
    )
    forget.start()
    try:
        assert erasing.wait(30)
        with pytest.raises(grpc.RpcError) as err:
            model_pb2_grpc.ModelServiceStub(channel).Train(model_pb2.TrainRequest())
        assert err.value.code() == grpc.StatusCode.ABORTED
        assert "being erased (Forget) in this server" in (err.value.details() or "")
        assert "already running" not in (err.value.details() or "")
        other = Seenext(settings)  # as another process on the same data folder
        with other, pytest.raises(AlreadyRunning, match=r"being erased \(Forget\) on this data folder"):
            other.train()
    finally:
        release.set()
        forget.join(30)
    assert model_pb2_grpc.ModelServiceStub(channel).Train(model_pb2.TrainRequest()).model_version
