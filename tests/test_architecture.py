"""The structure docs/architecture.md describes holds: who may import what, where SQL lives, and that
every story the code cites is written down (docs/stories.md)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DB_DRIVERS = {"sqlite3", "sqlite_utils", "psycopg", "psycopg_pool"}


def _imports(path: Path) -> set[str]:
    """Every module a file imports (absolute names, first two parts kept where they matter)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def _sources(*folders: str) -> list[Path]:
    return [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py")) if "_pb2" not in p.name]


def test_models_know_nothing_of_grpc_or_the_server() -> None:
    bad = [
        f"{p.relative_to(ROOT)}: {name}"
        for p in _sources("models")
        for name in _imports(p)
        if name.split(".")[0] in {"grpc", "protos", "server", "clients"}
    ]
    assert not bad, "\n".join(bad)


def test_only_the_storage_package_talks_to_a_database() -> None:
    bad = [
        f"{p.relative_to(ROOT)}: imports {name}"
        for p in _sources("models", "server", "clients")
        if "models/storage/" not in p.as_posix()
        for name in _imports(p)
        if name.split(".")[0] in DB_DRIVERS
    ]
    sql = re.compile(
        r"\.execute(many)?\(|\bSELECT\s.+\sFROM\b|\bINSERT\s+(OR\s+\w+\s+)?INTO\b|\bDELETE\s+FROM\b"
    )
    bad += [
        f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
        for p in _sources("models", "server", "clients")
        if "models/storage/" not in p.as_posix()
        for n, line in enumerate(p.read_text().splitlines(), start=1)
        if sql.search(line)
    ]
    assert not bad, "\n".join(bad)


def test_storage_backends_are_reached_only_through_the_interface() -> None:
    """Callers import `models.storage` (the interface and open_storage), never a backend module."""
    bad = [
        f"{p.relative_to(ROOT)}: {name}"
        for p in _sources("models", "server", "clients")
        if "models/storage/" not in p.as_posix()
        for name in _imports(p)
        if name.startswith(("models.storage.sqlite", "models.storage.postgres"))
    ]
    assert not bad, "\n".join(bad)


def test_transport_stays_thin_and_clients_use_only_the_stubs() -> None:
    bad = [
        f"{p.relative_to(ROOT)}: {name}"
        for p in _sources("server/servicers")
        for name in _imports(p)
        if name.startswith("models.storage")
    ]
    # Clients read the one settings table (models/settings.py, standard library only) and nothing else.
    bad += [
        f"{p.relative_to(ROOT)}: {name}"
        for p in _sources("clients")
        for name in _imports(p)
        if name.split(".")[0] in {"models", "server"} and not name.startswith("models.settings")
    ]
    assert not bad, "\n".join(bad)


def test_every_package_is_described_in_the_architecture_doc() -> None:
    doc = (ROOT / "docs/architecture.md").read_text()
    subpackages = (p.parent for p in (ROOT / "models").rglob("__init__.py") if p.parent != ROOT / "models")
    packages = [
        *sorted(p.relative_to(ROOT).as_posix() + "/" for p in subpackages),
        "server/servicers/",
        "server/cli/",
    ]
    missing = [pkg for pkg in packages if pkg not in doc]
    assert not missing, f"docs/architecture.md does not describe: {missing}"
    paths = set(re.findall(r"`((?:models|server|clients|protos|tests)/[\w/]+(?:\.py|\.proto|/))`", doc))
    gone = sorted(p for p in paths if not (ROOT / p).exists())
    assert not gone, f"docs/architecture.md names paths that do not exist: {gone}"


def test_every_story_the_code_cites_is_written_down() -> None:
    stories = (ROOT / "docs/stories.md").read_text()
    written = {int(n) for n in re.findall(r"^## Story (\d+)", stories, flags=re.M)}
    cited: dict[int, str] = {}
    for folder in ("models", "server", "clients", "tests", "protos", "docs"):
        for p in (ROOT / folder).rglob("*"):
            if p.suffix in {".py", ".proto", ".md"} and "_pb2" not in p.name:
                for m in re.finditer(r"\b[Ss]tor(?:y|ies)[ _](\d+)", p.read_text()):
                    cited.setdefault(int(m.group(1)), str(p.relative_to(ROOT)))
    missing = {n: where for n, where in cited.items() if n not in written}
    assert not missing, f"stories cited but not in docs/stories.md: {missing}"
    tests = re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", stories)
    absent = [
        f"{path}::{name}" if name else path
        for path, name in tests
        if not (ROOT / path).exists() or (name and f"def {name}(" not in (ROOT / path).read_text())
    ]
    assert not absent, f"docs/stories.md names tests that do not exist: {absent}"
