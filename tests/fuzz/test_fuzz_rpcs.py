"""Issue 10's fuzz targets, against a real server process: every RPC of every service in
protos/seenext/v1/ gets Hypothesis-generated requests through its generated stub, and raw bodies
(most of them undecodable) on its method path. No answer may be INTERNAL or UNKNOWN; every
INVALID_ARGUMENT names a field of the request (conftest.named_field); an undecodable body is
INVALID_ARGUMENT; no error echoes a value of 1 KB or more whole; streams are read to the end.

The server is shared by the session, so state builds up as it would in production: an item stored by
a fuzzed UpsertItems is read by a later GetItem or Recommend. The seed is fixed (FUZZ_SEED) and
FUZZ_EXAMPLES bounds the requests per RPC; `make fuzz` runs the same tests with many more.
"""

from __future__ import annotations

import pytest

from server.app import SERVICE_NAMES
from tests.fuzz.conftest import (
    EXAMPLES,
    RPCS,
    SEED,
    Campaign,
    FuzzServer,
    Rpc,
    explain,
    fuzz_messages,
    fuzz_raw,
    named_field,
)

IDS = [rpc.name for rpc in RPCS]


def test_the_campaign_covers_every_rpc_the_server_serves() -> None:
    assert {rpc.path.split("/")[1] for rpc in RPCS} == set(SERVICE_NAMES)
    assert len(RPCS) >= 19 and any(rpc.streaming for rpc in RPCS)


def test_what_names_a_field() -> None:
    """The rule the fuzz tests apply, on the shapes the codebase's messages take."""
    from protos.seenext.v1 import events_pb2, insights_pb2, recommendation_pb2

    batch = events_pb2.TrackBatchRequest.DESCRIPTOR
    assert named_field(batch, "events[3].attributes: at most 64 entries") == "events[3].attributes"
    assert named_field(batch, "events[0].identifiers[2].value: is required")
    assert named_field(batch, 'events[1].attributes["colour"]: is 70000 characters long')
    assert named_field(batch, "events: at most 10000 events per call, got 10001")
    assert named_field(batch, "events[0].occurred_at.seconds: is out of range")
    assert not named_field(batch, "event.event_id: is required")  # Track's field, not TrackBatch's
    assert not named_field(batch, "events[0].price.cents: no such thing")  # nothing follows a scalar
    assert not named_field(batch, "invalid request")
    assert not named_field(batch, "Exception deserializing request!")
    recommend = recommendation_pb2.RecommendRequest.DESCRIPTOR
    assert named_field(recommend, "filter.max_price: must be >= 0, got -1.0")
    assert named_field(recommend, "who.value: is required")
    assert not named_field(recommend, "k : must be between 1 and 100")  # the path, then ": "
    due = insights_pb2.DueRemindersRequest.DESCRIPTOR
    assert named_field(due, "window_end: must be after window_start, got 1 <= 2")


@pytest.mark.parametrize("rpc", RPCS, ids=IDS)
def test_fuzzed_requests(fuzz_server: FuzzServer, campaign: Campaign, rpc: Rpc) -> None:
    fuzz_messages(fuzz_server, rpc, campaign, EXAMPLES, SEED)
    assert fuzz_server.alive(), "the server process died"
    broken = campaign.broken(rpc, "message")
    assert not broken, explain(broken)


@pytest.mark.parametrize("rpc", RPCS, ids=IDS)
def test_raw_bodies(fuzz_server: FuzzServer, campaign: Campaign, rpc: Rpc) -> None:
    lines = fuzz_server.log_size()
    fuzz_raw(fuzz_server, rpc, campaign, EXAMPLES, SEED)
    campaign.log_lines[rpc.name] = fuzz_server.log_size() - lines
    assert fuzz_server.alive(), "the server process died"
    broken = campaign.broken(rpc, "raw")
    assert not broken, explain(broken)
