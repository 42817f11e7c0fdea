"""A served model's customer ids as UTF-8 bytes (models/learning/artifact.py `ids_as_utf8`): the same
customers found at the same rows as with the unicode ids, erasures dropping the same rows, whatever the
characters and wherever the read's slices end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from models.learning import artifact as artifact_module
from models.learning.artifact import ModelArtifact
from models.serving.embeddings import RankingModel
from models.storage.changes import customer_subject

IDS = sorted(
    ["cust-1", "cust-10", "cust-2", "Zoë", "émile@example.com", "客户-7", "a", "a b", "long-" + "x" * 60]
)
ABSENT = ["cust-3", "zoe", "", "客户", "a  b", "émile"]


def saved(folder: Path, ids: list[str]) -> Path:
    n, d = len(ids), 3
    rng = np.random.default_rng(1)
    ModelArtifact(
        version="v1",
        user_ids=np.array(ids),
        user_vectors=rng.standard_normal((n, d)).astype(np.float32),
        user_biases=np.zeros(n, np.float32),
        item_ids=np.array(["i1", "i2"]),
        item_vectors=rng.standard_normal((2, d)).astype(np.float32),
        item_biases=np.zeros(2, np.float32),
        item_feature_names=np.array([], dtype=str),
        item_feature_vectors=np.zeros((0, d), np.float32),
        item_feature_biases=np.zeros(0, np.float32),
    ).save(folder / "v1")
    return folder / "v1"


@pytest.mark.parametrize("rows_per_slice", [1, 2, 4, 65_536])
def test_ids_read_as_utf8_are_the_same_ids_whatever_the_slices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rows_per_slice: int
) -> None:
    monkeypatch.setattr(artifact_module, "_ROWS_PER_SLICE", rows_per_slice)
    folder = saved(tmp_path, IDS)
    as_bytes = ModelArtifact.load(folder, ids_as_utf8=True)
    assert as_bytes.user_ids.dtype.kind == "S"
    assert [b.decode() for b in as_bytes.user_ids.tolist()] == IDS
    assert as_bytes.user_ids.nbytes < ModelArtifact.load(folder).user_ids.nbytes
    np.testing.assert_array_equal(as_bytes.user_vectors, ModelArtifact.load(folder).user_vectors)


def test_a_served_model_finds_every_customer_at_the_same_row(tmp_path: Path) -> None:
    folder = saved(tmp_path, IDS)
    unicode_model = RankingModel(ModelArtifact.load(folder))
    bytes_model = RankingModel(ModelArtifact.load(folder, ids_as_utf8=True))
    for customer in IDS + ABSENT:
        assert bytes_model.user_row(customer) == unicode_model.user_row(customer), customer
    assert [bytes_model.user_row(c) for c in IDS] == list(range(len(IDS)))
    assert all(bytes_model.user_row(c) is None for c in ABSENT)


def test_erasures_drop_the_same_rows_from_either_kind_of_ids(tmp_path: Path) -> None:
    folder = saved(tmp_path, IDS)
    gone = {"Zoë", "客户-7", "not-in-the-model"}
    unicode_artifact = ModelArtifact.load(folder)
    bytes_artifact = ModelArtifact.load(folder, ids_as_utf8=True)
    assert unicode_artifact.without_users(gone) == bytes_artifact.without_users(gone) == 2
    assert [b.decode() for b in bytes_artifact.user_ids.tolist()] == unicode_artifact.user_ids.tolist()
    np.testing.assert_array_equal(bytes_artifact.user_vectors, unicode_artifact.user_vectors)

    model = RankingModel(ModelArtifact.load(folder, ids_as_utf8=True))  # a Forget from another replica
    assert model.forget({customer_subject("émile@example.com"), customer_subject("nobody")}) == 1
    assert model.user_row("émile@example.com") is None
    assert model.user_row("cust-1") == IDS.index("cust-1")
