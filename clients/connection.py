"""What every channel client shares: a channel to the server and identifier shorthands."""

from __future__ import annotations

import grpc

from protos.seenext.v1 import common_pb2

DEFAULT_TARGET = "127.0.0.1:50051"


def open_channel(target: str = DEFAULT_TARGET) -> grpc.Channel:
    return grpc.insecure_channel(target)


def customer(customer_id: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=customer_id)


def device(device_id: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_DEVICE_ID, value=device_id)
