"""The served log is written off the request path in batches, and nothing of it is lost on a clean
shutdown (issue 11 point 3: attribution reads it)."""

from __future__ import annotations

from models.domain import Identifier
from models.service import Seenext
from models.serving.recommender import RecommendQuery
from models.settings import Settings
from tests.conftest import stored_rows, tiny_events, tiny_items


def test_every_recommendation_served_is_stored_once_the_service_closes(settings: Settings) -> None:
    svc = Seenext(settings)
    svc.upsert_items(tiny_items())
    svc.track_batch(tiny_events())
    svc.train()
    served = set()
    with svc.count_statements() as sent:
        for n in range(120):
            rec = svc.recommend(
                RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", f"u{n % 60}"), k=3)
            )
            served.add(rec.recommendation_id)
    assert not any("recommendations" in s for s in sent)  # never written by the request's thread
    svc.close()
    stored = {r[0] for r in stored_rows(settings, "SELECT recommendation_id FROM recommendations")}
    assert served <= stored and len(served) == 120


def test_flush_stores_everything_served_before_it_while_the_writer_runs(settings: Settings) -> None:
    with Seenext(settings) as svc:
        svc.upsert_items(tiny_items())
        svc.track_batch(tiny_events())
        svc.train()
        for rounds in range(3):  # the writer takes batches meanwhile (every 0.2 s)
            served = {
                svc.recommend(
                    RecommendQuery(channel="WEB", who=Identifier("CUSTOMER_ID", f"u{n % 60}"), k=3)
                ).recommendation_id
                for n in range(40)
            }
            svc.flush_served()
            stored = {r[0] for r in stored_rows(settings, "SELECT recommendation_id FROM recommendations")}
            assert served <= stored, rounds
