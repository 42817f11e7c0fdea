"""Model versions on disk and the one serving in memory.

`models/<version>/` holds each artifact, `models/CURRENT` names the serving one. Every serving
process polls CURRENT, so a model trained (or rolled back) by any process is picked up by all.
Swapping is one reference assignment: a request holds the model it started with to the end.

What can go wrong on disk, and what the registry does (issue 10):

- A version is a name `versions()` lists, never a path: `rollback` refuses anything else, CURRENT is
  only ever written with such a name, and a CURRENT naming anything else is not followed.
- Every version is verified before it serves (the manifest's sha256 of `model.npz`, finite arrays:
  models/learning/artifact.py). When the version CURRENT names is damaged, a process with no model yet
  (start-up) serves the newest intact version and says so in one ERROR line; a process already
  serving keeps its model. CURRENT is deliberately left naming the damaged version: it is the
  operator's record of what was chosen and what failed, and GetModelStatus/ListModels show what
  actually serves. The next training or RollbackModel writes CURRENT again.
- The watch thread never dies: a failed poll is logged once per distinct problem and the next poll
  tries again; a damaged version is not re-read every poll, only when its files change.
- Customers whose erasure is pending (models/privacy/rights.py) are dropped from every version before
  it is made current (start-up, watch reload, rollback, publish), and a poll that finds the serving
  model holding one re-reads it: no version serves a forgotten customer's vector, even while a Forget
  that a kill interrupted waits to be finished.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import threading
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from models.errors import FailedPrecondition, InvalidArgument, NotFound
from models.learning.artifact import DamagedArtifact, ModelArtifact, write_atomic
from models.serving.embeddings import RankingModel

log = logging.getLogger(__name__)

# What a version name may be: `new_version()`'s names and the like; no separator, no leading dot.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_REPORTED_MAX = 256  # distinct problems remembered so each is logged once (bounded: names vary)


class ModelRegistry:
    def __init__(self, folder: Path, keep: int = 5, forgotten: Callable[[], Collection[str]] = tuple) -> None:
        """`forgotten` gives the ids whose erasure from the kept versions is still pending."""
        self.folder = folder
        self.keep = keep
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # private like the database and the keys
        self._forgotten = forgotten
        self._current: RankingModel | None = None
        self._seen: tuple[object, ...] | None = None  # CURRENT and its version's files, as last acted on
        self._reported: set[str] = set()
        self._lock = threading.Lock()
        self._poke = threading.Event()

    @property
    def current(self) -> RankingModel | None:
        return self._current

    def publish(self, artifact: ModelArtifact) -> RankingModel:
        """Writes a new version, points CURRENT at it, swaps it in, prunes old versions. A model with
        NaN or infinite values is refused before anything is written."""
        problems = artifact.problems()
        if problems:
            raise FailedPrecondition(
                f"the training produced a model that cannot serve ({'; '.join(problems)}); nothing was "
                "published and the serving model is unchanged: lower learning_rate or epochs and train again"
            )
        artifact.save(self.folder / artifact.version)
        model = self._activate(artifact.version, self._servable(artifact))
        self._prune()
        return model

    def rollback(self, version: str) -> RankingModel:
        """Serves a kept version (a name from `versions()`) and points CURRENT at it."""
        name = self.kept(version)
        try:
            model = self._servable(ModelArtifact.load(self.folder / name, ids_as_utf8=True))
        except DamagedArtifact as exc:
            raise FailedPrecondition(
                f"model_version: {exc.message}; choose another version from ListModels"
            ) from exc
        return self._activate(name, model)

    def kept(self, version: str) -> str:
        """`version` if it names a kept version; INVALID_ARGUMENT for anything shaped like a path."""
        if not _NAME.fullmatch(version):
            shown = repr(version[:60]) + ("…" if len(version) > 60 else "")
            raise InvalidArgument(
                "model_version",
                f"must be a version name from ListModels (letters, digits, '.', '_', '-'; no path), "
                f"got {shown}",
            )
        kept = self.versions()
        if version not in kept:
            raise NotFound(f"model_version: {version!r} is not kept (kept: {', '.join(kept) or 'none'})")
        return version

    def versions(self) -> list[str]:
        """Kept versions, newest first (names sort by time)."""
        return sorted(
            (
                p.name
                for p in self.folder.iterdir()
                if _NAME.fullmatch(p.name) and (p / "manifest.json").exists()
            ),
            reverse=True,
        )

    def manifest(self, version: str) -> dict[str, Any]:
        """The version's manifest; only its name when the manifest cannot be read (a damaged version
        still shows in ListModels)."""
        try:
            manifest = json.loads((self.folder / self.kept(version) / "manifest.json").read_text())
        except (OSError, ValueError):
            return {"version": version}
        return manifest if isinstance(manifest, dict) else {"version": version}

    def artifact(self, version: str) -> ModelArtifact:
        """A kept version as stored (verified; `DamagedArtifact` if it is not intact)."""
        return ModelArtifact.load(self.folder / self.kept(version))

    def remove(self, version: str) -> None:
        """Deletes a kept version (a damaged one an erasure cannot rewrite)."""
        shutil.rmtree(self.folder / self.kept(version), ignore_errors=True)

    def refresh(self) -> bool:
        """Serves the version CURRENT names if it is not serving yet, or re-reads the serving one when its
        files changed or it holds a customer whose erasure is pending. True if the model changed."""
        with self._lock:
            # read under the lock: a publish or rollback of this process writes CURRENT and swaps its
            # model in under it, and a poll acting on a read made before that would put the older model
            # back to serve (and make Train answer with the older version) until the next poll
            pointer = self._pointer()
            seen = self._files(pointer)
            stale = self._holds_forgotten(self._current)
            if seen == self._seen and not stale:
                return False
            serving = self._current
            target = pointer if pointer is not None else (serving.version if stale and serving else None)
            if target is None:
                self._seen = seen
                return False
            try:
                model = self._open(target)
            except DamagedArtifact as exc:
                self._seen = seen  # not re-read every poll: only when its files change
                return self._fall_back(target, exc.message)
            # (any other error leaves `_seen` as it was, so the next poll tries again)
            self._seen = seen
            self._current = model
            log.info("model %s loaded", target)
            return True

    def check_soon(self) -> None:
        """Makes the watch thread look now, not at its next period (a Forget on another replica: the
        customer's vector leaves this process's memory at once)."""
        self._poke.set()

    def watch(self, every: float, stop: threading.Event) -> threading.Thread:
        def loop() -> None:
            while not stop.is_set():
                self._poke.wait(every)
                self._poke.clear()
                if stop.is_set():
                    return
                try:
                    self.refresh()
                except Exception as exc:  # the thread must outlive any one bad poll
                    if not stop.is_set():
                        self._report(f"checking for a new model failed ({type(exc).__name__}: {exc})")

        thread = threading.Thread(target=loop, name="model-watch", daemon=True)
        thread.start()
        return thread

    # -- internals --------------------------------------------------------------------------------

    def _open(self, version: str) -> RankingModel:
        if not _NAME.fullmatch(version) or not (self.folder / version / "manifest.json").exists():
            raise DamagedArtifact(f"model {version[:60]!r} is not a kept version")
        return self._servable(ModelArtifact.load(self.folder / version, ids_as_utf8=True))

    def _servable(self, artifact: ModelArtifact) -> RankingModel:
        """The model to serve: without the rows of customers whose erasure is pending."""
        forgotten = self._forgotten()
        if forgotten:
            artifact.without_users(forgotten)
        return RankingModel(artifact)

    def _fall_back(self, named: str, reason: str) -> bool:
        """The version CURRENT names cannot serve: keep what serves, or (nothing serving, or it holds a
        customer being forgotten) serve the newest intact version."""
        serving = self._current
        if serving is not None and not self._holds_forgotten(serving):
            self._report(f"model {named} cannot serve ({reason}); still serving {serving.version}")
            return False
        for version in self.versions():
            if version == named:
                continue
            try:
                model = self._open(version)
            except DamagedArtifact as exc:
                self._report(exc.message)
                continue
            self._current = model
            log.error(
                "model %s named by CURRENT cannot serve (%s); serving %s, the newest intact version. "
                "CURRENT still names %s: a training or RollbackModel chooses again",
                named,
                reason,
                version,
                named,
            )
            return True
        self._current = None  # nothing intact; a model holding a forgotten customer must not serve
        self._report(f"model {named} cannot serve ({reason}) and no other kept version is intact")
        return serving is not None

    def _holds_forgotten(self, model: RankingModel | None) -> bool:
        if model is None:
            return False
        return any(model.user_row(uid) is not None for uid in self._forgotten())

    def _activate(self, version: str, model: RankingModel) -> RankingModel:
        with self._lock:
            write_atomic(self.folder / "CURRENT", version)
            self._current = model
            self._seen = self._files(version)
        log.info("model %s serving", version)
        return model

    def _pointer(self) -> str | None:
        try:
            return (self.folder / "CURRENT").read_text().strip() or None
        except FileNotFoundError:
            return None

    def _files(self, pointer: str | None) -> tuple[object, ...]:
        """What identifies the state of CURRENT and the files of the version it names: a poll acts only
        when this changes (a rewrite by an erasure, a repaired file, a new version)."""
        if pointer is None or not _NAME.fullmatch(pointer):
            return (pointer,)
        stats: list[object] = [pointer]
        for name in ("manifest.json", "model.npz"):
            try:
                st = (self.folder / pointer / name).stat()
                stats.append((st.st_ino, st.st_size, st.st_mtime_ns))
            except OSError:
                stats.append(None)
        return tuple(stats)

    def _report(self, message: str) -> None:
        """Logs a problem once (a poll every few seconds must not repeat it)."""
        if message in self._reported:
            return
        if len(self._reported) >= _REPORTED_MAX:
            self._reported.clear()
        self._reported.add(message)
        log.error("%s", message)

    def _prune(self) -> None:
        serving = self._current.version if self._current is not None else None
        for old in self.versions()[self.keep :]:
            if old != serving:
                shutil.rmtree(self.folder / old, ignore_errors=True)


def new_version() -> str:
    """Sortable by time to the microsecond (trainings are serialised), e.g. 20261122T224059.123456Z."""
    now = time.time()
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{int(now % 1 * 1e6):06d}Z"
