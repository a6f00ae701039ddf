"""Network namespaces, veth pairs and BGP daemons for the speaker's integration tests.

Everything created here has a random ``slb-`` name and is removed by the fixture that made it, also when a test
fails. Daemons are started by PID and stopped by PID.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parents[2]
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def have_root_netns() -> bool:
    return os.geteuid() == 0 and shutil.which("ip") is not None


def wait_for(cond: Callable[[], object], timeout: float = 30.0, interval: float = 0.05, what: str = "condition"):
    """Poll ``cond`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = cond()
        if last:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}; last value: {last!r}")
        time.sleep(interval)


def sh(*cmd: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


class Netns:
    def __init__(self, name: str) -> None:
        self.name = name

    def run(self, *cmd: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess:
        return sh("ip", "netns", "exec", self.name, *cmd, check=check, timeout=timeout)

    def popen(self, *cmd: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.name, *cmd], **kw)

    def socket(self, family: int, type_: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
        """A socket created inside this namespace (it stays bound to it)."""
        with self.entered():
            return socket.socket(family, type_, proto)

    @contextlib.contextmanager
    def entered(self) -> Iterator[None]:
        own = os.open("/proc/self/ns/net", os.O_RDONLY)
        target = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
        try:
            if _libc.setns(target, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns failed")
            try:
                yield
            finally:
                if _libc.setns(own, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), "setns back failed")
        finally:
            os.close(own)
            os.close(target)


class Topology:
    """Namespaces joined by veth pairs; ``close`` removes them all."""

    def __init__(self) -> None:
        self.tag = secrets.token_hex(3)
        self.namespaces: list[Netns] = []
        self.links = 0

    def ns(self, role: str) -> Netns:
        n = Netns(f"slb-{self.tag}-{role}")
        sh("ip", "netns", "add", n.name)
        self.namespaces.append(n)
        n.run("ip", "link", "set", "lo", "up")
        return n

    def link(self, a: Netns, a_if: str, b: Netns, b_if: str) -> None:
        self.links += 1  # temporary names unique per link: a pair of namespaces may have several links
        tmp_a, tmp_b = f"sa{self.tag}{self.links}", f"sb{self.tag}{self.links}"
        sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        sh("ip", "link", "set", tmp_a, "netns", a.name)
        sh("ip", "link", "set", tmp_b, "netns", b.name)
        a.run("ip", "link", "set", tmp_a, "name", a_if)
        b.run("ip", "link", "set", tmp_b, "name", b_if)
        a.run("ip", "link", "set", a_if, "up")
        b.run("ip", "link", "set", b_if, "up")

    def attach(self, hub: Netns, role: str, *addrs: str, mac: str | None = None, bridge: str = "br0") -> Netns:
        """A new namespace for ``role`` whose ``eth0`` is port ``p<role>`` of ``bridge`` in ``hub`` (a host on the
        hub's LAN), with MAC address ``mac`` (else the kernel's) and the addresses ``addrs`` (CIDRs)."""
        x = self.ns(role)
        self.link(x, "eth0", hub, f"p{role}")
        hub.run("ip", "link", "set", f"p{role}", "master", bridge)
        if mac:
            x.run("ip", "link", "set", "eth0", "address", mac)
        for cidr in addrs:
            addr(x, "eth0", cidr)
        return x

    def bridge(self, hub: Netns, name: str = "br0") -> None:
        hub.run("ip", "link", "add", name, "type", "bridge")
        hub.run("ip", "link", "set", name, "up")

    def close(self) -> None:
        for n in reversed(self.namespaces):
            # kill anything still running inside, by PID
            r = sh("ip", "netns", "pids", n.name, check=False)
            for pid in r.stdout.split():
                with contextlib.suppress(ProcessLookupError, ValueError):
                    os.kill(int(pid), signal.SIGKILL)
            sh("ip", "netns", "del", n.name, check=False)
        self.namespaces.clear()


def addr(ns: Netns, ifname: str, cidr: str) -> None:
    if ":" in cidr:
        ns.run("ip", "-6", "addr", "add", cidr, "dev", ifname, "nodad")
    else:
        ns.run("ip", "addr", "add", cidr, "dev", ifname)


def poke(ns: Netns, ip: str) -> None:
    """Send one UDP datagram to ``ip`` from ``ns``: the kernel resolves the address first (ARP / NS)."""
    s = ns.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"x", (ip, 9))
    except OSError:
        pass
    finally:
        s.close()


def neigh(ns: Netns, ip: str) -> str:
    """The link-layer address ``ns`` has for ``ip`` on its ``eth0`` ("" when none)."""
    out = ns.run("ip", "neigh", "show", ip, "dev", "eth0").stdout.split()
    return out[out.index("lladdr") + 1] if "lladdr" in out else ""


def stop_process(p: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    if p.poll() is not None:
        return
    p.send_signal(sig)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(5)


# --- the event log ------------------------------------------------------------------------------------------------


def yaml_events(workdir: Path, text: str) -> list:
    """The events a YAML text of Kubernetes objects becomes (as ``events append`` reads it), via a file of its own
    in ``workdir``."""
    from events import inputs

    path = Path(workdir) / f"in-{time.monotonic_ns()}.yaml"
    path.write_text(text)
    return [o.event for rec in inputs.read_file(path) for o in rec.outcomes if isinstance(o, inputs.Accepted)]


def fold_stream(lg):
    """An offline from-scratch fold of the whole stream ``lg`` (the oracle); entries the daemons dead-letter are
    skipped here too."""
    from events import log as logmod
    from reconciler import fold, state as statemod

    st = statemod.new()
    for rec in lg.read():
        try:
            fold.apply(st, logmod.decode_record(rec))
        except Exception:  # noqa: BLE001 - the daemons dead-letter the same entries
            pass
    return st


def liveness_events(lg) -> list[tuple]:
    """(position, event) of every ``speaker.up`` / ``speaker.down`` in the stream ``lg``, in order."""
    from events import log as logmod, schema

    out = []
    for rec in lg.read():
        try:
            e = logmod.decode_record(rec)
        except Exception:  # noqa: BLE001 - not an event
            continue
        if isinstance(e, (schema.SpeakerUp, schema.SpeakerDown)):
            out.append((rec.position, e))
    return out


class Proc:
    """One daemon, inside namespace ``ns`` or (``ns=None``) in this one, its stderr appended to ``logfile``;
    signalled, stopped and killed by PID (``ip netns exec`` execs the program, so the PID is the daemon's own)."""

    def __init__(self, ns: Netns | None, argv: list[str], logfile: Path, env: dict | None = None,
                 cwd: Path = ROOT) -> None:
        self.ns, self.argv, self.logfile, self.cwd = ns, list(argv), Path(logfile), cwd
        self.env = env if env is not None else dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc: subprocess.Popen | None = None

    def start(self):
        prefix = ["ip", "netns", "exec", self.ns.name] if self.ns is not None else []
        with open(self.logfile, "ab") as f:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([*prefix, *self.argv], stdout=subprocess.DEVNULL, stderr=f, env=self.env,
                                         cwd=self.cwd)
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def send_signal(self, sig: int) -> None:
        if self.alive():
            self.proc.send_signal(sig)

    def kill(self) -> None:
        if self.alive():
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        """Send ``sig`` (a stopped process is continued first) and wait; SIGKILL after ``timeout`` seconds.
        Returns the exit status, or None when it had to be killed or was never started."""
        if not self.alive():
            return None if self.proc is None else self.proc.returncode
        if sig != signal.SIGKILL:
            os.kill(self.proc.pid, signal.SIGCONT)
        os.kill(self.proc.pid, sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return None


class SpeakProc(Proc):
    """``streamlb speak --node NODE`` following Redis (``url``) or an evlog file (``log``), with a JSON log in
    ``WORKDIR/speak-NAME.log`` and its status file ``WORKDIR/NAME.status.json`` (``name`` is the node unless
    given); ``args`` are added as they are."""

    def __init__(self, ns: Netns | None, node: str, workdir: Path, *args: str, url: str | None = None,
                 log: Path | None = None, env: dict | None = None, code_root: Path = ROOT,
                 name: str | None = None) -> None:
        if (url is None) == (log is None):
            raise ValueError("SpeakProc follows either a Redis url or an evlog file")
        self.node, self.dir, name = node, Path(workdir), name or node
        self.status_file = self.dir / f"{name}.status.json"
        source = ["--redis-url", url] if url is not None else ["--log", str(log)]
        argv = [sys.executable, "-m", "reconciler", "speak", "--node", node, *source,
                "--status-file", str(self.status_file), "--log-format", "json", *args]
        env = env if env is not None else dict(os.environ, PYTHONPATH=str(code_root))
        super().__init__(ns, argv, self.dir / f"speak-{name}.log", env, code_root)

    def status(self) -> dict:
        try:
            return json.loads(self.status_file.read_text())
        except (OSError, ValueError):
            return {}


# --- gobgpd -----------------------------------------------------------------------------------------------------


class GoBgp:
    """gobgpd as a passive receiver inside ``ns``; query with the ``gobgp`` CLI over its gRPC port."""

    def __init__(self, ns: Netns, workdir: Path, asn: int, router_id: str, api_port: int = 50051) -> None:
        self.ns, self.dir, self.asn, self.router_id, self.api_port = ns, workdir, asn, router_id, api_port
        self.proc: subprocess.Popen | None = None
        self.neighbors: list[dict] = []

    def neighbor(self, address: str, peer_as: int, password: str | None = None, graceful_restart: bool = True,
                 passive: bool = True) -> None:
        self.neighbors.append(dict(address=address, peer_as=peer_as, password=password, gr=graceful_restart,
                                   passive=passive))

    def _config(self) -> str:
        lines = [
            "[global.config]",
            f"  as = {self.asn}",
            f'  router-id = "{self.router_id}"',
            "  port = 179",
        ]
        for n in self.neighbors:
            lines += [
                "[[neighbors]]",
                "  [neighbors.config]",
                f'    neighbor-address = "{n["address"]}"',
                f"    peer-as = {n['peer_as']}",
            ]
            if n["password"]:
                lines.append(f'    auth-password = "{n["password"]}"')
            lines += ["  [neighbors.transport.config]", f"    passive-mode = {'true' if n['passive'] else 'false'}"]
            lines += ["  [neighbors.timers.config]", "    connect-retry = 1", "    hold-time = 9", "    keepalive-interval = 3",
                      "    idle-hold-time-after-reset = 1"]
            if n["gr"]:
                lines += ["  [neighbors.graceful-restart.config]", "    enabled = true", "    restart-time = 120"]
            for fam in ("ipv4-unicast", "ipv6-unicast"):
                lines += ["  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]", f'      afi-safi-name = "{fam}"']
                if n["gr"]:
                    lines += ["    [neighbors.afi-safis.mp-graceful-restart.config]", "      enabled = true"]
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        conf = self.dir / "gobgpd.toml"
        conf.write_text(self._config())
        with open(self.dir / "gobgpd.log", "ab") as logf:
            self.proc = self.ns.popen(
                "gobgpd", "-f", str(conf), "-t", "toml", "--api-hosts", f"127.0.0.1:{self.api_port}", "-l", "debug",
                stdout=logf, stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self.cli("global", check=False).returncode == 0, 30, what="gobgpd API up")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.ns.run("gobgp", "-u", "127.0.0.1", "-p", str(self.api_port), *args, check=check)

    def neighbor_state(self, address: str) -> str:
        r = self.cli("neighbor", address, "-j", check=False)
        if r.returncode != 0 or not r.stdout.strip():
            return ""
        st = json.loads(r.stdout).get("state", {}).get("session_state", "")
        names = {0: "unknown", 1: "idle", 2: "connect", 3: "active", 4: "opensent", 5: "openconfirm", 6: "established"}
        return names.get(st, str(st).lower())

    def rib(self, family: str = "ipv4") -> dict[str, dict]:
        """prefix -> {"as_path": [...], "next_hop": str, "local_pref": int|None, "communities": [...],
        "large_communities": [...], "stale": bool} for the best path of each prefix."""
        r = self.cli("global", "rib", "-a", family, "-j", check=False)
        if r.returncode != 0 or not r.stdout.strip():
            return {}
        data = json.loads(r.stdout)
        out = {}
        for prefix, paths in data.items():
            p = paths[0]
            info = {"as_path": [], "next_hop": None, "local_pref": None, "communities": [], "large_communities": [],
                    "stale": bool(p.get("stale", False)), "med": None}
            for a in p.get("attrs", []):
                t = a.get("type")
                if t == 2:
                    for seg in a.get("as_paths", []):
                        info["as_path"] += seg.get("asns", [])
                elif t == 3:
                    info["next_hop"] = a.get("nexthop")
                elif t == 5:
                    info["local_pref"] = a.get("value")
                elif t == 4:
                    info["med"] = a.get("metric")
                elif t == 8:
                    info["communities"] = [f"{c >> 16}:{c & 0xFFFF}" for c in a.get("communities", [])]
                elif t == 32:
                    info["large_communities"] = [
                        f"{c['ASN']}:{c['LocalData1']}:{c['LocalData2']}" for c in a.get("value", [])
                    ]
                elif t == 14:
                    info["next_hop"] = a.get("nexthop")
            out[prefix] = info
        return out


# --- BIRD 2 -----------------------------------------------------------------------------------------------------


class Bird:
    """BIRD 2 inside ``ns`` with its own control socket; a passive receiver unless a neighbour says otherwise."""

    def __init__(self, ns: Netns, workdir: Path, asn: int, router_id: str) -> None:
        self.ns, self.dir, self.asn, self.router_id = ns, workdir, asn, router_id
        self.sock = str(workdir / "bird.ctl")
        self.proc: subprocess.Popen | None = None
        self.protocols: list[dict] = []

    def neighbor(
        self, name: str, local: str, address: str, peer_as: int, password: str | None = None, v6: bool = False,
        passive: bool = True,
    ) -> None:
        self.protocols.append(dict(name=name, local=local, address=address, peer_as=peer_as, password=password, v6=v6,
                                   passive=passive))

    def _config(self) -> str:
        out = [f"router id {self.router_id};", "log stderr all;", "protocol device { scan time 1; }"]
        for p in self.protocols:
            chan = "ipv6" if p["v6"] else "ipv4"
            body = [
                f"  local {p['local']} as {self.asn};",
                f"  neighbor {p['address']} as {p['peer_as']};",
                f"  passive {'on' if p['passive'] else 'off'};",
                "  hold time 9;",
                "  connect retry time 1;",
                "  error wait time 1, 2;",
                "  graceful restart on;",
            ]
            if not p["passive"]:
                body.append("  connect delay time 1;")  # first dial 1 s after start (BIRD's default: 5 s)
            if p["password"]:
                body.append(f'  password "{p["password"]}";')
            if p["peer_as"] == self.asn:
                body.append("  direct;")  # iBGP is multihop in BIRD unless told the neighbour is on-link
            body.append(f"  {chan} {{ import all; export none; gateway direct; }};")
            out.append(f"protocol bgp {p['name']} {{\n" + "\n".join(body) + "\n}")
        return "\n".join(out) + "\n"

    def start(self) -> None:
        conf = self.dir / "bird.conf"
        conf.write_text(self._config())
        with open(self.dir / "bird.log", "ab") as logf:
            self.proc = self.ns.popen(
                "bird", "-f", "-c", str(conf), "-s", self.sock, "-P", str(self.dir / "bird.pid"),
                stdout=logf, stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self.cli("show", "status", check=False).returncode == 0, 30, what="BIRD control socket")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.ns.run("birdc", "-s", self.sock, *args, check=check)

    def protocol_state(self, name: str) -> str:
        r = self.cli("show", "protocols", name, check=False)
        for line in r.stdout.splitlines():
            parts = line.split()
            if parts and parts[0] == name:
                return parts[-1] if len(parts) >= 6 else ""
        return ""

    def rib(self, protocol: str) -> dict[str, dict]:
        """prefix -> attributes of the route learned from ``protocol`` (parsed from ``show route all``)."""
        r = self.cli("show", "route", "protocol", protocol, "all", check=False)
        out: dict[str, dict] = {}
        cur = None
        for line in r.stdout.splitlines():
            if not line or line.startswith("BIRD") or line.startswith("Table"):
                continue
            if not line[0].isspace():
                prefix = line.split()[0]
                cur = {"as_path": [], "next_hop": None, "local_pref": None, "communities": [],
                       "large_communities": [], "stale": "stale" in line.lower(), "med": None}
                out[prefix] = cur
                continue
            if cur is None:
                continue
            s = line.strip()
            if s.startswith("BGP.as_path:"):
                cur["as_path"] = [int(x) for x in s.split(":", 1)[1].split()]
            elif s.startswith("BGP.next_hop:"):
                cur["next_hop"] = s.split(":", 1)[1].split()[0]
            elif s.startswith("BGP.local_pref:"):
                cur["local_pref"] = int(s.split(":", 1)[1])
            elif s.startswith("BGP.med:"):
                cur["med"] = int(s.split(":", 1)[1])
            elif s.startswith("BGP.community:"):
                cur["communities"] = [
                    c.strip("() ").replace(",", ":") .replace(" ", "") for c in s.split(":", 1)[1].split(") (")
                ]
            elif s.startswith("BGP.large_community:"):
                cur["large_communities"] = [
                    c.strip("() ").replace(" ", "").replace(",", ":") for c in s.split(":", 1)[1].split(") (")
                ]
        return out


# --- FRR bgpd ---------------------------------------------------------------------------------------------------


class Frr:
    """FRR's bgpd alone (no zebra, no kernel routes) as a passive receiver inside ``ns``; vtysh on its own socket."""

    def __init__(self, ns: Netns, workdir: Path, asn: int, router_id: str) -> None:
        self.ns, self.asn, self.router_id = ns, asn, router_id
        import tempfile

        # bgpd runs as user frr: pytest's tmp_path (mode 0700) is out of its reach, so use a directory of our own
        self.dir = Path(tempfile.mkdtemp(prefix="slb-frr-"))
        os.chmod(self.dir, 0o777)
        self.logdir = workdir
        self.proc: subprocess.Popen | None = None
        self.neighbors: list[dict] = []

    def neighbor(self, address: str, peer_as: int, password: str | None = None) -> None:
        self.neighbors.append(dict(address=address, peer_as=peer_as, password=password))

    def _config(self) -> str:
        out = ["frr defaults traditional", f"router bgp {self.asn}", f" bgp router-id {self.router_id}",
               " no bgp ebgp-requires-policy", " no bgp default ipv4-unicast"]
        for n in self.neighbors:
            out += [f" neighbor {n['address']} remote-as {n['peer_as']}", f" neighbor {n['address']} passive",
                    f" neighbor {n['address']} timers 3 9"]
            if n["password"]:
                out.append(f" neighbor {n['address']} password {n['password']}")
        for fam in ("ipv4", "ipv6"):
            out.append(f" address-family {fam} unicast")
            out += [f"  neighbor {n['address']} activate" for n in self.neighbors]
            out.append(" exit-address-family")
        return "\n".join(out) + "\n"

    def start(self) -> None:
        conf = self.dir / "bgpd.conf"
        conf.write_text(self._config())
        os.chmod(conf, 0o666)
        with open(self.dir / "bgpd.log", "ab") as logf:
            self.proc = self.ns.popen(
                "/usr/lib/frr/bgpd", "-f", str(conf), "-i", str(self.dir / "bgpd.pid"), "--vty_socket", str(self.dir),
                "-Z", "-n", "-u", "frr", "-g", "frr", stdout=logf, stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self.cli("show bgp summary json").returncode == 0, 30, what="FRR bgpd vty")

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        if (self.dir / "bgpd.log").exists():
            shutil.copy(self.dir / "bgpd.log", self.logdir / "frr-bgpd.log")
        shutil.rmtree(self.dir, ignore_errors=True)

    def cli(self, command: str) -> subprocess.CompletedProcess:
        return self.ns.run("vtysh", "--vty_socket", str(self.dir), "-c", command, check=False)

    def rib(self, family: str = "ipv4") -> dict[str, dict]:
        r = self.cli(f"show bgp {family} unicast json")
        try:
            prefixes = sorted(json.loads(r.stdout).get("routes", {}))
        except ValueError:
            return {}
        out = {}
        for p in prefixes:
            try:
                d = json.loads(self.cli(f"show bgp {family} unicast {p} json").stdout)
            except ValueError:
                continue
            paths = d.get("paths") or []
            if not paths:
                continue
            path = paths[0]
            aspath = path.get("aspath", {}).get("string", "")
            nh = (path.get("nexthops") or [{}])[0]
            out[p] = {
                "as_path": [int(x) for x in aspath.split()] if aspath and aspath != "Local" else [],
                "next_hop": nh.get("ip"),
                "local_pref": path.get("locPrf"),
                "communities": path.get("community", {}).get("string", "").split() if path.get("community") else [],
                "large_communities": (path.get("largeCommunity", {}).get("string", "").split()
                                      if path.get("largeCommunity") else []),
                "stale": bool(path.get("stale", False)),
                "med": path.get("metric"),
            }
        return out
