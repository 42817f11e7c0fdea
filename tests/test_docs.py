"""Documentation that users rely on stays true: every command and every contract element is described."""

from __future__ import annotations

import re
from pathlib import Path

from server.cli.main import _parser

ROOT = Path(__file__).resolve().parents[1]


def test_every_cli_command_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = _parser()._subparsers._group_actions[0].choices  # type: ignore[union-attr]
    missing = [c for c in commands if f"seenext {c}" not in readme]
    assert not missing, f"README.md does not document: {missing}"


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert readme.index("make run") < readme.index("make test") < readme.index("## Calling it")


def test_every_service_rpc_message_and_field_has_a_comment() -> None:
    undocumented = []
    for proto in sorted((ROOT / "protos/seenext/v1").glob("*.proto")):
        lines = proto.read_text().splitlines()
        for n, line in enumerate(lines):
            stripped = line.strip()
            is_decl = re.match(r"(service|rpc|enum)\s", stripped) or re.match(
                r"(repeated\s+|map<.*>\s+)?[\w.]+\s+\w+\s*=\s*\d+;", stripped
            )
            if not is_decl:
                continue
            above = lines[n - 1].strip() if n else ""
            if "//" in stripped or above.startswith("//"):
                continue
            undocumented.append(f"{proto.name}:{n + 1}: {stripped}")
    assert not undocumented, "\n".join(undocumented)
