"""The conditions a run was measured under: machine, load, versions. Printed beside every figure."""

from __future__ import annotations

import os
import platform
import sqlite3
import sys
from dataclasses import dataclass, field
from importlib import metadata


@dataclass
class Conditions:
    cpus: int
    cpu_model: str
    memory_gb: float
    load_before: tuple[float, float, float]
    python: str
    versions: dict[str, str] = field(default_factory=dict)
    load_after: tuple[float, float, float] | None = None

    @classmethod
    def now(cls) -> Conditions:
        versions = {}
        for dist in ("grpcio", "protobuf", "numpy", "scipy", "pandas", "rectools-lightfm", "sqlite-utils"):
            try:
                versions[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                versions[dist] = "not installed"
        versions["sqlite"] = sqlite3.sqlite_version
        return cls(
            cpus=os.cpu_count() or 0,
            cpu_model=_cpu_model(),
            memory_gb=_memory_gb(),
            load_before=os.getloadavg(),
            python=f"{platform.python_implementation()} {sys.version.split()[0]}",
            versions=versions,
        )

    def finish(self) -> None:
        self.load_after = os.getloadavg()

    def lines(self) -> list[str]:
        after = f", after {_load(self.load_after)}" if self.load_after else ""
        return [
            (
                f"machine: {self.cpus} CPUs ({self.cpu_model}), {self.memory_gb:.0f} GB RAM, "
                f"{platform.system()} {platform.release()}"
            ),
            f"load average (1/5/15 min): before {_load(self.load_before)}{after}",
            f"python: {self.python}; " + ", ".join(f"{k} {v}" for k, v in self.versions.items()),
        ]


def _load(values: tuple[float, float, float] | None) -> str:
    return "/".join(f"{v:.2f}" for v in values) if values else "?"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _memory_gb() -> float:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemTotal:"):
                    return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0
