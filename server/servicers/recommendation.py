"""RecommendationService: Recommend, RecommendBatch (server streaming) and SimilarItems."""

from __future__ import annotations

from collections.abc import Iterator

import grpc

from models.service import Seenext
from protos.seenext.v1 import recommendation_pb2, recommendation_pb2_grpc
from server import convert


class RecommendationServicer(recommendation_pb2_grpc.RecommendationServiceServicer):
    def __init__(self, service: Seenext) -> None:
        self.service = service

    def Recommend(
        self, request: recommendation_pb2.RecommendRequest, context: grpc.ServicerContext
    ) -> recommendation_pb2.RecommendResponse:
        return convert.recommendation_msg(self.service.recommend(convert.recommend_query(request)))

    def RecommendBatch(
        self, request: recommendation_pb2.RecommendBatchRequest, context: grpc.ServicerContext
    ) -> Iterator[recommendation_pb2.RecommendResponse]:
        """One response per customer, computed only when the previous one has been handed to gRPC, so a
        campaign of any size holds one customer's answer in memory; a cancelled call stops the work."""
        results = self.service.recommend_batch(
            [convert.identifier(w) for w in request.who],
            convert.channel(request.channel),
            request.placement,
            request.k,
            request.explain,
        )
        for rec in results:
            if not context.is_active():
                return
            yield convert.recommendation_msg(rec)

    def SimilarItems(
        self, request: recommendation_pb2.SimilarItemsRequest, context: grpc.ServicerContext
    ) -> recommendation_pb2.SimilarItemsResponse:
        items, version = self.service.similar_items(
            request.item_id,
            request.k,
            convert.channel(request.channel) if request.channel else "",
            request.store_id,
        )
        return recommendation_pb2.SimilarItemsResponse(
            items=[convert.recommended_msg(r) for r in items], model_version=version
        )
