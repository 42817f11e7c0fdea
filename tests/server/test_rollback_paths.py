"""RollbackModel takes version names from ListModels, nothing else (issue 10, point 6): a path to
another data folder, `../..`, a name with a separator or one that is not kept is refused naming
`model_version`, and CURRENT is never written with a path.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import grpc
import pytest

from models.settings import Settings
from protos.seenext.v1 import model_pb2, model_pb2_grpc
from tests.server.test_grpc import loaded  # noqa: F401  (loaded is a fixture)


def rollback(ch: grpc.Channel, version: str) -> model_pb2.ModelStatus:
    return model_pb2_grpc.ModelServiceStub(ch).RollbackModel(
        model_pb2.RollbackModelRequest(model_version=version), timeout=10
    )


def test_rollback_refuses_anything_but_a_kept_version_name(
    loaded: grpc.Channel,  # noqa: F811
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    models = model_pb2_grpc.ModelServiceStub(loaded)
    first = models.GetModelStatus(model_pb2.GetModelStatusRequest()).model_version
    second = models.Train(model_pb2.TrainRequest()).model_version
    current = settings.models_dir / "CURRENT"
    assert current.read_text() == second

    # another data folder holding a complete version (what the campaign served from)
    other = tmp_path_factory.mktemp("another-data-dir") / "models"
    shutil.copytree(settings.models_dir / first, other / "20990101T000000.000000Z")
    invalid = [
        str(other / "20990101T000000.000000Z"),
        str(settings.models_dir / first),  # even this folder's own version, given as a path
        f"../../{other.parent.name}/models/20990101T000000.000000Z",
        f"../{settings.models_dir.name}/{first}",
        f"{first}/..",
        "..",
        ".",
        "a\\b",
        f"{first}\x00",
        "x" * 5000,
    ]
    for version in invalid:
        with pytest.raises(grpc.RpcError) as err:
            rollback(loaded, version)
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT, version[:80]
        assert err.value.details().startswith("model_version"), err.value.details()
        assert len(err.value.details()) < 400  # an oversized value is not echoed whole
        assert current.read_text() == second

    for version in ("20990101T000000.000000Z", "nope", first + "x"):
        with pytest.raises(grpc.RpcError) as err:
            rollback(loaded, version)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
        assert err.value.details().startswith("model_version:") and first in err.value.details()
        assert current.read_text() == second

    assert models.GetModelStatus(model_pb2.GetModelStatusRequest()).model_version == second
    assert rollback(loaded, first).model_version == first
    assert current.read_text() == first and not Path(current.read_text()).is_absolute()
