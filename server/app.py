"""Builds the gRPC server: every seenext service, health, reflection, the error interceptor.

`create_server(settings)` returns the started server and its bound port, so tests bind port 0.
"""

from __future__ import annotations

import logging
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
    model_pb2,
    model_pb2_grpc,
    privacy_pb2,
    privacy_pb2_grpc,
    profile_pb2,
    profile_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from server import auth
from server.errors import ErrorInterceptor, Interceptor
from server.runtime import one_blas_thread
from server.servicers.catalog import CatalogServicer
from server.servicers.events import EventServicer
from server.servicers.identity import IdentityServicer
from server.servicers.insights import InsightsServicer
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
    ) -> None:
        self.server = server
        self.port = port
        self.service = service
        self.health = health
        self.keys = keys  # the API keys checked; None in the open development mode

    def stop(self, grace: float = 5.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
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
    service = service or Seenext(settings)
    checks: list[Interceptor] = [auth.AuthInterceptor(keys)] if keys is not None else []
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="rpc"),
        interceptors=[*checks, ErrorInterceptor(), *interceptors],
        # Several processes may share the port (seenext serve --processes N).
        options=[("grpc.so_reuseport", 1), ("grpc.max_receive_message_length", 64 * 1024 * 1024)],
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

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *SERVICE_NAMES]:  # SERVING once the caches are warm (below)
        health_servicer.set(name, health_pb2.HealthCheckResponse.NOT_SERVING)
    reflection.enable_server_reflection(
        [*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME], server
    )

    address = f"{settings.host}:{settings.port}"
    port = server.add_secure_port(address, credentials) if credentials else server.add_insecure_port(address)
    if port == 0:
        raise OSError(f"cannot bind {settings.host}:{settings.port}")
    server.start()
    service.start_background()  # warms the caches: 2-5 s on a 20k-item, 1M-event store
    for name in ["", *SERVICE_NAMES]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    log.info("seenext serving on %s:%d (%s)", settings.host, port, "TLS" if credentials else "plaintext")
    return Running(server, port, service, health_servicer, keys)


def _tls(settings: Settings) -> grpc.ServerCredentials | None:
    """TLS from a PEM chain and key (SEENEXT_TLS_CERT_FILE, SEENEXT_TLS_KEY_FILE): both or neither."""
    if not settings.tls_cert_file and not settings.tls_key_file:
        return None
    if not (settings.tls_cert_file and settings.tls_key_file):
        raise ValueError("TLS needs both SEENEXT_TLS_CERT_FILE and SEENEXT_TLS_KEY_FILE")
    with open(settings.tls_cert_file, "rb") as cert, open(settings.tls_key_file, "rb") as key:
        return grpc.ssl_server_credentials([(key.read(), cert.read())])
