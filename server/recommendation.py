"""RecommendationService: Recommend (RecommendBatch and SimilarItems land with the channel issue)."""

from __future__ import annotations

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
