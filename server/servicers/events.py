"""EventService: Track and TrackBatch."""

from __future__ import annotations

import grpc

from models.errors import InvalidArgument
from models.service import Seenext
from protos.seenext.v1 import events_pb2, events_pb2_grpc
from server import convert


class EventServicer(events_pb2_grpc.EventServiceServicer):
    def __init__(self, service: Seenext) -> None:
        self.service = service

    def Track(
        self, request: events_pb2.TrackRequest, context: grpc.ServicerContext
    ) -> events_pb2.TrackResponse:
        if not request.HasField("event"):
            raise InvalidArgument("event", "is required")
        result = self.service.track(convert.event(request.event))
        return events_pb2.TrackResponse(customer_id=result.customer_id, duplicate=result.duplicate)

    def TrackBatch(
        self, request: events_pb2.TrackBatchRequest, context: grpc.ServicerContext
    ) -> events_pb2.TrackBatchResponse:
        result = self.service.track_batch(convert.events(request.events))
        return events_pb2.TrackBatchResponse(
            accepted=result.accepted,
            duplicates=result.duplicates,
            rejected=[
                events_pb2.Rejection(index=r.index, event_id=r.event_id, field=r.field, reason=r.reason)
                for r in result.rejected
            ],
        )
