"""Real peer daemons for benchmarks: BIRD as the receiving router, gobgpd as the reference sender.

Everything listens on loopback addresses with unprivileged, free ports, in a private temporary directory, and is
stopped by PID in ``close()`` (also on garbage collection of the context manager). Nothing here is used by the
product; it exists so a benchmark can run the same workload through a peer that is not streamlb, in the same run.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
from pathlib import Path

from events import stream


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_low_port(host: str = "127.0.0.1", low: int = 10_000, high: int = 16_384) -> int:
    """A free port in [low, high] (a BGPPeer's peerPort must be at most 16384, as in MetalLB)."""
    import random

    for port in random.Random(os.getpid()).sample(range(low, high + 1), 200):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {low}..{high}")


def have(*tools: str) -> list[str]:
    """The tools of ``tools`` that are missing from PATH."""
    return [t for t in tools if shutil.which(t) is None]


class _Daemon:
    proc: subprocess.Popen | None = None
    workdir: Path

    def _stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop()
        log = getattr(self, "log", None)
        if log is not None:
            log.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


class Bird(_Daemon):
    """BIRD 2 accepting BGP sessions (passive) on ``127.0.0.1:port`` from a set of named senders."""

    def __init__(self, local_as: int, senders: dict[str, tuple[str, int]], port: int | None = None) -> None:
        """``senders``: protocol name -> (source address, AS) of each peer allowed to connect."""
        self.workdir = Path(tempfile.mkdtemp(prefix="slb-bird-"))
        self.port = port or free_port()
        self.ctl = self.workdir / "bird.ctl"
        protos = []
        for name, (addr, asn) in senders.items():
            protos.append(
                f"protocol bgp {name} {{\n"
                f"  local 127.0.0.1 port {self.port} as {local_as};\n"
                f"  neighbor {addr} as {asn};\n"
                "  passive on;\n  multihop;\n"
                "  ipv4 { import all; export none; };\n"
                "  ipv6 { import all; export none; };\n"
                "}\n"
            )
        (self.workdir / "bird.conf").write_text(
            "router id 10.255.0.1;\nprotocol device { }\n" + "".join(protos)
        )
        self.log = open(self.workdir / "bird.log", "wb")
        self.proc = subprocess.Popen(
            ["bird", "-f", "-c", str(self.workdir / "bird.conf"), "-s", str(self.ctl)],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while not self.ctl.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"bird did not start: {(self.workdir / 'bird.log').read_text()}")
            time.sleep(0.02)

    def cmd(self, *args: str) -> str:
        return subprocess.run(
            ["birdc", "-s", str(self.ctl), *args], capture_output=True, text=True, timeout=30
        ).stdout

    _count_re = re.compile(r"(\d+) of (\d+) routes for (\d+) networks in table master4")
    _count6_re = re.compile(r"(\d+) of (\d+) routes for (\d+) networks in table master6")

    def route_count(self, v6: bool = False) -> int:
        m = (self._count6_re if v6 else self._count_re).search(self.cmd("show", "route", "count"))
        return int(m.group(1)) if m else 0

    def established_at(self, proto: str) -> float | None:
        """Wall-clock time (s since the epoch) at which BIRD saw ``proto`` reach Established, or None."""
        out = self.cmd("show", "protocols", proto)
        m = re.search(rf"^{re.escape(proto)}\s+BGP\s+\S+\s+up\s+(\d\d:\d\d:\d\d\.\d+)\s+Established", out, re.M)
        if not m:
            return None
        hh, mm, ss = m.group(1).split(":")
        now = time.time()
        lt = time.localtime(now)
        midnight = time.mktime((lt.tm_year, lt.tm_mon, lt.tm_mday, 0, 0, 0, 0, 0, -1))
        t = midnight + int(hh) * 3600 + int(mm) * 60 + float(ss)
        return t - 86400 if t > now + 60 else t

    def wait_routes(self, n: int, timeout: float, v6: bool = False) -> float:
        """Poll until the table holds ``n`` routes; returns the wall-clock time it was first seen."""
        deadline = time.monotonic() + timeout
        while True:
            if self.route_count(v6) >= n:
                return time.time()
            if time.monotonic() > deadline:
                raise TimeoutError(f"BIRD holds {self.route_count(v6)} of {n} routes after {timeout} s")
            time.sleep(0.005)


def mrt_table_dump(prefixes: list[str], next_hop: str, asn: int, pad: int = 2000) -> bytes:
    """An MRT TABLE_DUMP_V2 (RFC 6396) RIB of IPv4 prefixes with ORIGIN IGP, AS_PATH [asn] and NEXT_HOP.

    ``gobgp mrt inject`` (3.10) drops the tail of its stream when it exits, so the dump ends with ``pad``
    repeats of the last prefix (same attributes: they change nothing in the RIB)."""
    def rec(subtype: int, body: bytes) -> bytes:
        return struct.pack("!IHHI", 0, 13, subtype, len(body)) + body

    nh = ipaddress.IPv4Address(next_hop).packed
    out = bytearray(rec(1, struct.pack("!4sHH", nh, 0, 1) + struct.pack("!B4s4sI", 2, nh, nh, asn)))
    attrs = b"\x40\x01\x01\x00" + b"\x40\x02\x06\x02\x01" + struct.pack("!I", asn) + b"\x40\x03\x04" + nh
    entry_tail = struct.pack("!HHIH", 1, 0, 0, len(attrs)) + attrs
    seq = 0
    for p in prefixes + prefixes[-1:] * pad:
        net = ipaddress.IPv4Network(p)
        plen = net.prefixlen
        out += rec(2, struct.pack("!IB", seq, plen) + net.network_address.packed[: (plen + 7) // 8] + entry_tail)
        seq += 1
    return bytes(out)


class Gobgpd(_Daemon):
    """gobgpd with an API port on loopback and no listening BGP port (it only connects out)."""

    def __init__(self, asn: int, router_id: str) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix="slb-gobgpd-"))
        self.api = free_port()
        self.asn = asn
        (self.workdir / "gobgpd.toml").write_text(
            f'[global.config]\n  as = {asn}\n  router-id = "{router_id}"\n  port = -1\n'
        )
        self.log = open(self.workdir / "gobgpd.log", "wb")
        self.proc = subprocess.Popen(
            ["gobgpd", "-f", str(self.workdir / "gobgpd.toml"), "--api-hosts", f"127.0.0.1:{self.api}",
             "--pprof-disable", "-l", "warn"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 20
        while self.cli("global").returncode != 0:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"gobgpd did not start: {(self.workdir / 'gobgpd.log').read_text()}")
            time.sleep(0.05)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["gobgp", "-p", str(self.api), *args], capture_output=True, text=True, timeout=120)

    def rib_size(self) -> int:
        m = re.search(r"Destination: (\d+)", self.cli("global", "rib", "summary").stdout)
        return int(m.group(1)) if m else 0

    def load(self, prefixes: list[str], next_hop: str, timeout: float = 300) -> None:
        path = self.workdir / "rib.mrt"
        path.write_bytes(mrt_table_dump(prefixes, next_hop, self.asn))
        res = self.cli("mrt", "inject", "global", str(path))
        if res.returncode != 0:
            raise RuntimeError(f"gobgp mrt inject failed: {res.stderr}")
        deadline = time.monotonic() + timeout
        while self.rib_size() < len(prefixes):
            if time.monotonic() > deadline:
                raise TimeoutError(f"gobgpd RIB holds {self.rib_size()} of {len(prefixes)} prefixes")
            time.sleep(0.05)

    def connect(self, remote: str, remote_port: int, peer_as: int, local_addr: str) -> None:
        """Reload gobgpd's configuration with a neighbor (remote-port, local-address need the config file)."""
        conf = self.workdir / "gobgpd.toml"
        conf.write_text(
            conf.read_text()
            + "[[neighbors]]\n  [neighbors.config]\n"
            + f'    neighbor-address = "{remote}"\n    peer-as = {peer_as}\n'
            + "  [neighbors.transport.config]\n"
            + f'    local-address = "{local_addr}"\n    remote-port = {remote_port}\n'
            + "  [neighbors.timers.config]\n    connect-retry = 1\n"
        )
        os.kill(self.proc.pid, signal.SIGHUP)


class Redis:
    """A throwaway redis-server (no persistence) on a free loopback port, stopped by PID in ``close()``."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="bench-redis-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        exe = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", self.dir, "--save", "",
             "--appendonly", "no", "--protected-mode", "no", "--logfile", os.path.join(self.dir, "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        self.url = f"redis://127.0.0.1:{self.port}/0"
        deadline = time.monotonic() + 20
        while True:
            try:
                stream.connect(self.url).ping()
                break
            except Exception:  # noqa: BLE001
                if time.monotonic() > deadline or self.proc.poll() is not None:
                    self.close()
                    raise RuntimeError("redis-server did not start")
                time.sleep(0.05)

    def close(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)
