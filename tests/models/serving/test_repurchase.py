"""The repurchase blend orders a customer's own purchases by the purchase evidence, not the model.

Known-answer cases of `repurchase.blend`: recency (in whole days) and times bought decide, a tie
(one day, bought as often) goes to the item everyone buys more (its appeal: the model's item bias),
and the model's score for this customer, in-sample for what they bought, never reorders them.
"""

from __future__ import annotations

import math

import numpy as np

from models.domain import DAY
from models.serving import repurchase

INDEX = {"a": 0, "b": 1, "c": 2, "d": 3, "e": 4}
DUE = dict.fromkeys(INDEX, True)


def order(out: np.ndarray) -> list[str]:
    ids = list(INDEX)
    return [ids[i] for i in np.argsort(-out, kind="stable")]


def test_a_recent_purchase_stays_ahead_of_an_older_one_the_model_likes_more() -> None:
    # the model's score for what the customer bought reflects how training fitted it, not a rebuy
    scores = np.array([9.0, -3.0, 0.0, 0.5, 0.2])
    bought = [("a", 60 * DAY, 1), ("b", 100 * DAY, 1)]  # a: 40 days before b
    out = repurchase.blend(scores, INDEX, bought, DUE, 100 * DAY, weight=10.0, half_life_days=365.0)
    assert order(out)[:2] == ["b", "a"]
    # before this rule (model score + boost) the model's 12-point preference for `a` won
    assert 9.0 + 10.0 * 0.5 ** (40 / 365) * scores.std() > -3.0 + 10.0 * scores.std()


def test_bought_more_often_wins_at_the_same_age() -> None:
    scores = np.array([5.0, 0.0, 0.0, 0.0, 0.0])
    bought = [("a", 100 * DAY, 1), ("b", 100 * DAY, 3)]
    out = repurchase.blend(scores, INDEX, bought, DUE, 100 * DAY, weight=10.0, half_life_days=365.0)
    assert order(out)[:2] == ["b", "a"]


def test_one_days_purchases_bought_as_often_go_by_their_appeal_to_everyone() -> None:
    # c, d, e bought in one basket (minutes apart); the customer's own scores prefer e, then d
    scores = np.array([0.0, 0.0, 1.0, 2.0, 3.0])
    appeal = np.array([0.0, 0.0, 0.9, 0.1, 0.5])  # everyone buys c most, then e, then d
    bought = [("c", 100 * DAY - 60, 1), ("d", 100 * DAY - 600, 1), ("e", 100 * DAY - 300, 1)]
    out = repurchase.blend(
        scores, INDEX, bought, DUE, 100 * DAY, weight=10.0, half_life_days=365.0, appeal=appeal
    )
    assert order(out)[:3] == ["c", "e", "d"]
    # the appeal only breaks ties: a purchase one day newer is ahead whatever its appeal
    newer = [*bought[:2], ("e", 101 * DAY, 1)]
    out = repurchase.blend(
        scores, INDEX, newer, DUE, 101 * DAY, weight=10.0, half_life_days=365.0, appeal=appeal
    )
    assert order(out)[:3] == ["e", "c", "d"]


def test_every_due_purchase_rises_at_least_by_its_boost_and_nothing_else_moves() -> None:
    scores = np.array([4.0, 1.0, -2.0, 0.0, 3.5])
    bought = [("b", 90 * DAY, 2), ("c", 10 * DAY, 1), ("d", 95 * DAY, 1)]
    due = {"b": True, "c": True, "d": False}  # d bought but not due again: left alone
    out = repurchase.blend(scores, INDEX, bought, due, 100 * DAY, weight=2.0, half_life_days=30.0)
    sd = float(scores.std())
    assert out[1] >= scores[1] + 2.0 * sd * 0.5 ** (10 / 30) * (1 + np.log(2))
    assert out[2] >= scores[2] + 2.0 * sd * 0.5 ** (90 / 30)
    assert out[[0, 3, 4]].tolist() == scores[[0, 3, 4]].tolist()
    assert scores.tolist() == [4.0, 1.0, -2.0, 0.0, 3.5]  # the input is not changed
    assert order(out)[0] == "b"


def test_ranks_scale_to_the_unit_interval_and_put_what_is_not_finite_last() -> None:
    assert repurchase._ranks([0.3, math.nan, 0.9, -1.0]) == [2 / 3, 0.0, 1.0, 1 / 3]
    assert repurchase._ranks([7.0]) == [0.0]
    assert repurchase._ranks([0.5, -math.inf, 0.5]) == [0.5, 0.0, 1.0]  # equal values by position


def test_in_place_changes_the_callers_temporary_and_answers_as_a_copy_would() -> None:
    scores = np.array([4.0, 1.0, -2.0, 0.0, 3.5], dtype=np.float32)
    bought = [("b", 90 * DAY, 2), ("c", 10 * DAY, 1)]
    copied = repurchase.blend(scores, INDEX, bought, DUE, 100 * DAY, weight=2.0, half_life_days=30.0)
    temporary = scores.copy()
    changed = repurchase.blend(
        temporary, INDEX, bought, DUE, 100 * DAY, weight=2.0, half_life_days=30.0, in_place=True
    )
    assert changed is temporary
    assert changed.tolist() == copied.tolist() != scores.tolist()
