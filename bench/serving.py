"""A seenext server in its own process(es), as `python -m server serve` runs it, for the load tests.

Picks a free port, waits until the standard health check answers SERVING, and reads what the
kernel knows about the serving processes (CPU time, peak resident memory) from /proc.
"""

from __future__ import annotations

import json
import os
import random
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Self

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    """A port nothing listens on now, below the kernel's ephemeral range.

    SO_REUSEPORT servers need a fixed port, not 0. A port the kernel hands out for port 0 could be
    given to another program's server (tests on the same machine bind port 0 with SO_REUSEPORT too)
    between our check and our bind; the kernel would then share the port between both servers.
    Ports below the ephemeral range are never handed out that way.
    """
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 32768
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(10_000, max(low, 10_001))
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError(f"no free port found between 10000 and {low}")


class ServerProcess:
    """`python -m server serve` with SEENEXT_* settings; a context manager that stops it on exit.

    API keys are checked as in production: the server gets a keys file with one key of every scope,
    and `metadata` is what a caller sends with it.
    """

    def __init__(
        self, data_dir: Path, processes: int = 1, log_path: Path | None = None, **settings: object
    ) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.processes = processes
        key = secrets.token_urlsafe(24)
        keys_file = data_dir / f"bench-keys-{self.port}.json"
        keys_file.write_text(json.dumps({"keys": [{"name": "bench", "key": key, "scopes": ["*"]}]}))
        keys_file.chmod(0o600)
        self.metadata = (("authorization", f"Bearer {key}"),)
        env = dict(
            os.environ,
            SEENEXT_DATA_DIR=str(data_dir),
            SEENEXT_HOST="127.0.0.1",
            SEENEXT_AUTH="1",
            SEENEXT_KEYS_FILE=str(keys_file),
            SEENEXT_PORT=str(self.port),
            SEENEXT_PROCESSES=str(processes),
            SEENEXT_DEMO="0",
            SEENEXT_LOG_LEVEL="WARNING",
            PYTHONPATH=str(ROOT),
        )
        env.pop("SEENEXT_CHILD", None)
        env.update({f"SEENEXT_{k.upper()}": str(v) for k, v in settings.items()})
        # Kept open for the server's lifetime (its stdout and stderr); closed in stop().
        self._log = open(log_path or data_dir / f"server-{self.port}.log", "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "server", "serve"],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def __enter__(self) -> Self:
        try:
            self.wait_serving()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_serving(self, timeout: float = 120.0) -> None:
        """Polls grpc.health.v1 Health/Check until SERVING (every serving process, when several)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the server exited with {self.proc.returncode}; see {self._log.name}")
            if len(self.serving_pids()) == self.processes and self._healthy():
                return
            time.sleep(0.2)
        raise TimeoutError(
            f"the server on {self.target} was not SERVING after {timeout:.0f}s; see {self._log.name}"
        )

    def _healthy(self) -> bool:
        # Each new channel is a new connection, which SO_REUSEPORT hands to any of the processes;
        # with 4 per process, two processes are both checked but for a 1-in-128 chance.
        for _ in range(4 * self.processes):
            with grpc.insecure_channel(self.target, options=[("grpc.use_local_subchannel_pool", 1)]) as ch:
                try:
                    reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=2)
                except grpc.RpcError:
                    return False
                if reply.status != health_pb2.HealthCheckResponse.SERVING:
                    return False
        return True

    def serving_pids(self) -> list[int]:
        """The processes that serve: the server itself, or the children of `serve --processes N`."""
        if self.processes <= 1:
            return [self.proc.pid]
        try:
            text = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text()
        except OSError:
            return []
        return [int(p) for p in text.split()]

    def cpu_seconds(self) -> dict[int, float]:
        """User + system CPU seconds used so far by each serving process."""
        out = {}
        for pid in self.serving_pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / _TICKS
        return out

    def memory_kb(self) -> dict[str, int]:
        """VmHWM (peak resident set) and VmRSS of the first serving process, in kB."""
        pid = self.serving_pids()[0]
        values = {}
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                values[key] = int(rest.split()[0])
        return values

    def check_alive(self) -> None:
        """Raises with the end of the server's log if it has exited (a load run's errors would say why)."""
        if self.proc.poll() is None:
            return
        self._log.flush()
        tail = Path(self._log.name).read_text()[-2000:]
        raise RuntimeError(
            f"the server on {self.target} exited with {self.proc.returncode}; its log ends:\n{tail}"
        )

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
