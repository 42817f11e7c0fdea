"""A real server over the channel world, shared by the client tests of one module."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from tests import channel_world as world


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    server = world.serve(tmp_path_factory.mktemp("clients"))
    yield server
    server.stop(grace=1.0)


@pytest.fixture(scope="module")
def channel(running: object) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as ch:  # type: ignore[attr-defined]
        grpc.channel_ready_future(ch).result(timeout=10)
        yield ch
