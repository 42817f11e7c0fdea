"""Settings are one table: a misspelt SEENEXT_ variable stops the start, and nothing reads one around it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from models.settings import ClientSettings, Settings, SettingsError, declared
from server.cli.main import main

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {".git", ".venv", "node_modules", "var", "build", "__pycache__", ".mypy_cache", ".ruff_cache"}
TEXT_SUFFIXES = {".py", ".md", ".proto", ".toml", ".yaml", ".yml", ".sh", ".json", ".txt"}


def tree_files() -> list[Path]:
    """The repository's own text files: code, docs, protos, build and CI scripts."""
    found = []
    for path in ROOT.rglob("*"):
        parts = set(path.relative_to(ROOT).parts)
        if parts & SKIPPED_DIRS or any(p.endswith(".egg-info") for p in parts) or not path.is_file():
            continue
        if path.suffix in TEXT_SUFFIXES or path.name in ("Makefile", "run"):
            found.append(path)
    return found


@pytest.mark.parametrize(
    "typo, meant",
    [
        ("SEENEXT_EPOCH", "SEENEXT_EPOCHS"),
        ("SEENEXT_DATADIR", "SEENEXT_DATA_DIR"),
        ("SEENEXT_PORTT", "SEENEXT_PORT"),
        ("SEENEXT_CONSENT_DEFAULT_MARKETIN", "SEENEXT_CONSENT_DEFAULT_MARKETING"),
        ("seenext_port", "SEENEXT_PORT"),  # the wrong case is ignored by the reader, so it is a typo too
        ("SEENEXT_API_KY", "SEENEXT_API_KEY"),  # a client variable is suggested as well
    ],
)
def test_a_misspelt_variable_stops_the_start_naming_the_closest_valid_one(typo: str, meant: str) -> None:
    with pytest.raises(SettingsError, match=rf"{typo} \(did you mean {meant}\?\)"):
        Settings.from_env({typo: "1"})
    with pytest.raises(SettingsError, match=rf"{typo} \(did you mean {meant}\?\)"):
        ClientSettings.from_env({typo: "1"})


def test_a_name_far_from_any_setting_is_named_without_a_guess() -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"SEENEXT_ZZZ": "1", "SEENEXT_PORT": "1"})
    assert "SEENEXT_ZZZ;" in str(err.value) and "did you mean" not in str(err.value)


def test_the_server_and_the_clients_share_one_table() -> None:
    """A shell that exports the client key can start the server, and the reverse."""
    assert Settings.from_env({"SEENEXT_API_KEY": "k", "SEENEXT_TLS_CA_FILE": "ca.pem"}) == Settings()
    client = ClientSettings.from_env({"SEENEXT_DATA_DIR": "elsewhere", "SEENEXT_API_KEY": "k"})
    assert client == ClientSettings(api_key="k")


def test_the_command_stops_before_starting_and_says_which_name(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SEENEXT_HOLDOUTS", "0.1")
    with pytest.raises(SystemExit) as stopped:
        main(["settings"])
    assert stopped.value.code == 2
    assert "SEENEXT_HOLDOUTS (did you mean SEENEXT_HOLDOUT?)" in capsys.readouterr().err


def test_log_level_and_the_child_marker_go_through_the_table() -> None:
    settings = Settings.from_env({"SEENEXT_LOG_LEVEL": "debug", "SEENEXT_CHILD": "1"})
    assert settings.log_level == "DEBUG" and settings.child is True
    with pytest.raises(SettingsError, match="SEENEXT_LOG_LEVEL='loud' is not one of DEBUG, INFO"):
        Settings.from_env({"SEENEXT_LOG_LEVEL": "loud"})


def test_seenext_settings_prints_every_user_variable_and_no_internal_one(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["settings"]) == 0
    printed = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    users = {name for name, _, _ in Settings.describe()}
    assert printed == users and {"SEENEXT_API_KEY", "SEENEXT_TLS_CA_FILE", "SEENEXT_LOG_LEVEL"} <= users
    assert "SEENEXT_CHILD" in declared() and "SEENEXT_CHILD" not in users  # internal: declared, not shown


def test_every_variable_the_tree_names_is_declared() -> None:
    """Code, docs, protos and scripts name declared variables only (`SEENEXT_CONSENT_DEFAULT_*`: a prefix)."""
    known = declared()
    undeclared = []
    for path in tree_files():
        if path == Path(__file__).resolve():
            continue  # the typos above are on purpose
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for name in re.findall(r"SEENEXT_[A-Z_]+", line):
                wildcard = name.endswith("_") and any(k.startswith(name) for k in known)
                if name not in known and not wildcard:
                    undeclared.append(f"{path.relative_to(ROOT)}:{n}: {name}")
    assert not undeclared, "\n".join(undeclared)


def test_nothing_reads_a_seenext_variable_around_the_table() -> None:
    """Only models/settings.py reads the environment; the rest is handed a Settings or ClientSettings."""
    reads = re.compile(r"""(environ\.get|getenv|environ\[)\(?\s*["']SEENEXT_""")
    offenders = [
        f"{path.relative_to(ROOT)}:{n}"
        for top in ("models", "server", "clients")
        for path in sorted((ROOT / top).rglob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if reads.search(line)
    ]
    assert not offenders, offenders
