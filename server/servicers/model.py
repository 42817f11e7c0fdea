"""ModelService: Train, GetModelStatus, ListModels, RollbackModel."""

from __future__ import annotations

import grpc

from models.service import ModelInfo, Seenext
from models.validation import MAX_VERSION_LENGTH, check_text
from protos.seenext.v1 import model_pb2, model_pb2_grpc
from server import convert


def status_msg(info: ModelInfo, with_events: bool = True) -> model_pb2.ModelStatus:
    return model_pb2.ModelStatus(
        model_version=info.version,
        trained_at=convert.timestamp(info.trained_at),
        customers=info.customers,
        items=info.items,
        interactions=info.interactions,
        events_stored=info.events_stored if with_events else 0,
        metrics=info.metrics,
    )


class ModelServicer(model_pb2_grpc.ModelServiceServicer):
    def __init__(self, service: Seenext) -> None:
        self.service = service

    def Train(
        self, request: model_pb2.TrainRequest, context: grpc.ServicerContext
    ) -> model_pb2.TrainResponse:
        info = self.service.train()
        return model_pb2.TrainResponse(model_version=info.version, metrics=info.metrics)

    def GetModelStatus(
        self, request: model_pb2.GetModelStatusRequest, context: grpc.ServicerContext
    ) -> model_pb2.ModelStatus:
        return status_msg(self.service.model_info())

    def ListModels(
        self, request: model_pb2.ListModelsRequest, context: grpc.ServicerContext
    ) -> model_pb2.ListModelsResponse:
        return model_pb2.ListModelsResponse(models=[status_msg(i, False) for i in self.service.list_models()])

    def RollbackModel(
        self, request: model_pb2.RollbackModelRequest, context: grpc.ServicerContext
    ) -> model_pb2.ModelStatus:
        # Without this bound a name longer than a file name allows failed INTERNAL ("File name too long").
        check_text(request.model_version, "model_version", MAX_VERSION_LENGTH)
        return status_msg(self.service.rollback(request.model_version))
