"""Builds the gRPC server: every seenext service, health, reflection, the error interceptor, and the
metrics endpoint when SEENEXT_METRICS_PORT is set.

`create_server(settings)` returns the started server and its bound port, so tests bind port 0.
"""

from __future__ import annotations

import errno
import logging
import socket
import ssl
import threading
from collections.abc import Sequence
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from models.service import Seenext
from models.settings import Settings
from protos.seenext.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    events_pb2,
    events_pb2_grpc,
    identity_pb2,
    identity_pb2_grpc,
    insights_pb2,
    insights_pb2_grpc,
    merchandising_pb2,
    merchandising_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    privacy_pb2,
    privacy_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from server import auth, memory
from server.errors import ErrorInterceptor, Interceptor
from server.metrics import Metrics
from server.runtime import one_blas_thread
from server.servicers.catalog import CatalogServicer
from server.servicers.events import EventServicer
from server.servicers.identity import IdentityServicer
from server.servicers.insights import InsightsServicer
from server.servicers.merchandising import MerchandisingServicer
from server.servicers.model import ModelServicer
from server.servicers.privacy import PrivacyServicer
from server.servicers.profile import ProfileServicer
from server.servicers.recommendation import RecommendationServicer

log = logging.getLogger(__name__)

SERVICE_NAMES = [
    m.DESCRIPTOR.services_by_name[name].full_name
    for m, name in (
        (events_pb2, "EventService"),
        (catalog_pb2, "CatalogService"),
        (identity_pb2, "IdentityService"),
        (recommendation_pb2, "RecommendationService"),
        (profile_pb2, "ProfileService"),
        (privacy_pb2, "PrivacyService"),
        (insights_pb2, "InsightsService"),
        (model_pb2, "ModelService"),
        (merchandising_pb2, "MerchandisingService"),
    )
]


class Running:
    """A started server with what it serves; `stop()` drains in-flight calls first."""

    def __init__(
        self,
        server: grpc.Server,
        port: int,
        service: Seenext,
        health: health.HealthServicer,
        keys: auth.ApiKeys | None = None,
        metrics: Metrics | None = None,
        metrics_port: int = 0,
    ) -> None:
        self.server = server
        self.port = port
        self.service = service
        self.health = health
        self.keys = keys  # the API keys checked; None in the open development mode
        self.metrics = metrics  # None unless SEENEXT_METRICS_PORT is set
        self.metrics_port = metrics_port

    def stop(self, grace: float = 5.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        if self.metrics is not None:
            self.metrics.stop()
        self.service.close()


def create_server(
    settings: Settings,
    service: Seenext | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Running:
    """`interceptors` run after the API-key check and the error interceptor (tests use one to slow the
    server down)."""
    keys = auth.from_settings(settings)  # before anything starts: a bad keys file stops here
    credentials = _tls(settings)
    one_blas_thread()
    memory.limit_arenas()  # before the RPC threads start (server/memory.py)
    own_service = service is None
    service = service or Seenext(settings)
    checks: list[Interceptor] = [auth.AuthInterceptor(keys)] if keys is not None else []
    # Outermost, so it counts the status the caller gets, the API-key check's refusals included.
    metrics = Metrics(service) if settings.metrics_port else None
    counted: list[Interceptor] = [metrics.interceptor()] if metrics is not None else []
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="rpc"),
        interceptors=[*counted, *checks, ErrorInterceptor(), *interceptors],
        options=[
            # Only the processes of one `seenext serve --processes N` share the port (the parent checked
            # it was free); any other server on a busy port fails to start instead of taking a share
            # of another server's connections.
            ("grpc.so_reuseport", 1 if settings.child else 0),
            ("grpc.max_receive_message_length", 64 * 1024 * 1024),
        ],
    )
    events_pb2_grpc.add_EventServiceServicer_to_server(EventServicer(service), server)
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogServicer(service), server)
    recommendation_pb2_grpc.add_RecommendationServiceServicer_to_server(
        RecommendationServicer(service), server
    )
    model_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(service), server)
    insights_pb2_grpc.add_InsightsServiceServicer_to_server(InsightsServicer(service), server)
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(IdentityServicer(service), server)
    profile_pb2_grpc.add_ProfileServiceServicer_to_server(ProfileServicer(service), server)
    privacy_pb2_grpc.add_PrivacyServiceServicer_to_server(PrivacyServicer(service), server)
    merchandising_pb2_grpc.add_MerchandisingServiceServicer_to_server(MerchandisingServicer(service), server)

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *SERVICE_NAMES]:  # SERVING once the caches are warm (below)
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        [*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )

    address = f"{settings.host}:{settings.port}"
    try:
        if credentials:
            port = server.add_secure_port(address, credentials)
        else:
            port = server.add_insecure_port(address)
    except RuntimeError:  # grpc says only "Failed to bind to address"
        port = 0
    if port == 0:
        problem = port_problem(settings.host, settings.port) or "grpc could not bind it (see the log above)"
        server.stop(None)
        if own_service:
            service.close()
        raise OSError(f"cannot listen on {address}: {problem}")
    metrics_port = 0
    if metrics is not None:
        try:
            metrics_port = metrics.serve(settings.host, settings.metrics_port)
        except OSError as exc:
            server.stop(None)
            if own_service:
                service.close()
            raise OSError(
                f"cannot serve metrics on {settings.host}:{settings.metrics_port} (SEENEXT_METRICS_PORT): "
                f"{exc.strerror or exc}"
            ) from None
    server.start()
    service.start_background()  # warms the caches: 2-5 s on a 20k-item, 1M-event store
    _serving_when_ready(service, health_servicer)
    log.info("seenext serving on %s:%d (%s)", settings.host, port, "TLS" if credentials else "plaintext")
    return Running(server, port, service, health_servicer, keys, metrics, metrics_port)


