"""A lease in the database: one holder at a time across every replica and job on the store.

What keeps one training at a time in a fleet (and a Forget's erasure from overlapping one), where a
file lock cannot: replicas on several hosts share the database, not a disk. The holder takes the
row in one transaction (`Storage.take_lease`) and renews it every third of its term from a thread
while it holds it; a holder that dies stops renewing and the lease expires. A holder on this host
whose process is gone is taken over at once, so a killed training does not hold the next one off
for a whole term.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid

from models.storage import Storage

_HOST = socket.gethostname()


class LeaseHeld(Exception):
    """Someone else holds the lease; `purpose` is what they said they hold it for."""

    def __init__(self, purpose: str) -> None:
        super().__init__(purpose)
        self.purpose = purpose


class Held:
    """A lease this process holds; `release()` gives it up (and stops renewing it)."""

    def __init__(self, lease: FleetLease, holder: str) -> None:
        self._lease = lease
        self.holder = holder
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{lease.name}", daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        lease = self._lease
        while not self._stop.wait(lease.seconds / 3):
            try:
                lease.storage.take_lease(lease.name, self.holder, lease.seconds, time.time())
            except Exception:  # a failed renewal is retried; the term outlasts two of them
                continue

    def release(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._lease.storage.release_lease(self._lease.name, self.holder)


class FleetLease:
    def __init__(self, storage: Storage, name: str, seconds: float = 60.0) -> None:
        self.storage = storage
        self.name = name
        self.seconds = seconds

    def acquire(self, purpose: str, wait: bool) -> Held:
        """Takes the lease for `purpose` ("training", "erasure"); `LeaseHeld` if busy and not `wait`."""
        holder = f"{purpose}@{_HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        while not self._take(holder):
            if not wait:
                current = self.storage.lease_holder(self.name, time.time()) or ""
                raise LeaseHeld(current.split("@", 1)[0])
            time.sleep(0.2)
        return Held(self, holder)

    def _take(self, holder: str) -> bool:
        now = time.time()
        if self.storage.take_lease(self.name, holder, self.seconds, now):
            return True
        current = self.storage.lease_holder(self.name, now)
        if current is not None and _dead_here(current):
            self.storage.release_lease(self.name, current)
            return self.storage.take_lease(self.name, holder, self.seconds, now)
        return False


def _dead_here(holder: str) -> bool:
    """Whether a holder names a process of this host that no longer runs."""
    try:
        host, pid_text, _ = holder.split("@", 1)[1].rsplit(":", 2)
        pid = int(pid_text)
    except (IndexError, ValueError):
        return False
    if host != _HOST or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False
