"""Two nodes, a router and a client in network namespaces, for node-death and partition tests (and
``benchmarks/bench_liveness.py``).

Layout (every namespace and veth is made here and removed by ``close``)::

                     router namespace "hub": bridge br0 (the LAN) + redis-server on the management links
      node-a  eth0 ──┤ br0 ├── eth0  node-b         client: eth0 on br0 (watches ARP, keeps a neighbour table)
              mgmt ──┤ redis ├── mgmt

Each node runs one ``streamlb run`` replica and one ``streamlb speak`` inside its namespace, both reaching Redis
over the node's ``mgmt`` link (a management network separate from the service LAN, so each partition can be cut on
its own). The test process reaches the same Redis over a Unix socket. A node "dies" by losing both links and having
its two processes SIGKILLed.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from events import schema, stream
from reconciler import planning, state as statemod
from tests.integration import manifests as m
from tests.integration.speaker_env import Netns, Proc, SpeakProc, Topology, addr, fold_stream, liveness_events, neigh, \
    poke, sh, wait_for, yaml_events

ROOT = Path(__file__).resolve().parents[2]
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
NODES = ("node-a", "node-b")
ROLE = {"node-a": "a", "node-b": "b"}
MACS = {"node-a": "02:00:5e:40:00:0a", "node-b": "02:00:5e:40:00:0b"}
LAN = {"node-a": "10.92.0.1", "node-b": "10.92.0.2"}
MGMT = {"node-a": ("10.93.1.1", "10.93.1.254"), "node-b": ("10.93.2.1", "10.93.2.254")}
CLIENT = "10.92.0.100"
REDIS_PORT = 6379


def config_yaml(n_services: int) -> str:
    return m.docs(m.pool("l2pool", "10.92.0.50-10.92.0.69"), m.l2_advertisement("l2", "l2pool"),
                  *(m.node(n) for n in NODES),
                  *(m.service(f"svc{i}", f"10.96.1.{i + 10}", f"10.244.1.{i + 10}", "node-a") for i in range(n_services)))


class ArpWatch:
    """Every ARP frame the client's eth0 receives, with its arrival time (``time.time()``), from a thread."""

    def __init__(self, ns: Netns) -> None:
        with ns.entered():
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
        self.sock.bind(("eth0", 0x0806))
        self.sock.settimeout(0.2)
        self.frames: list[tuple[float, str, str, str]] = []  # (t, eth src, sender ip, target ip)
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="arpwatch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                data = self.sock.recv(128)
            except socket.timeout:
                continue
            except OSError:
                return
            t = time.time()
            if len(data) < 42:
                continue
            self.frames.append((t, data[6:12].hex(":"), socket.inet_ntoa(data[28:32]), socket.inet_ntoa(data[38:42])))

    def first_garp(self, ip: str, mac: str, after: float) -> float | None:
        """Arrival time of the first gratuitous ARP (sender = target = ``ip``) from ``mac`` after ``after``."""
        for t, src, sip, tip in list(self.frames):
            if t >= after and src == mac and sip == tip == ip:
                return t
        return None

    def garps_from(self, mac: str, after: float, before: float = float("inf")) -> list[tuple[float, str]]:
        return [(t, sip) for t, src, sip, tip in list(self.frames) if after <= t < before and src == mac and sip == tip]

    def close(self) -> None:
        self._stop = True
        self._thread.join(2)
        self.sock.close()