def _serving_when_ready(service: Seenext, health_servicer: health.HealthServicer) -> None:
    """SERVING once the replica has its model and has caught up with the change feed (at once in the
    common case; else from a thread that waits for it), so a balancer sends it nothing before."""

    def serving() -> None:
        for name in ["", *SERVICE_NAMES]:
            health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

    if service.ready():
        serving()
        return

    def wait() -> None:
        if service.wait_ready():
            serving()

    threading.Thread(target=wait, name="health-ready", daemon=True).start()


def port_problem(host: str, port: int) -> str | None:
    """Why an address cannot be listened on (None: it can), found by binding it as grpc does
    (SO_REUSEADDR, no SO_REUSEPORT): a port in use says so, instead of grpc's "Failed to bind to
    address"."""
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        return f"the host name {host!r} does not resolve ({exc.strerror}); set SEENEXT_HOST / --host"
    for family, kind, proto, _, sockaddr in infos:
        try:
            with socket.socket(family, kind, proto) as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(sockaddr)
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return (
                    f"port {port} is already in use (another seenext server or another program listens "
                    "on it); stop it or choose another SEENEXT_PORT / --port. Only the processes of one "
                    "`seenext serve --processes N` share a port"
                )
            return f"{exc.strerror or exc} (SEENEXT_HOST / --host must be an address of this machine)"
    return None


def _tls(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS from a PEM chain and key (SEENEXT_TLS_CERT_FILE, SEENEXT_TLS_KEY_FILE): both or neither.

    The pair is checked here, so a swapped, unreadable or mismatched pair names the files and what is
    wrong instead of grpc's "Failed to bind to address"."""
    if not settings.tls_cert_file and not settings.tls_key_file:
        return None
    if not (settings.tls_cert_file and settings.tls_key_file):
        raise ValueError("TLS needs both SEENEXT_TLS_CERT_FILE and SEENEXT_TLS_KEY_FILE")
    cert_file, key_file = settings.tls_cert_file, settings.tls_key_file
    files = f"SEENEXT_TLS_CERT_FILE={cert_file}, SEENEXT_TLS_KEY_FILE={key_file}"
    try:
        with open(cert_file, "rb") as cert, open(key_file, "rb") as key:
            chain, private_key = cert.read(), key.read()
    except OSError as exc:
        raise ValueError(f"TLS: cannot read {exc.filename}: {exc.strerror} ({files})") from None
    if b"PRIVATE KEY-----" in chain and b"-----BEGIN CERTIFICATE-----" in private_key:
        raise ValueError(
            f"TLS: the certificate and key files look swapped: {cert_file} holds a private key and "
            f"{key_file} a certificate ({files})"
        )
    if b"-----BEGIN CERTIFICATE-----" not in chain:
        raise ValueError(f"TLS: {cert_file} holds no PEM certificate ({files})")
    if b"PRIVATE KEY-----" not in private_key:
        raise ValueError(f"TLS: {key_file} holds no PEM private key ({files})")
    try:  # the same check grpc makes when it binds, with a reason
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(cert_file, key_file, password=_no_password)
    except (ssl.SSLError, ValueError) as exc:
        reason = "the key does not match the certificate" if "MISMATCH" in str(exc).upper() else str(exc)
        raise ValueError(
            f"TLS: {cert_file} and {key_file} are not a usable certificate chain and private key: "
            f"{reason} (an encrypted key is not supported) ({files})"
        ) from None
    return grpc.ssl_server_credentials([(private_key, chain)])


def _no_password() -> str:
    return ""  # an encrypted key fails instead of OpenSSL prompting on the terminal
