"""`Told`: the seq ranges of this process's commits, handed from the committing threads to the follower
(models/storage/changes.py). The follower moves only over a run of ranges starting right after its
position; the feed tests (tests/models/serving/test_feed_own_writes.py) hold it against real stores."""

from __future__ import annotations

from models.storage.changes import Told


def started() -> Told:
    told = Told()
    told.start()
    return told


def test_nothing_is_recorded_before_a_follower_starts() -> None:
    told = Told()
    told.add([(1, 5)])
    assert not told.on and told.pass_over(0) == 0


def test_a_run_of_ranges_right_after_the_position_is_passed_over_whatever_order_it_was_told_in() -> None:
    told = started()
    told.add([(11, 20)])  # a later commit told first
    told.add([(1, 4), (5, 10)])  # one transaction, two inserts
    assert told.pass_over(0) == 20
    assert told.pass_over(20) == 20


def test_a_range_above_another_writers_row_waits_for_the_follower_to_read_it() -> None:
    told = started()
    told.add([(6, 9)])  # seq 5 is not this process's
    assert told.pass_over(4) == 4
    assert told.pass_over(5) == 9  # once seq 5 was read


def test_ranges_the_follower_read_past_are_dropped_and_one_it_stopped_inside_is_finished() -> None:
    told = started()
    told.add([(1, 3), (4, 10), (12, 15)])
    assert told.pass_over(6) == 10  # 1-3 read already; a read's batch ended inside 4-10
    assert told.pass_over(11) == 15


def test_at_most_keep_ranges_are_held_the_oldest_dropped() -> None:
    told = started()
    for seq in range(1, Told.KEEP + 2):
        told.add([(seq, seq)])
    assert told.pass_over(0) == 0  # the oldest were dropped: those are read back
    assert told.pass_over(Told.KEEP // 2 + 1) == Told.KEEP + 1
