"""BGP routers that speak BFD, for the BFD interop tests: BIRD 2 (``protocol bfd`` + ``bfd on``) and FRR (zebra,
bgpd and bfdd sharing one zserv socket; ``neighbor X bfd`` + ``bfd profile``). Started and stopped by PID."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from tests.integration.speaker_env import Bird, Netns, stop_process, wait_for


class BirdBfd(Bird):
    """BIRD 2 with a BFD protocol; BGP sessions are passive with a 90 s hold time (unless ``hold``), so only BFD
    can be quick; ``bfd=False`` leaves BFD off on the BGP sessions (the hold-timer baseline)."""

    def __init__(self, ns: Netns, workdir: Path, asn: int, router_id: str, *, interval_ms: int = 300,
                 multiplier: int = 3, passive: bool = False, hold: int = 90, bfd: bool = True,
                 extra: str = "") -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        super().__init__(ns, workdir, asn, router_id)
        self.interval_ms, self.multiplier, self.passive = interval_ms, multiplier, passive
        self.hold, self.bfd, self.extra = hold, bfd, extra
        self.neighbors: list[dict] = []

    def neighbor(self, name: str, local: str, address: str, peer_as: int, multihop: int = 0) -> None:  # type: ignore[override]
        self.neighbors.append(dict(name=name, local=local, address=address, peer_as=peer_as, multihop=multihop,
                                   v6=":" in address))

    def _config(self) -> str:
        opts = (f"interval {self.interval_ms} ms; idle tx interval 1000 ms; multiplier {self.multiplier};"
                + (" passive on;" if self.passive else ""))
        out = [f"router id {self.router_id};", "log stderr all;", "protocol device { scan time 1; }",
               f"protocol bfd {{ interface \"*\" {{ {opts} }}; multihop {{ {opts} }}; }}", self.extra]
        for n in self.neighbors:
            hop = f"  multihop {n['multihop']};" if n["multihop"] else ""
            out.append(
                f"protocol bgp {n['name']} {{\n  local {n['local']} as {self.asn};\n"
                f"  neighbor {n['address']} as {n['peer_as']};\n  passive on;\n  hold time {self.hold};\n"
                f"  error wait time 1, 2;\n  connect retry time 1;\n{hop}\n"
                f"  bfd {'on' if self.bfd else 'off'};\n"
                f"  {'ipv6' if n['v6'] else 'ipv4'} {{ import all; export none; }};\n}}"
            )
        return "\n".join(out) + "\n"

    def bfd_sessions(self) -> dict[str, dict]:
        """address -> {state, interval, timeout} from ``show bfd sessions`` (seconds as BIRD prints them)."""
        out = {}
        for line in self.cli("show", "bfd", "sessions", check=False).stdout.splitlines():
            parts = line.split()
            if len(parts) >= 6 and ("." in parts[0] or ":" in parts[0]) and parts[0][0].isalnum():
                out[parts[0]] = {"state": parts[2], "interval": float(parts[-2]), "timeout": float(parts[-1])}
        return out

    def prefixes(self, protocol: str) -> set[str]:
        r = self.cli("show", "route", "protocol", protocol, check=False)
        return {line.split()[0] for line in r.stdout.splitlines()
                if line and line[0].isdigit() and "/" in line.split()[0]}


class FrrBfd:
    """FRR zebra + bgpd + bfdd in ``ns``; BGP passive with hold 90 s; a BFD profile ``slb`` on every neighbour."""

    def __init__(self, ns: Netns, workdir: Path, asn: int, router_id: str, *, interval_ms: int = 300,
                 multiplier: int = 3, passive: bool = False) -> None:
        self.ns, self.asn, self.router_id = ns, asn, router_id
        self.logdir = workdir
        self.dir = Path(tempfile.mkdtemp(prefix="slb-frrbfd-"))  # the daemons run as user frr
        os.chmod(self.dir, 0o777)
        self.interval_ms, self.multiplier, self.passive = interval_ms, multiplier, passive
        self.neighbors: list[str] = []
        self.peer_as: dict[str, int] = {}
        self.procs: list[subprocess.Popen] = []

    def neighbor(self, address: str, peer_as: int) -> None:
        self.neighbors.append(address)
        self.peer_as[address] = peer_as

    def _config(self, daemon: str) -> str:
        if daemon == "zebra":
            return ""
        if daemon == "bgpd":
            return "\n".join(["frr defaults traditional", *self._bgp()]) + "\n"
        out = ["frr defaults traditional", "bfd", " profile slb",
               f"  receive-interval {self.interval_ms}", f"  transmit-interval {self.interval_ms}",
               f"  detect-multiplier {self.multiplier}"]
        if self.passive:
            out.append("  passive-mode")
        out += [" exit", "exit"]
        return "\n".join(out) + "\n"

    def _bgp(self) -> list[str]:
        out = [f"router bgp {self.asn}", f" bgp router-id {self.router_id}",
               " no bgp ebgp-requires-policy", " no bgp default ipv4-unicast"]
        for a in self.neighbors:
            out += [f" neighbor {a} remote-as {self.peer_as[a]}", f" neighbor {a} passive",
                    f" neighbor {a} timers 30 90", f" neighbor {a} bfd", f" neighbor {a} bfd profile slb"]
        out.append(" address-family ipv4 unicast")
        out += [f"  neighbor {a} activate" for a in self.neighbors]
        out.append(" exit-address-family")
        return out

    def _daemon(self, name: str, *extra: str) -> None:
        conf = self.dir / f"{name}.conf"
        conf.write_text(self._config(name))
        os.chmod(conf, 0o666)
        logf = open(self.dir / f"{name}.log", "ab")  # noqa: SIM115 - closed with the process
        self.procs.append(self.ns.popen(
            f"/usr/lib/frr/{name}", "-f", str(conf), "-i", str(self.dir / f"{name}.pid"), "--vty_socket",
            str(self.dir), "-z", str(self.dir / "zserv.api"), "-u", "frr", "-g", "frr", *extra,
            stdout=logf, stderr=subprocess.STDOUT))
        logf.close()

    def start(self) -> None:
        self._daemon("zebra")
        wait_for(lambda: (self.dir / "zserv.api").exists(), 30, what="zebra's zserv socket")
        self._daemon("bfdd", "--bfdctl", str(self.dir / "bfdd.sock"))
        self._daemon("bgpd")
        wait_for(lambda: self.cli("show bgp summary json").returncode == 0
                 and self.cli("show bfd peers json").returncode == 0, 30, what="FRR bgpd and bfdd vty")

    def stop(self) -> None:
        for p in reversed(self.procs):
            stop_process(p)
        self.procs.clear()
        for f in self.dir.glob("*.log"):
            shutil.copy(f, self.logdir / f"frr-{f.name}")
        shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, command: str) -> subprocess.CompletedProcess:
        return self.ns.run("vtysh", "--vty_socket", str(self.dir), "-c", command, check=False)

    def bfd_peers(self) -> dict[str, dict]:
        try:
            return {p["peer"]: p for p in json.loads(self.cli("show bfd peers json").stdout or "[]")}
        except ValueError:
            return {}

    def prefixes(self) -> set[str]:
        try:
            return set(json.loads(self.cli("show bgp ipv4 unicast json").stdout).get("routes", {}))
        except ValueError:
            return set()
