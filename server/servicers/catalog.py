"""CatalogService: UpsertItems and GetItem."""

from __future__ import annotations

import grpc

from models.errors import InvalidArgument
from models.service import Seenext
from protos.seenext.v1 import catalog_pb2, catalog_pb2_grpc
from server import convert


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, service: Seenext) -> None:
        self.service = service

    def UpsertItems(
        self, request: catalog_pb2.UpsertItemsRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.UpsertItemsResponse:
        upserted = self.service.upsert_items([convert.item(i) for i in request.items])
        return catalog_pb2.UpsertItemsResponse(upserted=upserted)

    def GetItem(self, request: catalog_pb2.GetItemRequest, context: grpc.ServicerContext) -> catalog_pb2.Item:
        if not request.item_id:
            raise InvalidArgument("item_id", "is required")
        return convert.item_msg(self.service.get_item(request.item_id))
