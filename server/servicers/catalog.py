"""CatalogService: UpsertItems and GetItem."""

from __future__ import annotations

import grpc

from models.errors import InvalidArgument
from models.service import Seenext
from models.validation import MAX_ID_LENGTH, check_text
from protos.seenext.v1 import catalog_pb2, catalog_pb2_grpc
from server import convert


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, service: Seenext) -> None:
        self.service = service

    def UpsertItems(
        self, request: catalog_pb2.UpsertItemsRequest, context: grpc.ServicerContext
    ) -> catalog_pb2.UpsertItemsResponse:
        items = [convert.item(m, f"items[{i}]") for i, m in enumerate(request.items)]
        mask = list(request.update_mask.paths) if request.HasField("update_mask") else []
        done = self.service.upsert_items_checked(items, mask)
        return catalog_pb2.UpsertItemsResponse(upserted=done.upserted, warnings=done.warnings)

    def GetItem(self, request: catalog_pb2.GetItemRequest, context: grpc.ServicerContext) -> catalog_pb2.Item:
        if not request.item_id:
            raise InvalidArgument("item_id", "is required")
        # Bounded before the lookup: NOT_FOUND quotes the id, and a 1 MB id overflowed the status trailer.
        check_text(request.item_id, "item_id", MAX_ID_LENGTH)
        return convert.item_msg(self.service.get_item(request.item_id))
