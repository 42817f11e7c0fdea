"""End to end through the generated stubs against a real server on a loopback port."""

from __future__ import annotations

import threading

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from protos.seenext.v1 import (
    catalog_pb2,
    catalog_pb2_grpc,
    common_pb2,
    events_pb2,
    events_pb2_grpc,
    model_pb2,
    model_pb2_grpc,
    recommendation_pb2,
    recommendation_pb2_grpc,
)
from server import convert
from tests.conftest import tiny_events, tiny_items

pytestmark = pytest.mark.both_backends  # the store on SQLite and on PostgreSQL (tests/conftest.py)


def customer(cid: str) -> common_pb2.Identifier:
    return common_pb2.Identifier(kind=common_pb2.IDENTIFIER_KIND_CUSTOMER_ID, value=cid)


def purchase(event_id: str, cid: str, item: str) -> events_pb2.Event:
    return events_pb2.Event(
        event_id=event_id,
        identifiers=[customer(cid)],
        channel=common_pb2.CHANNEL_WEB,
        type=common_pb2.EVENT_TYPE_PURCHASE,
        item_id=item,
        quantity=1,
        price=9.5,
    )


@pytest.fixture
def loaded(channel: grpc.Channel) -> grpc.Channel:
    """The tiny world sent through the API and trained through the API."""
    catalog_pb2_grpc.CatalogServiceStub(channel).UpsertItems(
        catalog_pb2.UpsertItemsRequest(items=[convert.item_msg(i) for i in tiny_items()])
    )
    events = [convert.event_msg(e) for e in tiny_events()]
    reply = events_pb2_grpc.EventServiceStub(channel).TrackBatch(events_pb2.TrackBatchRequest(events=events))
    assert reply.accepted == len(events) and not reply.rejected
    model_pb2_grpc.ModelServiceStub(channel).Train(model_pb2.TrainRequest())
    return channel


def recommend(ch: grpc.Channel, **kw: object) -> recommendation_pb2.RecommendResponse:
    return recommendation_pb2_grpc.RecommendationServiceStub(ch).Recommend(
        recommendation_pb2.RecommendRequest(**kw), timeout=5
    )


def test_track_is_idempotent_over_grpc(channel: grpc.Channel) -> None:
    stub = events_pb2_grpc.EventServiceStub(channel)
    first = stub.Track(events_pb2.TrackRequest(event=purchase("e1", "c1", "i1")))
    again = stub.Track(events_pb2.TrackRequest(event=purchase("e1", "c1", "i1")))
    assert (first.customer_id, first.duplicate, again.duplicate) == ("c1", False, True)
    batch = stub.TrackBatch(
        events_pb2.TrackBatchRequest(
            events=[
                purchase("e1", "c1", "i1"),
                purchase("e2", "c1", "i2"),
                purchase("e3", "c1", ""),
            ]
        )
    )
    assert (batch.accepted, batch.duplicates) == (1, 1)
    assert [(r.index, r.event_id, r.field) for r in batch.rejected] == [(2, "e3", "events[2].item_id")]
    status = model_pb2_grpc.ModelServiceStub(channel).GetModelStatus(model_pb2.GetModelStatusRequest())
    assert status.events_stored == 2 and status.model_version == ""


def test_catalogue_round_trip_and_not_found(channel: grpc.Channel) -> None:
    stub = catalog_pb2_grpc.CatalogServiceStub(channel)
    item = convert.item_msg(tiny_items()[3])
    assert stub.UpsertItems(catalog_pb2.UpsertItemsRequest(items=[item])).upserted == 1
    assert stub.GetItem(catalog_pb2.GetItemRequest(item_id=item.item_id)) == item
    with pytest.raises(grpc.RpcError) as err:
        stub.GetItem(catalog_pb2.GetItemRequest(item_id="nope"))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND and "nope" in err.value.details()


def test_recommend_trains_excludes_fresh_purchase(loaded: grpc.Channel) -> None:
    rec = recommend(loaded, who=customer("u2"), channel=common_pb2.CHANNEL_WEB, k=3, explain=True)
    ids = [i.item_id for i in rec.items]
    assert rec.recognised and rec.strategy == "personalised" and len(set(ids)) == 3
    assert all(i.startswith("laptop-") for i in ids) and all(i.reasons[0].text for i in rec.items)
    assert rec.items[0].score >= rec.items[1].score >= rec.items[2].score
    events_pb2_grpc.EventServiceStub(loaded).Track(
        events_pb2.TrackRequest(event=purchase("buy", "u2", ids[0]))
    )
    after = recommend(loaded, who=customer("u2"), channel=common_pb2.CHANNEL_WEB, k=3)
    assert ids[0] not in [i.item_id for i in after.items]


