"""The model artifact: one folder per version holding `model.npz` (arrays only, loaded with
allow_pickle=False) and `manifest.json` (version, time, sizes, metrics, hyper-parameters, and the
sha256 of `model.npz`).

Loading verifies the file against the manifest's checksum and refuses NaN or infinite values, so a
truncated, bit-flipped or empty file is a `DamagedArtifact` with a message, never a raw
BadZipFile/EOFError (issue 10). Rewriting a version in place (an erasure) is safe against a kill at
any point: see `ModelArtifact.save`.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.errors import FailedPrecondition

FORMAT_VERSION = 1
# The float arrays: each must be finite for scores to mean anything.
FLOAT_ARRAYS = (
    "user_vectors",
    "user_biases",
    "item_vectors",
    "item_biases",
    "item_feature_vectors",
    "item_feature_biases",
)


class DamagedArtifact(FailedPrecondition):
    """A version that cannot be served: its file does not match the manifest, cannot be read, or holds
    NaN or infinite values."""


@dataclass
class ModelArtifact:
    version: str
    user_ids: np.ndarray  # str, rows of user_vectors
    user_vectors: np.ndarray  # float32 users x d: user features @ feature embeddings
    user_biases: np.ndarray  # float32 users
    item_ids: np.ndarray  # str, rows of item_vectors
    item_vectors: np.ndarray  # float32 items x d
    item_biases: np.ndarray  # float32 items
    # Embeddings of the non-identity item features, to place items the model has not seen.
    item_feature_names: np.ndarray  # str
    item_feature_vectors: np.ndarray  # float32 features x d
    item_feature_biases: np.ndarray  # float32 features
    manifest: dict[str, Any] = field(default_factory=dict)
    # (folder, sha256) of the file this was loaded from: a rewrite in place need not hash it again
    # (sha256 runs at ~250 MB/s here; a 1M-customer model.npz is ~350 MB).
    loaded_from: tuple[Path, str] | None = field(default=None, repr=False, compare=False)

    def save(self, folder: Path) -> None:
        """Writes the version. A first save writes `model.npz` then the manifest (a version is listed only
        once its manifest exists). A rewrite of a kept version (erasure) first lists the new file's
        checksum beside the old one, then replaces the file, then drops the old checksum: a kill between
        any two steps leaves a version that verifies, holding either the old rows or the new ones."""
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)  # private like the database and the keys
        tmp = folder / "model.tmp.npz"
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb"):
            pass  # created private before numpy writes into it (np.savez keeps an existing file's mode)
        np.savez(
            tmp,
            format_version=np.array(FORMAT_VERSION),
            user_ids=self.user_ids.astype(str),
            user_vectors=self.user_vectors,
            user_biases=self.user_biases,
            item_ids=self.item_ids.astype(str),
            item_vectors=self.item_vectors,
            item_biases=self.item_biases,
            item_feature_names=self.item_feature_names.astype(str),
            item_feature_vectors=self.item_feature_vectors,
            item_feature_biases=self.item_feature_biases,
        )
        _fsync(tmp)
        self.manifest.pop("sha256_replaced", None)
        self.manifest.update(version=self.version, format_version=FORMAT_VERSION, sha256=sha256_file(tmp))
        target, manifest = folder / "model.npz", folder / "manifest.json"
        if target.exists() and manifest.exists():
            old = self.loaded_from[1] if self.loaded_from and self.loaded_from[0] == folder else None
            both = {**self.manifest, "sha256_replaced": old or sha256_file(target)}
            _write_atomic(manifest, json.dumps(both, indent=2, sort_keys=True))
        os.replace(tmp, target)
        _fsync_dir(folder)
        _write_atomic(manifest, json.dumps(self.manifest, indent=2, sort_keys=True))
        self.loaded_from = (folder, self.manifest["sha256"])

    @classmethod
    def load(cls, folder: Path, *, ids_as_utf8: bool = False) -> ModelArtifact:
        """The verified artifact; `DamagedArtifact` names the version and what is wrong with it.

        `ids_as_utf8`: `user_ids` as UTF-8 bytes (numpy `S`), read a slice at a time, for a process that
        serves the model: the file holds them as fixed-width unicode, 4 bytes a character (~100 MB of
        a 1M-customer model), the bytes take a quarter of that and the whole unicode array never
        exists in memory (docs/performance.md, "Serving memory")."""
        name = folder.name
        try:
            manifest = json.loads((folder / "manifest.json").read_text())
            if not isinstance(manifest, dict):
                raise DamagedArtifact(f"model {name}: manifest.json is not a JSON object")
            listed = {manifest.get("sha256"), manifest.get("sha256_replaced")} - {None}
            digest = sha256_file(folder / "model.npz")
            if listed and digest not in listed:  # artifacts written before checksums had none to check
                raise DamagedArtifact(
                    f"model {name}: model.npz does not match the checksum in its manifest "
                    f"(sha256 {digest[:12]}…, expected {manifest.get('sha256', '')[:12]}…): "
                    "the file is truncated or damaged"
                )
            with np.load(folder / "model.npz", allow_pickle=False) as z:
                fmt = int(z["format_version"])
                if fmt != FORMAT_VERSION:
                    raise DamagedArtifact(
                        f"model {name}: model format {fmt} is not supported (expected {FORMAT_VERSION})"
                    )
                arrays = {
                    k: _utf8_column(z, k) if ids_as_utf8 and k == "user_ids" else z[k]
                    for k in z.files
                    if k != "format_version"
                }
            artifact = cls(
                version=manifest["version"], manifest=manifest, loaded_from=(folder, digest), **arrays
            )
        except DamagedArtifact:
            raise
        except Exception as exc:  # whatever bytes are on disk: the version is unreadable
            raise DamagedArtifact(f"model {name}: cannot be read ({type(exc).__name__}: {exc})") from exc
        problems = artifact.problems()
        if problems:
            raise DamagedArtifact(f"model {name}: {'; '.join(problems)}")
        return artifact

    def problems(self) -> list[str]:
        """What makes the arrays unservable: rows that do not line up, NaN or infinite values."""
        out = [f"{n} holds NaN or infinite values" for n in FLOAT_ARRAYS if not _finite(getattr(self, n))]
        for ids, *rows in (
            ("user_ids", "user_vectors", "user_biases"),
            ("item_ids", "item_vectors", "item_biases"),
            ("item_feature_names", "item_feature_vectors", "item_feature_biases"),
        ):
            n = len(getattr(self, ids))
            out += [
                f"{r} has {len(getattr(self, r))} rows for {n} {ids}"
                for r in rows
                if len(getattr(self, r)) != n
            ]
        return out

    def without_users(self, user_ids: Collection[str]) -> int:
        """Drops the rows of these users (an erasure); the number of rows dropped."""
        if not user_ids or not len(self.user_ids):
            return 0
        wanted = sorted(user_ids)
        if self.user_ids.dtype.kind == "S":  # loaded for serving (ids_as_utf8)
            keep = ~np.isin(self.user_ids, np.array([u.encode() for u in wanted], dtype=bytes))
        else:
            keep = ~np.isin(self.user_ids.astype(str), np.array(wanted, dtype=str))
        dropped = int(len(keep) - keep.sum())
        if dropped:
            self.user_ids = self.user_ids[keep]
            self.user_vectors = self.user_vectors[keep]
            self.user_biases = self.user_biases[keep]
        return dropped


_ROWS_PER_SLICE = 65_536


def _utf8_column(npz: Any, key: str) -> np.ndarray:
    """A unicode column of the archive as UTF-8 bytes, decoded a slice of rows at a time: at most one
    slice of the unicode array exists at once, beside the slices' bytes and the result."""
    with npz.zip.open(f"{key}.npy") as fp:
        version = np.lib.format.read_magic(fp)
        shape, _fortran, dtype = (
            np.lib.format.read_array_header_1_0(fp)
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0(fp)
        )
        if dtype.kind != "U" or len(shape) != 1:
            return np.asarray(
                npz[key]
            )  # not what this reads: numpy's own loader (the checks name what is wrong)
        slices = []
        for start in range(0, shape[0], _ROWS_PER_SLICE):
            rows = min(_ROWS_PER_SLICE, shape[0] - start)
            raw = fp.read(rows * dtype.itemsize)
            if len(raw) != rows * dtype.itemsize:
                raise ValueError(f"{key}: the file ends inside row {start + len(raw) // dtype.itemsize}")
            slices.append(np.char.encode(np.frombuffer(raw, dtype=dtype), "utf-8"))
    width = max((a.dtype.itemsize for a in slices), default=1)
    out = np.empty(shape[0], dtype=f"S{width}")
    start = 0
    for a in slices:
        out[start : start + len(a)] = a
        start += len(a)
    return out


def _finite(values: np.ndarray) -> bool:
    """No NaN and no infinity, without an array-sized temporary (min and max carry either)."""
    a = np.asarray(values)
    return a.size == 0 or bool(np.isfinite(a.min()) and np.isfinite(a.max()))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _fsync(path: Path) -> None:
    with open(path, "rb+") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(folder: Path) -> None:
    """Makes a rename in the folder durable (power loss, not only kill -9)."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def write_atomic(path: Path, text: str) -> None:
    """Write a small file so readers see the old or the new content, never half."""
    _write_atomic(path, text)
