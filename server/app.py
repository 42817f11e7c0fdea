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

from models.config import Settings
from models.service import Seenext
from protos.seenext.v1 import (
    catalog_pb2, catalog_pb2_grpc, events_pb2, events_pb2_grpc, identity_pb2, identity_pb2_grpc,
    insights_pb2, insights_pb2_grpc, model_pb2, model_pb2_grpc, privacy_pb2, privacy_pb2_grpc,
    profile_pb2, profile_pb2_grpc, recommendation_pb2, recommendation_pb2_grpc,
)
from server.catalog import CatalogServicer
from server.errors import ErrorInterceptor
from server.events import EventServicer
from server.insights import InsightsServicer
from server.model import ModelServicer
from server.recommendation import RecommendationServicer

log = logging.getLogger(__name__)

SERVICE_NAMES = [
    m.DESCRIPTOR.services_by_name[name].full_name
    for m, name in (
        (events_pb2, "EventService"), (catalog_pb2, "CatalogService"), (identity_pb2, "IdentityService"),
        (recommendation_pb2, "RecommendationService"), (profile_pb2, "ProfileService"),
        (privacy_pb2, "PrivacyService"), (insights_pb2, "InsightsService"), (model_pb2, "ModelService"),
    )
]


class Running:
    """A started server with what it serves; `stop()` drains in-flight calls first."""

    def __init__(self, server: grpc.Server, port: int, service: Seenext, health: health.HealthServicer) -> None:
        self.server = server
        self.port = port
        self.service = service
        self.health = health

    def stop(self, grace: float = 5.0) -> None:
        self.health.enter_graceful_shutdown()
        self.server.stop(grace).wait()
        self.service.close()


def create_server(
    settings: Settings, service: Seenext | None = None, interceptors: Sequence[grpc.ServerInterceptor] = (),
) -> Running:
    """`interceptors` run after the error interceptor (tests use one to slow the server down)."""
    service = service or Seenext(settings)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=settings.workers, thread_name_prefix="rpc"),
        interceptors=[ErrorInterceptor(), *interceptors],
        # Several processes may share the port (seenext serve --processes N).
        options=[("grpc.so_reuseport", 1), ("grpc.max_receive_message_length", 64 * 1024 * 1024)],
    )
    events_pb2_grpc.add_EventServiceServicer_to_server(EventServicer(service), server)
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogServicer(service), server)
    recommendation_pb2_grpc.add_RecommendationServiceServicer_to_server(RecommendationServicer(service), server)
    model_pb2_grpc.add_ModelServiceServicer_to_server(ModelServicer(service), server)
    insights_pb2_grpc.add_InsightsServiceServicer_to_server(InsightsServicer(service), server)
    # Declared by the contract; their bodies land with their issues and answer UNIMPLEMENTED until then.
    identity_pb2_grpc.add_IdentityServiceServicer_to_server(identity_pb2_grpc.IdentityServiceServicer(), server)
    profile_pb2_grpc.add_ProfileServiceServicer_to_server(profile_pb2_grpc.ProfileServiceServicer(), server)
    privacy_pb2_grpc.add_PrivacyServiceServicer_to_server(privacy_pb2_grpc.PrivacyServiceServicer(), server)

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    for name in ["", *SERVICE_NAMES]:
        health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*SERVICE_NAMES, health.SERVICE_NAME, reflection.SERVICE_NAME], server)

    port = server.add_insecure_port(f"{settings.host}:{settings.port}")
    if port == 0:
        raise OSError(f"cannot bind {settings.host}:{settings.port}")
    server.start()
    service.start_background()
    log.info("seenext serving on %s:%d", settings.host, port)
    return Running(server, port, service, health_servicer)