def test_anonymous_fallbacks_say_their_strategy(loaded: grpc.Channel) -> None:
    similar = recommend(
        loaded, channel=common_pb2.CHANNEL_WEB, k=2, context=recommendation_pb2.Context(item_ids=["phone-1"])
    )
    assert not similar.recognised and similar.strategy == "similar_items"
    popular = recommend(loaded, channel=common_pb2.CHANNEL_POS, k=2)
    assert popular.strategy == "popular" and len(popular.items) == 2


@pytest.mark.parametrize(
    "request_kw, code, field",
    [
        ({"channel": common_pb2.CHANNEL_WEB, "k": 1000}, grpc.StatusCode.INVALID_ARGUMENT, "k"),
        ({"k": 3}, grpc.StatusCode.INVALID_ARGUMENT, "channel"),
        ({"channel": 42}, grpc.StatusCode.INVALID_ARGUMENT, "channel"),
        (
            {"channel": common_pb2.CHANNEL_WEB, "who": common_pb2.Identifier(value="x")},
            grpc.StatusCode.INVALID_ARGUMENT,
            "who.kind",
        ),
    ],
)
def test_bad_recommend_requests(
    channel: grpc.Channel, request_kw: dict, code: grpc.StatusCode, field: str
) -> None:
    with pytest.raises(grpc.RpcError) as err:
        recommend(channel, **request_kw)
    assert err.value.code() == code and err.value.details().startswith(field + ":")


def test_bad_events_and_training_without_data(channel: grpc.Channel) -> None:
    events = events_pb2_grpc.EventServiceStub(channel)
    with pytest.raises(grpc.RpcError) as err:
        events.Track(events_pb2.TrackRequest())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and err.value.details().startswith("event:")
    with pytest.raises(grpc.RpcError) as err:
        events.TrackBatch(events_pb2.TrackBatchRequest())
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as err:
        model_pb2_grpc.ModelServiceStub(channel).Train(model_pb2.TrainRequest())
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    with pytest.raises(grpc.RpcError) as err:
        model_pb2_grpc.ModelServiceStub(channel).RollbackModel(
            model_pb2.RollbackModelRequest(model_version="v0")
        )
    assert err.value.code() == grpc.StatusCode.NOT_FOUND


def test_without_a_model_recommend_falls_back_to_popular(channel: grpc.Channel) -> None:
    events_pb2_grpc.EventServiceStub(channel).Track(events_pb2.TrackRequest(event=purchase("e", "c", "i9")))
    rec = recommend(channel, who=customer("someone"), channel=common_pb2.CHANNEL_WEB, k=3)
    assert rec.strategy == "popular" and [i.item_id for i in rec.items] == ["i9"] and rec.model_version == ""


def test_a_new_model_swaps_in_while_recommend_traffic_flows(loaded: grpc.Channel) -> None:
    errors: list[BaseException] = []
    versions: set[str] = set()
    stop = threading.Event()

    def traffic() -> None:
        while not stop.is_set():
            try:
                versions.add(
                    recommend(loaded, who=customer("u1"), channel=common_pb2.CHANNEL_WEB, k=5).model_version
                )
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=traffic) for _ in range(4)]
    for t in threads:
        t.start()
    models = model_pb2_grpc.ModelServiceStub(loaded)
    new = [models.Train(model_pb2.TrainRequest()).model_version for _ in range(2)]
    stop.set()
    for t in threads:
        t.join()
    assert not errors
    assert new[-1] in versions and len(versions) >= 2
    listed = models.ListModels(model_pb2.ListModelsRequest())
    assert [m.model_version for m in listed.models][:2] == new[::-1]
    back = models.RollbackModel(model_pb2.RollbackModelRequest(model_version=new[0]))
    assert back.model_version == new[0]


def test_model_status_reports_what_it_was_trained_on(loaded: grpc.Channel) -> None:
    status = model_pb2_grpc.ModelServiceStub(loaded).GetModelStatus(model_pb2.GetModelStatusRequest())
    assert status.model_version and status.customers == 60 and status.items == 20
    assert status.interactions > 0 and status.events_stored == len(tiny_events())
    assert status.trained_at.seconds > 0


def test_health_and_reflection(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""))
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    reply = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in reply.list_services_response.service}
    assert {
        "seenext.v1.EventService",
        "seenext.v1.RecommendationService",
        "seenext.v1.ModelService",
        "grpc.health.v1.Health",
    } <= names
