"""Throwaway redis-server processes for tests: free loopback port, own data directory, stopped by PID.

Used by the Redis contract run and the integration tests. Every server is started by this module and stopped by
its PID (never by name); ``stop`` escalates SIGTERM -> SIGKILL with bounded waits.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_cluster_port() -> int:
    """A free port P <= 55535 whose cluster bus port P + 10000 is free too (Redis Cluster's rule)."""
    import random

    rng = random.Random()
    for _ in range(200):
        p = rng.randrange(20000, 55535)
        try:
            with socket.socket() as a, socket.socket() as b:
                a.bind(("127.0.0.1", p))
                b.bind(("127.0.0.1", p + 10000))
            return p
        except OSError:
            continue
    raise RuntimeError("no free port pair for a Redis Cluster node")


class RedisServer:
    def __init__(self, workdir: Path, *, port: int | None = None, aof: bool = False, save: bool = False,
                 extra: list[str] | None = None) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.aof = aof
        self.save = save
        self.extra = list(extra or [])
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def argv(self) -> list[str]:
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
                "--daemonize", "no", "--protected-mode", "no", "--logfile", str(self.dir / "redis.log")]
        args += ["--appendonly", "yes", "--appendfsync", "always"] if self.aof else ["--appendonly", "no"]
        args += ["--save", "60 1"] if self.save else ["--save", ""]
        return args + self.extra

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                log = (self.dir / "redis.log").read_text() if (self.dir / "redis.log").exists() else ""
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}: {log[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(64).startswith(b"+PONG"):
                        return
            except OSError:
                pass
            time.sleep(0.02)
        raise RuntimeError(f"redis-server on port {self.port} not ready after {timeout}s")

    def kill(self) -> None:
        """SIGKILL (a crash: nothing flushed beyond what AOF already wrote)."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def restart(self) -> None:
        self.start()


import pytest  # noqa: E402


@pytest.fixture
def redis_server(tmp_path_factory: pytest.TempPathFactory):
    """A fresh redis-server (no persistence) on a free port, stopped by PID afterwards."""
    srv = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield srv
    srv.stop()


ROOT = Path(__file__).resolve().parents[1]


class DaemonProc:
    """A ``streamlb run`` subprocess with a checkpoint file; stopped (or killed) by PID."""

    def __init__(self, workdir: Path, url: str, cluster: str, name: str, *args: str) -> None:
        self.dir = Path(workdir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.url, self.cluster, self.name, self.args = url, cluster, name, list(args)
        self.checkpoints = self.dir / f"{name}.checkpoints.jsonl"
        self.logfile = self.dir / f"{name}.log"
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> DaemonProc:
        import sys

        env = dict(os.environ, PYTHONPATH=str(ROOT))
        argv = [sys.executable, "-m", "reconciler", "run", "--redis-url", self.url, "--cluster", self.cluster,
                "--replica", self.name, "--checkpoint-file", str(self.checkpoints), "--log-format", "json",
                *self.args]
        with open(self.logfile, "ab") as logf:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=logf, env=env, cwd=ROOT)
        self.starts += 1
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int | None:
        if not self.alive():
            return self.proc.returncode if self.proc else None
        os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            return None

    def read_checkpoints(self) -> list[dict]:
        import json

        if not self.checkpoints.exists():
            return []
        out = []
        for line in self.checkpoints.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:  # a line torn by kill -9
                pass
        return out

    def log_lines(self) -> list[dict]:
        import json

        out = []
        for line in self.logfile.read_text(errors="replace").splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"msg": line})
        return out

    def count(self, msg: str) -> int:
        return sum(1 for x in self.log_lines() if x.get("msg") == msg)

    def wait_log(self, msg: str, n: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while self.count(msg) < n:
            if time.monotonic() > deadline or not self.alive():
                raise AssertionError(f"daemon {self.name}: no {n}th {msg!r} line")
            time.sleep(0.02)

    def wait_idle_at(self, pos: str, timeout: float = 60.0) -> dict:
        """Wait for an idle checkpoint at ``pos`` (the daemon caught up to it); return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for cp in reversed(self.read_checkpoints()):
                if cp["kind"] == "idle" and cp["pos"] == pos:
                    return cp
            if not self.alive():
                raise AssertionError(f"daemon {self.name} exited: {self.logfile.read_text()[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"daemon {self.name} not idle at {pos} after {timeout}s; "
                             f"last checkpoints {self.read_checkpoints()[-3:]}")


@pytest.fixture
def daemons(tmp_path: Path):
    """``make(url, cluster, name, *args)`` -> a ``streamlb run`` process handle; all stopped at teardown."""
    started: list[DaemonProc] = []

    def make(url: str, cluster: str, name: str, *args: str) -> DaemonProc:
        d = DaemonProc(tmp_path / "daemons", url, cluster, name, *args)
        started.append(d)
        return d

    yield make
    for d in started:
        d.stop()
