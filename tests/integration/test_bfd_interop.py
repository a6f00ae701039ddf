"""BFD between ``streamlb speak`` and real routers — BIRD 2 and FRR bfdd — in network namespaces.

Layout: the node (namespace ``a``), BIRD, FRR and a spare host ``x`` hang off one bridge in ``hub``, so taking the
node's link down leaves every router's own link up: only BFD can tell them quickly (their BGP hold time is 90 s).
The speaker follows an evlog file holding the MetalLB objects (a BFDProfile, two BGPPeers that use it, a Service).
Observers: BIRD's and FRR's own CLIs (BFD sessions, BGP RIB) and the speaker's status file.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from events.logfile import FileLog
from fastpath import bfd as codec
from tests.integration.bfd_env import BirdBfd, FrrBfd
from tests.integration.speaker_env import SpeakProc, Topology, addr, have_root_netns, wait_for, yaml_events
from tests.integration.test_speaker_speak import service_yaml

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not have_root_netns(), reason="needs root and iproute2 for network namespaces"),
]

NODE, BIRD, FRR, X = "10.91.0.1", "10.91.0.2", "10.91.0.3", "10.91.0.9"
PREFIX = "198.51.100.0/32"


def config(profile: str, multihop_peer: bool = False, peers_yaml: str | None = None) -> str:
    peers = ""
    for name, address in (("bird", BIRD), ("frr", FRR)) if peers_yaml is None else ():
        peers += f"""
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: {name}, namespace: metallb-system}}
spec: {{myASN: 64512, peerASN: 64513, peerAddress: {address}, bfdProfile: fast}}
"""
    if multihop_peer:
        peers += f"""
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: far, namespace: metallb-system}}
spec: {{myASN: 64512, peerASN: 64514, peerAddress: {X}, bfdProfile: fast, ebgpMultiHop: true}}
"""
    peers += peers_yaml or ""
    return f"""
