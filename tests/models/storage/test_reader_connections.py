"""A thread's SQLite reader connection lives as long as the thread (issue 10's memory target).

Background refreshes run on short-lived threads of their own; each kept its reader open for the
life of the process (with its page and statement caches), so the server grew by ~20 connections
and ~2 MB per fuzz round. The check counts the database file's open descriptors, as the kernel sees
them, not the store's own bookkeeping.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from models.storage.sqlite.connection import Connections


def _open_descriptors(path: Path) -> int:
    target = str(path.resolve())
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == target:
                count += 1
        except OSError:  # closed between the listing and the read
            continue
    return count


def _read_on_a_thread(connections: Connections) -> None:
    def run() -> None:
        assert connections.reader().execute("SELECT 1").fetchone() == (1,)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()


def test_a_finished_threads_reader_is_closed_and_a_live_ones_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    connections = Connections(path)
    try:
        mine = connections.reader()
        assert connections.reader() is mine  # one per thread, reused
        baseline = _open_descriptors(path)  # the writer and this thread's reader
        for _ in range(30):
            _read_on_a_thread(connections)
        # SQLite's unix VFS keeps the descriptor of a closed connection for the next one to reuse
        # while other connections of the process hold the file: one more at most, never one a thread.
        assert _open_descriptors(path) <= baseline + 1
        assert mine.execute("SELECT 1").fetchone() == (1,)  # this thread's reader still works
    finally:
        connections.close()
    assert _open_descriptors(path) == 0
