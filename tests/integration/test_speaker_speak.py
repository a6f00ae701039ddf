"""``streamlb speak`` processes on two nodes (network namespaces), a client and a gobgpd router on one segment,
and a real redis-server (reached over a Unix socket, which crosses namespaces). Observers: the client's kernel
(``ip neigh``), tcpdump + tshark on the client, gobgpd's RIB via its CLI, the speaker's status file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from events import schema, stream
from reconciler import planning
from tests.integration import manifests as m
from tests.integration.speaker_env import GoBgp, SpeakProc, Topology, fold_stream, have_root_netns, liveness_events, \
    neigh, poke, wait_for, yaml_events
from tests.integration.test_speaker_l2 import Capture
from tests.redis_server import RedisServer

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not have_root_netns(), reason="needs root and iproute2 for network namespaces"),
]

ROOT = Path(__file__).resolve().parents[2]
MACS = {"node-a": "02:00:5e:20:00:0a", "node-b": "02:00:5e:20:00:0b"}
ADDRS = {"node-a": "10.89.0.1", "node-b": "10.89.0.2"}
ROUTER = "10.89.0.254"

CONFIG = """
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: l2pool, namespace: metallb-system}
spec: {addresses: [10.89.0.50-10.89.0.59]}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {name: bgppool, namespace: metallb-system}
spec: {addresses: [198.51.100.0/28]}
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata: {name: l2, namespace: metallb-system}
spec: {ipAddressPools: [l2pool]}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {name: bgp, namespace: metallb-system}
spec: {ipAddressPools: [bgppool], communities: ["64512:7"]}
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: router, namespace: metallb-system}
spec:
  myASN: 64512
  peerASN: 64513
  peerAddress: 10.89.0.254
  holdTime: 9s
  nodeSelectors:
    - matchLabels: {kubernetes.io/hostname: node-a}
"""
CONFIG = m.docs(CONFIG, m.node("node-a"), m.node("node-b"))


def service_yaml(name: str, pool: str, node: str) -> str:
    """Service ``name`` from ``pool`` with one endpoint on ``node``; its cluster IP is derived from the name."""
    ip = f"10.96.0.{zlib.crc32(name.encode()) % 200 + 10}"
    return f"\n{m.service(name, ip, '10.244.0.9', node, pool_name=pool)}\n"  # joins with "---" as it is


def speak(ns, node: str, url: str, workdir: Path, *args: str) -> SpeakProc:
    """A (not yet started) speaker following Redis with a short heartbeat TTL, as the tests here want it."""
    return SpeakProc(ns, node, workdir, "--heartbeat-ttl-ms", "1500", *args, url=url)


@pytest.fixture
def cluster(tmp_path: Path):
    topo = Topology()
    redis = RedisServer(tmp_path / "redis", aof=True,
                        extra=["--unixsocket", str(tmp_path / "redis.sock"), "--unixsocketperm", "777"]).start()
    procs: list[SpeakProc] = []
    gob = None
    try:
        hub = topo.ns("hub")
        topo.bridge(hub)
        hub.run("ip", "addr", "add", f"{ROUTER}/24", "dev", "br0")
        n = {}
        for role, node in (("a", "node-a"), ("b", "node-b")):
            n[role] = topo.attach(hub, role, f"{ADDRS[node]}/24", mac=MACS[node])
        n["c"] = topo.attach(hub, "c", "10.89.0.100/24")
        gob = GoBgp(hub, tmp_path, 64513, ROUTER)
        gob.neighbor(ADDRS["node-a"], 64512)
        gob.start()
        url = f"unix://{tmp_path / 'redis.sock'}"
        lg = stream.StreamLog.from_url(url, "spk")

        def speaker(role: str, *extra: str) -> SpeakProc:
            node = {"a": "node-a", "b": "node-b"}[role]
            p = speak(n[role], node, url, tmp_path, "--cluster", "spk", *extra).start()
            procs.append(p)
            return p

        yield {"topo": topo, "ns": n, "redis": redis, "log": lg, "gobgp": gob, "speaker": speaker,
               "tmp": tmp_path}
        lg.close()
    finally:
        for p in procs:
            p.stop(signal.SIGKILL)
        if gob is not None:
            gob.stop()
        topo.close()
        redis.stop()


def expected(lg: stream.StreamLog, node: str) -> tuple[dict, dict]:
    """The node's plan from an offline from-scratch fold of the whole stream (the oracle)."""
    np_ = planning.node_plan(fold_stream(lg), node)
    return np_.l2, np_.bgp