class LivenessCluster:
    """The layout above. ``code_root`` runs another checkout of streamlb (the benchmark's "previous defaults")."""

    def __init__(self, tmp: Path, *, n_services: int = 6, speak_args: tuple[str, ...] = (),
                 run_args: tuple[str, ...] = (), code_root: Path = ROOT, env: dict | None = None,
                 cluster: str = "live") -> None:
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.n_services = n_services
        self.speak_args, self.run_args = tuple(speak_args), tuple(run_args)
        self.code_root = Path(code_root)
        self.env = dict(os.environ, PYTHONPATH=str(self.code_root), **(env or {}))
        self.cluster = cluster
        self.topo = Topology()
        self.ns: dict[str, Netns] = {}
        self.speakers: dict[str, Proc] = {}
        self.replicas: dict[str, Proc] = {}
        self.redis: subprocess.Popen | None = None
        self.watch: ArpWatch | None = None
        self.lg: stream.StreamLog | None = None

    # -- set-up ---------------------------------------------------------------------------------------------------

    def start(self) -> LivenessCluster:
        hub = self.ns["hub"] = self.topo.ns("hub")
        self.topo.bridge(hub)
        for node in NODES:
            r = ROLE[node]
            x = self.ns[node] = self.topo.attach(hub, r, f"{LAN[node]}/24", mac=MACS[node])
            self.topo.link(x, "mgmt", hub, f"mg-{r}")
            addr(x, "mgmt", f"{MGMT[node][0]}/24")
            addr(hub, f"mg-{r}", f"{MGMT[node][1]}/24")
        c = self.ns["client"] = self.topo.attach(hub, "c", f"{CLIENT}/24")
        sock = self.tmp / "redis.sock"
        with open(self.tmp / "redis.out", "wb") as f:
            self.redis = subprocess.Popen(
                ["ip", "netns", "exec", hub.name, REDIS_SERVER, "--port", str(REDIS_PORT), "--bind",
                 *[MGMT[n][1] for n in NODES], "--unixsocket", str(sock), "--unixsocketperm", "777", "--dir",
                 str(self.tmp), "--save", "", "--appendonly", "no", "--daemonize", "no", "--protected-mode", "no"],
                stdout=f, stderr=f)
        wait_for(lambda: sock.exists(), 20, what="redis-server socket")
        self.lg = stream.StreamLog.from_url(f"unix://{sock}", self.cluster)
        wait_for(lambda: self._ping(), 20, what="redis-server answers")
        self.lg.append(yaml_events(self.tmp, config_yaml(self.n_services)))
        self.watch = ArpWatch(c)
        return self

    def _ping(self) -> bool:
        try:
            return bool(self.lg.client.ping())
        except Exception:  # noqa: BLE001 - not up yet
            return False

    def url(self, node: str) -> str:
        return f"redis://{MGMT[node][1]}:{REDIS_PORT}/0"

    def start_node(self, node: str) -> None:
        r = ROLE[node]
        py = [sys.executable, "-m", "reconciler"]
        self.replicas[node] = Proc(self.ns[node], [
            *py, "run", "--redis-url", self.url(node), "--cluster", self.cluster, "--replica", f"run-{r}",
            "--log-format", "json", *self.run_args], self.tmp / f"run-{r}.log", self.env, self.code_root).start()
        self.start_node_speaker(node)

    def start_node_speaker(self, node: str) -> None:
        self.speakers[node] = SpeakProc(
            self.ns[node], node, self.tmp, "--cluster", self.cluster, "--no-bgp", "--exclude-interface", "mgmt",
            *self.speak_args, url=self.url(node), env=self.env, code_root=self.code_root).start()

    def close(self) -> None:
        for p in [*self.speakers.values(), *self.replicas.values()]:
            p.kill()
        if self.watch is not None:
            self.watch.close()
        if self.lg is not None:
            self.lg.close()
        if self.redis is not None and self.redis.poll() is None:
            self.redis.kill()
            self.redis.wait(10)
        self.topo.close()

    # -- actions --------------------------------------------------------------------------------------------------

    def kill_node(self, node: str) -> float:
        """Node death: both links down, then SIGKILL of its speaker and its replica. Returns when it began."""
        t0 = time.time()
        x = self.ns[node]
        sh("ip", "-n", x.name, "link", "set", "eth0", "down")
        sh("ip", "-n", x.name, "link", "set", "mgmt", "down")
        self.speakers[node].kill()
        self.replicas[node].kill()
        return t0

    def revive_node(self, node: str) -> None:
        x = self.ns[node]
        sh("ip", "-n", x.name, "link", "set", "eth0", "up")
        sh("ip", "-n", x.name, "link", "set", "mgmt", "up")
        self.start_node(node)

    def heal(self) -> None:
        """Undo whatever a test left behind: every link up (both ends) and every node's replica and speaker
        running, so that a cluster shared by several tests starts each one whole."""
        for node in NODES:
            x = self.ns[node]
            for ifname in ("eth0", "mgmt"):
                sh("ip", "-n", x.name, "link", "set", ifname, "up")
                self.set_link(node, ifname, True)
            replica, speaker = self.replicas.get(node), self.speakers.get(node)
            if replica is None or not replica.alive():
                if speaker is not None:
                    speaker.kill()
                self.start_node(node)
            elif speaker is None or not speaker.alive():
                self.start_node_speaker(node)

    def set_link(self, node: str, ifname: str, up: bool) -> None:
        """Cut or restore one of a node's links from the router's side (the node's end loses carrier)."""
        port = f"p{ROLE[node]}" if ifname == "eth0" else f"mg-{ROLE[node]}"
        sh("ip", "-n", self.ns["hub"].name, "link", "set", port, "up" if up else "down")

    # -- observations ---------------------------------------------------------------------------------------------

    def state(self) -> statemod.State:
        return fold_stream(self.lg)

    def owners(self, st: statemod.State | None = None) -> dict[str, str]:
        """VIP -> owning node, from an offline fold of the stream (the oracle)."""
        st = st or self.state()
        out = {}
        for node in NODES:
            for ip in planning.node_plan(st, node).l2:
                out[ip] = node
        return out

    def liveness_events(self) -> list[tuple[str, schema.Event]]:
        return [(str(pos), e) for pos, e in liveness_events(self.lg)]

    def neigh(self, ip: str) -> str:
        return neigh(self.ns["client"], ip)

    def poke(self, ip: str) -> None:
        poke(self.ns["client"], ip)

    def status(self, node: str) -> dict:
        return self.speakers[node].status()

    def alive_keys(self) -> set[str]:
        return self.lg.alive_speakers()

    def settled(self) -> dict[str, str] | None:
        """Both speakers beating, the fold has both up, every VIP owned and resolved by the client to its owner."""
        if self.alive_keys() != set(NODES):
            return None
        st = self.state()
        if st.speakers_down:
            return None
        owners = self.owners(st)
        if len(owners) != self.n_services:
            return None
        for ip, node in owners.items():
            if self.neigh(ip) != MACS[node]:
                self.poke(ip)
                return None
        for node in NODES:  # each speaker has applied it (its status file, rewritten every second)
            mine = sorted(ip for ip, n in owners.items() if n == node)
            if sorted((self.status(node).get("l2") or {}).get("announced", [])) != mine:
                return None
        return owners

    def wait_settled(self, timeout: float = 90.0) -> dict[str, str]:
        return wait_for(self.settled, timeout, interval=0.1, what="both nodes up and every VIP at its owner")
