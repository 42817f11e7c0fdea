"""`seenext keys FILE`: the one keys file every replica of a fleet shares (docs/deploy.md)."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from server.auth import DEV_CALLERS, load_keys
from server.cli.main import main


def test_it_writes_a_private_keys_file_a_server_loads_and_never_overwrites_one(tmp_path: Path) -> None:
    path = tmp_path / "fleet" / "keys.json"
    assert main(["keys", str(path)]) == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    entries = json.loads(path.read_text())["keys"]
    assert [e["name"] for e in entries] == list(DEV_CALLERS)
    assert len({e["key"] for e in entries}) == len(entries)  # a fresh key each
    assert len(load_keys(path)) == len(entries)  # what `seenext serve` reads with SEENEXT_KEYS_FILE
    before = path.read_text()
    with pytest.raises(SystemExit, match="exists; not overwritten"):
        main(["keys", str(path)])
    assert path.read_text() == before