def rib_view(gob: GoBgp) -> dict[str, list[str]]:
    return {p: sorted(v["communities"]) for p, v in gob.rib("ipv4").items()}


def test_speak_end_to_end(cluster) -> None:
    c = cluster
    lg, n, gob, tmp = c["log"], c["ns"], c["gobgp"], c["tmp"]
    lg.append(yaml_events(tmp, CONFIG))
    lg.append(yaml_events(tmp, service_yaml("web", "l2pool", "node-a") + "---" + service_yaml("api", "bgppool",
                                                                                             "node-a")))
    a = c["speaker"]("a")
    b = c["speaker"]("b")
    # both speakers serve and beat (a speaker appends nothing to the stream itself)
    wait_for(lambda: lg.alive_speakers() >= {"node-a", "node-b"}, 60, what="heartbeat keys of both")
    # L2: the owner per the oracle answers; the client's kernel resolves the VIP to it
    l2a, bgpa = expected(lg, "node-a")
    l2b, _ = expected(lg, "node-b")
    owned = {**{ip: "node-a" for ip in l2a}, **{ip: "node-b" for ip in l2b}}
    assert len(owned) == 1, owned
    (vip, owner), = owned.items()
    other = "node-b" if owner == "node-a" else "node-a"
    poke(n["c"], vip)
    assert wait_for(lambda: (poke(n["c"], vip), neigh(n["c"], vip))[1], 60, what="client resolves VIP") == MACS[owner]
    # BGP: gobgpd's RIB equals node-a's plan for peer "router"
    want = {pfx: sorted(cs) for (peer, pfx), (lp, cs) in bgpa.items() if peer == "router"}
    assert want, bgpa
    wait_for(lambda: rib_view(gob) == want, 60, what="gobgpd RIB == node-a plan")
    # status shows the session
    st = wait_for(lambda: (s := a.status()) and s.get("peers", {}).get("router", {}).get("state") == "Established"
                  and s, 30, what="status file shows Established")
    assert st["peers"]["router"]["advertised"] == len(want)
    r = subprocess.run([sys.executable, "-m", "reconciler", "status", "--status-file", str(a.status_file), "-o",
                        "json"], capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
    assert r.returncode == 0 and json.loads(r.stdout)["peers"]["router"]["state"] == "Established"

    # add a Service: announced without restart; then delete one: withdrawn
    lg.append(yaml_events(tmp, service_yaml("api2", "bgppool", "node-b")))
    _, bgpa = expected(lg, "node-a")
    want = {pfx: sorted(cs) for (peer, pfx), (lp, cs) in bgpa.items() if peer == "router"}
    assert len(want) == 2
    wait_for(lambda: rib_view(gob) == want, 60, what="RIB after add")

    # failover by event: speaker.down for the L2 owner moves the VIP; measure event -> first GARP
    cap = Capture(n["c"], tmp / "failover.pcap")
    try:
        (pos,) = lg.append([schema.SpeakerDown(node=owner)])
        assert wait_for(lambda: neigh(n["c"], vip) == MACS[other], 60, what="neighbour entry moved")
        rows = wait_for(lambda: cap.rows(["frame.time_epoch", "eth.src"], f"arp.src.proto_ipv4 == {vip}"), 30,
                        what="GARP from new owner")
        assert rows[0][1] == MACS[other]
        latency_ms = float(rows[0][0]) * 1000 - pos.ms
        print(f"speaker.down -> first GARP: {latency_ms:.1f} ms")
        assert latency_ms >= 0  # (causality; the figure itself is a benchmark)
    finally:
        cap.stop()
    lg.append([schema.SpeakerUp(node=owner)])  # back: the VIP returns to its elected owner
    assert wait_for(lambda: (poke(n["c"], vip), neigh(n["c"], vip))[1] == MACS[owner], 60, what="VIP back at owner")
    # node-a's BGP session went away while its speaker was "down" and comes back with it
    wait_for(lambda: rib_view(gob) == want, 60, what="RIB back after speaker.up")

    # Redis outage: the wire keeps the last decisions; the status reports it; the speaker resumes afterwards
    c["redis"].kill()
    wait_for(lambda: a.status().get("log_up") is False, 60, what="status reports log down")
    n["c"].run("ip", "neigh", "flush", "dev", "eth0")
    assert wait_for(lambda: (poke(n["c"], vip), neigh(n["c"], vip))[1], 30, what="still answering") == MACS[owner]
    assert rib_view(gob) == want
    c["redis"].start()
    wait_for(lambda: a.status().get("log_up") is True, 60, what="status reports log up again")
    lg2 = stream.StreamLog.from_url(f"unix://{tmp / 'redis.sock'}", "spk")
    lg2.append(yaml_events(tmp, service_yaml("api3", "bgppool", "node-a")))
    _, bgpa = expected(lg2, "node-a")
    want = {pfx: sorted(cs) for (peer, pfx), (lp, cs) in bgpa.items() if peer == "router"}
    assert len(want) == 3
    wait_for(lambda: rib_view(gob) == want, 60, what="RIB after Redis came back")

    # SIGTERM: BGP withdrawn, heartbeat key deleted (a `streamlb run` replica would append speaker.down at once)
    assert a.stop() == 0
    wait_for(lambda: rib_view(gob) == {}, 60, what="routes withdrawn on SIGTERM")
    assert "node-a" not in lg2.alive_speakers()
    assert not any(isinstance(e, schema.SpeakerDown) and e.node == "node-a" and p > pos
                   for p, e in liveness_events(lg2))
    lg2.close()
    assert b.alive()


def test_keep_on_exit_keeps_routes_and_restart_reannounces(cluster) -> None:
    c = cluster
    lg, n, gob, tmp = c["log"], c["ns"], c["gobgp"], c["tmp"]
    lg.append(yaml_events(tmp, CONFIG))
    lg.append(yaml_events(tmp, service_yaml("api", "bgppool", "node-a")))
    a = c["speaker"]("a", "--keep-on-exit", "--no-l2")
    _, bgpa = expected(lg, "node-a")
    want = {pfx: sorted(cs) for (peer, pfx), (lp, cs) in bgpa.items() if peer == "router"}
    wait_for(lambda: rib_view(gob) == want, 60, what="initial RIB")
    assert a.stop() == 0
    wait_for(lambda: gob.neighbor_state(ADDRS["node-a"]) != "established", 30, what="session down")
    rib = gob.rib("ipv4")
    assert {p: sorted(v["communities"]) for p, v in rib.items()} == want and all(v["stale"] for v in rib.values())
    assert not any(isinstance(e, schema.SpeakerDown) for _, e in liveness_events(lg))
    # a restarted speaker re-announces from the current decisions; End-of-RIB clears the stale marks
    c["speaker"]("a", "--no-l2")
    wait_for(lambda: (r := gob.rib("ipv4")) and not any(v["stale"] for v in r.values())
             and {p: sorted(v["communities"]) for p, v in r.items()} == want, 60, what="routes refreshed")


def test_killed_owner_heartbeat_expires_and_other_node_takes_over(cluster) -> None:
    """kill -9 of the owner's speaker: its heartbeat key expires, the leader of ``streamlb run`` appends
    speaker.down, the other speaker takes the VIP and the client's neighbour entry moves."""
    from tests.redis_server import DaemonProc

    c = cluster
    lg, n, tmp = c["log"], c["ns"], c["tmp"]
    lg.append(yaml_events(tmp, CONFIG))
    lg.append(yaml_events(tmp, service_yaml("web", "l2pool", "node-a")))
    url = f"unix://{tmp / 'redis.sock'}"
    run = DaemonProc(tmp / "run", url, "spk", "leader", "--monitor-interval", "0.2", "--speaker-ttl", "2").start()
    try:
        sp = {"node-a": c["speaker"]("a", "--no-bgp"), "node-b": c["speaker"]("b", "--no-bgp")}
        wait_for(lambda: lg.alive_speakers() >= {"node-a", "node-b"}, 60, what="heartbeat keys of both")
        l2a, _ = expected(lg, "node-a")
        owner = "node-a" if l2a else "node-b"
        other = "node-b" if owner == "node-a" else "node-a"
        (vip,) = (l2a or expected(lg, "node-b")[0]).keys()
        assert wait_for(lambda: (poke(n["c"], vip), neigh(n["c"], vip))[1], 60, what="resolved") == MACS[owner]
        sp[owner].stop(signal.SIGKILL)
        wait_for(lambda: any(isinstance(e, schema.SpeakerDown) and e.node == owner for _, e in liveness_events(lg)),
                 60, what="leader appends speaker.down after the heartbeat expired")
        assert wait_for(lambda: neigh(n["c"], vip) == MACS[other], 60, what="neighbour entry moved to the other node")
        assert run.alive()
    finally:
        run.stop()