apiVersion: metallb.io/v1beta1
kind: BFDProfile
metadata: {{name: fast, namespace: metallb-system}}
spec: {profile}
---
apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata: {{name: bgppool, namespace: metallb-system}}
spec: {{addresses: [198.51.100.0/28]}}
---
apiVersion: metallb.io/v1beta1
kind: BGPAdvertisement
metadata: {{name: bgp, namespace: metallb-system}}
spec: {{ipAddressPools: [bgppool]}}
---
apiVersion: v1
kind: Node
metadata: {{name: node-a, labels: {{kubernetes.io/hostname: node-a}}}}
{peers}"""


@pytest.fixture
def bfdnet(tmp_path: Path):
    topo = Topology()
    started: list = []
    try:
        hub = topo.ns("hub")
        topo.bridge(hub)
        ns = {}
        for role, ip in (("a", NODE), ("bird", BIRD), ("frr", FRR), ("x", X)):
            ns[role] = topo.attach(hub, role, f"{ip}/24")

        def run(profile: str, *, bird_passive: bool = False, frr_passive: bool = False,
                multihop_peer: bool = False) -> tuple[SpeakProc, BirdBfd, FrrBfd]:
            bird = BirdBfd(ns["bird"], tmp_path / "bird", 64513, BIRD, passive=bird_passive)
            bird.neighbor("node", BIRD, NODE, 64512)
            frr = FrrBfd(ns["frr"], tmp_path, 64513, FRR, passive=frr_passive)
            frr.neighbor(NODE, 64512)
            for r in (bird, frr):
                r.start()
                started.append(r)
            log = tmp_path / "events.evlog"
            evs = yaml_events(tmp_path, config(profile, multihop_peer))
            evs += yaml_events(tmp_path, service_yaml("web", "bgppool", "node-a"))
            FileLog(log).append(evs)
            spk = log_speaker(ns["a"], log, tmp_path).start()
            started.append(spk)
            return spk, bird, frr

        yield {"ns": ns, "run": run, "tmp": tmp_path}
    finally:
        for r in reversed(started):
            r.stop()
        topo.close()


def log_speaker(ns, log: Path, workdir: Path) -> SpeakProc:
    """``streamlb speak --log FILE --no-l2`` for node-a in ``ns`` (no Redis needed: the log is a file)."""
    return SpeakProc(ns, "node-a", workdir, "--no-l2", log=log)


def bfd_status(spk: SpeakProc, peer: str) -> dict:
    return (spk.status().get("bfd") or {}).get(peer, {})


def all_up(spk: SpeakProc, bird: BirdBfd, frr: FrrBfd) -> bool:
    return (bird.bfd_sessions().get(NODE, {}).get("state") == "Up"
            and frr.bfd_peers().get(NODE, {}).get("status") == "up"
            and bfd_status(spk, "bird").get("state") == "Up" and bfd_status(spk, "frr").get("state") == "Up"
            and PREFIX in bird.prefixes("node") and PREFIX in frr.prefixes())


def test_bfd_up_with_bird_and_frr_link_down_withdraws_fast_and_link_back_restores(bfdnet) -> None:
    spk, bird, frr = bfdnet["run"]("{receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3}")
    wait_for(lambda: all_up(spk, bird, frr), 60, what="BFD Up and the route at BIRD and FRR")
    # negotiated intervals, seen from both ends
    b = bird.bfd_sessions()[NODE]
    assert (b["interval"], b["timeout"]) == (0.3, 0.9)
    f = frr.bfd_peers()[NODE]
    assert (f["transmit-interval"], f["receive-interval"], f["remote-transmit-interval"],
            f["remote-receive-interval"], f["remote-detect-multiplier"]) == (300, 300, 300, 300, 3)
    for peer, router_disc in (("bird", None), ("frr", f["id"])):
        s = bfd_status(spk, peer)
        assert (s["transmit_interval_ms"], s["receive_interval_ms"], s["detection_time_ms"]) == (300, 300, 900)
        if router_disc is not None:
            assert s["remote_discriminator"] == router_disc and f["remote-id"] == s["local_discriminator"]
    # node link down: both routers lose the route within detect x interval + 0.5 s (their hold time is 90 s)
    bound = 3 * 0.3 + 0.5
    t0 = time.monotonic()
    bfdnet["ns"]["a"].run("ip", "link", "set", "eth0", "down")
    gone = {}
    while len(gone) < 2 and time.monotonic() - t0 < 10:
        if "bird" not in gone and PREFIX not in bird.prefixes("node"):
            gone["bird"] = time.monotonic() - t0
        if "frr" not in gone and PREFIX not in frr.prefixes():
            gone["frr"] = time.monotonic() - t0
        time.sleep(0.02)
    assert set(gone) == {"bird", "frr"}, gone
    assert max(gone.values()) <= bound, gone
    wait_for(lambda: bfd_status(spk, "bird").get("state") == "Down" and bfd_status(spk, "frr").get("state") == "Down",
             10, what="the speaker's BFD sessions Down")
    # the speaker's own BGP sessions were dropped by BFD (their 90 s hold time cannot have expired)
    wait_for(lambda: all(f"peer {p}: closed BFD down" in spk.logfile.read_text() for p in ("bird", "frr")), 10,
             what="BFD down dropping both BGP sessions")
    assert all(spk.status()["peers"][p]["state"] != "Established" for p in ("bird", "frr"))
    # link back: BFD and the routes return
    bfdnet["ns"]["a"].run("ip", "link", "set", "eth0", "up")
    wait_for(lambda: all_up(spk, bird, frr), 60, what="BFD Up and the route back after the link returned")
    assert bfd_status(spk, "bird")["flaps"] == 1 and bfd_status(spk, "frr")["flaps"] == 1


def _craft(ttl: int, port: int, my_disc: int = 0x5151, state: int = 1) -> bytes:
    return codec.build_control(state, 0, 3, my_disc, 0, 1_000_000, 300_000)


def send_from(ns, dst: str, port: int, ttl: int, pkt: bytes) -> None:
    s = ns.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
        s.bind(("0.0.0.0", 49152 + ttl))
        s.sendto(pkt, (dst, port))
    finally:
        s.close()


def test_passive_mode_and_ttl_rules(bfdnet) -> None:
    """passiveMode (RFC 5880 §6.1): facing a passive BIRD the speaker never speaks first — nothing on the wire, no
    session; facing an active FRR it answers and comes Up. TTL (RFC 5881 §5): a single-hop packet with TTL 254 is
    dropped; the same packet with TTL 255 is taken. Multi-hop (RFC 5883) packets below ``minimumTtl`` are dropped."""
    spk, bird, frr = bfdnet["run"](
        "{receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3, passiveMode: true, minimumTtl: 250}",
        bird_passive=True, multihop_peer=True)
    wait_for(lambda: bfd_status(spk, "frr").get("state") == "Up" and frr.bfd_peers()[NODE]["status"] == "up",
             60, what="passive speaker Up with the active FRR")
    time.sleep(3.0)  # three idle-TX intervals of BIRD: a passive pair stays silent
    s = bfd_status(spk, "bird")
    assert (s["state"], s["packets_out"], s["packets_in"]) == ("Down", 0, 0)
    assert bird.bfd_sessions().get(NODE, {}).get("state") != "Up"
    # single hop, crafted from BIRD's address (the speaker's session for that peer): TTL 254 dropped ...
    x = bfdnet["ns"]["bird"]
    send_from(x, NODE, codec.PORT_SINGLE_HOP, 254, _craft(254, codec.PORT_SINGLE_HOP))
    wait_for(lambda: bfd_status(spk, "bird").get("ttl_dropped") == 1, 10, what="the TTL-254 packet counted")
    s = bfd_status(spk, "bird")
    assert (s["state"], s["packets_in"], s["packets_out"], s["remote_discriminator"]) == ("Down", 0, 0, 0)
    # ... TTL 255 taken: the session moves to Init and the passive end now talks
    send_from(x, NODE, codec.PORT_SINGLE_HOP, 255, _craft(255, codec.PORT_SINGLE_HOP))
    wait_for(lambda: bfd_status(spk, "bird").get("packets_in") == 1, 10, what="the TTL-255 packet taken")
    s = bfd_status(spk, "bird")
    assert s["remote_discriminator"] == 0x5151 and s["state"] in ("Init", "Down") and s["packets_out"] >= 1
    # multi-hop session to X with minimumTtl 250: 249 dropped, 250 taken
    far = bfdnet["ns"]["x"]
    send_from(far, NODE, codec.PORT_MULTI_HOP, 249, _craft(249, codec.PORT_MULTI_HOP, 0x6161))
    wait_for(lambda: bfd_status(spk, "far").get("ttl_dropped") == 1, 10, what="the TTL-249 multi-hop packet counted")
    assert bfd_status(spk, "far")["remote_discriminator"] == 0
    send_from(far, NODE, codec.PORT_MULTI_HOP, 250, _craft(250, codec.PORT_MULTI_HOP, 0x6161))
    wait_for(lambda: bfd_status(spk, "far").get("remote_discriminator") == 0x6161, 10,
             what="the TTL-250 multi-hop packet taken")
    assert bfd_status(spk, "far")["multihop"] is True and bfd_status(spk, "far")["minimum_ttl"] == 250


MH_NODE, MH_GW_A, MH_GW_B, MH_BIRD = "10.93.1.1", "10.93.1.254", "10.93.2.254", "10.93.2.2"


def test_multihop_bfd_with_bird_across_a_router(tmp_path: Path) -> None:
    """RFC 5883: an ``ebgpMultiHop`` peer one router away gets a multi-hop session (UDP 4784). BIRD sends multi-hop
    BFD with the default TTL (64), so its packets arrive with 63: the profile's ``minimumTtl: 63`` takes them (the
    default 254 would drop them, as FRR's would — see the crafted-packet test); the node's link going down makes
    BIRD drop the route within detect x interval + 0.5 s."""
    topo = Topology()
    started: list = []
    try:
        node, gw, rtr = topo.ns("a"), topo.ns("gw"), topo.ns("bird")
        topo.link(node, "eth0", gw, "eth0")
        topo.link(rtr, "eth0", gw, "eth1")
        addr(node, "eth0", f"{MH_NODE}/24")
        addr(gw, "eth0", f"{MH_GW_A}/24")
        addr(gw, "eth1", f"{MH_GW_B}/24")
        addr(rtr, "eth0", f"{MH_BIRD}/24")
        gw.run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        node.run("ip", "route", "add", "default", "via", MH_GW_A)
        rtr.run("ip", "route", "add", "default", "via", MH_GW_B)
        bird = BirdBfd(rtr, tmp_path / "bird", 64513, MH_BIRD,
                       extra=f"protocol static {{ ipv4; route 10.93.1.0/24 via {MH_GW_B}; }}")
        bird.neighbor("node", MH_BIRD, MH_NODE, 64512, multihop=2)
        bird.start()
        started.append(bird)
        peers = f"""
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {{name: bird, namespace: metallb-system}}
spec: {{myASN: 64512, peerASN: 64513, peerAddress: {MH_BIRD}, bfdProfile: fast, ebgpMultiHop: true}}
"""
        log = tmp_path / "events.evlog"
        evs = yaml_events(tmp_path, config(
            "{receiveInterval: 300, transmitInterval: 300, detectMultiplier: 3, minimumTtl: 63}", peers_yaml=peers))
        evs += yaml_events(tmp_path, service_yaml("web", "bgppool", "node-a"))
        FileLog(log).append(evs)
        spk = log_speaker(node, log, tmp_path).start()
        started.append(spk)
        try:
            wait_for(lambda: bird.bfd_sessions().get(MH_NODE, {}).get("state") == "Up"
                     and bfd_status(spk, "bird").get("state") == "Up" and PREFIX in bird.prefixes("node"), 60,
                     what="multi-hop BFD Up and the route at BIRD")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nspeaker: {spk.status().get('bfd')} {spk.status().get('peers')}\n"
                                 f"bird: {bird.cli('show', 'bfd', 'sessions', check=False).stdout}"
                                 f"{bird.cli('show', 'protocols', 'all', 'node', check=False).stdout}"
                                 f"{bird.cli('show', 'route', 'all', check=False).stdout}") from None
        s = bfd_status(spk, "bird")
        assert s["multihop"] is True and s["minimum_ttl"] == 63 and s["ttl_dropped"] == 0 and s["last_ttl"] == 63
        assert (s["transmit_interval_ms"], s["detection_time_ms"]) == (300, 900)
        assert "4784" in rtr.run("ss", "-uan").stdout  # BIRD's multi-hop BFD socket, talking to us
        t0 = time.monotonic()
        node.run("ip", "link", "set", "eth0", "down")
        while PREFIX in bird.prefixes("node") and time.monotonic() - t0 < 10:
            time.sleep(0.02)
        took = time.monotonic() - t0
        assert took <= 3 * 0.3 + 0.5, took
    finally:
        for r in reversed(started):
            r.stop()
        topo.close()


def test_single_hop_bfd_over_ipv6_with_bird(tmp_path: Path) -> None:
    """An IPv6 peer: the session runs over UDP/IPv6 to port 3784 with hop limit 255 both ways (RFC 5881 §5)."""
    topo = Topology()
    started: list = []
    try:
        node, rtr = topo.ns("a"), topo.ns("bird")
        topo.link(node, "eth0", rtr, "eth0")
        addr(node, "eth0", "fd91::1/64")
        addr(rtr, "eth0", "fd91::2/64")
        bird = BirdBfd(rtr, tmp_path / "bird", 64513, "10.94.0.2")
        bird.neighbor("node", "fd91::2", "fd91::1", 64512)
        bird.start()
        started.append(bird)
        peers = """
---
apiVersion: metallb.io/v1beta2
kind: BGPPeer
metadata: {name: bird, namespace: metallb-system}
spec: {myASN: 64512, peerASN: 64513, peerAddress: "fd91::2", bfdProfile: fast, routerID: 10.94.0.1}
"""
        log = tmp_path / "events.evlog"
        FileLog(log).append(yaml_events(tmp_path, config("{receiveInterval: 200, transmitInterval: 200}",
                                                         peers_yaml=peers)))
        spk = log_speaker(node, log, tmp_path).start()
        started.append(spk)
        wait_for(lambda: bird.bfd_sessions().get("fd91::1", {}).get("state") == "Up"
                 and bfd_status(spk, "bird").get("state") == "Up", 60, what="BFD over IPv6 Up at both ends")
        s = bfd_status(spk, "bird")
        # our profile asks 200 ms, BIRD 300 ms: each side transmits at max(own TX, peer's required RX) = 300 ms
        assert (s["last_ttl"], s["transmit_interval_ms"], s["receive_interval_ms"], s["detection_time_ms"]) == (
            255, 300, 300, 900)
        assert bird.bfd_sessions()["fd91::1"]["interval"] == 0.3
    finally:
        for r in reversed(started):
            r.stop()
        topo.close()
