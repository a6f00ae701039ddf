"""The L2 speaker on real AF_PACKET sockets: two nodes and a client on one bridged segment, all in namespaces
this test creates. The client's kernel (``ip neigh``) and tcpdump/tshark are the independent observers."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from fastpath.emit import rawsock
from fastpath.emit.l2 import L2Speaker, discover_interfaces
from tests.integration.speaker_env import Topology, have_root_netns, neigh, poke, stop_process, wait_for
from tests.integration.test_bgp_interop_sessions import LoopThread

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not have_root_netns(), reason="needs root and iproute2 for network namespaces"),
]

MAC_A, MAC_B = "02:00:5e:10:00:0a", "02:00:5e:10:00:0b"
VIP4, VIP6 = "10.88.0.50", "fd88::50"


@pytest.fixture
def segment():
    topo = Topology()
    try:
        hub = topo.ns("hub")
        topo.bridge(hub)
        nodes = {}
        nodes["a"] = topo.attach(hub, "a", "10.88.0.1/24", mac=MAC_A)
        nodes["b"] = topo.attach(hub, "b", "10.88.0.2/24", mac=MAC_B)
        nodes["c"] = topo.attach(hub, "c", "10.88.0.100/24", "fd88::100/64")
        for n in nodes.values():
            wait_for(lambda n=n: "fe80" in n.run("ip", "-6", "addr", "show", "dev", "eth0").stdout
                     and "tentative" not in n.run("ip", "-6", "addr", "show", "dev", "eth0").stdout,
                     30, what="link-local address")
        yield topo, nodes
    finally:
        topo.close()


_SPEAKERS: list[tuple[LoopThread, L2Speaker]] = []


@pytest.fixture
def loop():
    lt = LoopThread()
    try:
        yield lt
    finally:
        while _SPEAKERS:  # close every AF_PACKET socket the test opened, on the loop that owns them
            owner, sp = _SPEAKERS.pop()
            owner.call(sp.close)
        lt.close()


def make_speaker(lt: LoopThread, ns, **kw) -> L2Speaker:
    def opener(name: str, proto: int):
        with ns.entered():
            return rawsock.open_packet_socket(name, proto)

    def make():
        sp = L2Speaker(discover=lambda: discover_interfaces(netns=ns.name), opener=opener, **kw)
        _SPEAKERS.append((lt, sp))
        sp.start()
        return sp

    return lt.call(make)


class Capture:
    """tcpdump writing a pcap in the client namespace (packet-buffered); tshark reads it."""

    def __init__(self, ns, path: Path, bpf: str = "arp or icmp6") -> None:
        self.path = path
        self.proc = ns.popen("tcpdump", "-i", "eth0", "-U", "-n", "-w", str(path), bpf,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # tcpdump prints "listening on ..." once the capture is live
        line = self.proc.stderr.readline().decode()
        assert "listening" in line, line

    def rows(self, fields: list[str], display_filter: str) -> list[list[str]]:
        args = ["tshark", "-r", str(self.path), "-Y", display_filter, "-T", "fields"]
        for f in fields:
            args += ["-e", f]
        r = subprocess.run(args, capture_output=True, text=True, timeout=60)
        return [line.split("\t") for line in r.stdout.splitlines() if line.strip()]

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc.stderr.close()


def test_garp_burst_count_order_content_and_answers_by_owner_only(segment, loop, tmp_path: Path) -> None:
    topo, n = segment
    cap = Capture(n["c"], tmp_path / "c.pcap")
    try:
        a = make_speaker(loop, n["a"])
        b = make_speaker(loop, n["b"])
        loop.call(lambda: a.announce(VIP4))
        loop.call(lambda: a.announce(VIP6))
        fields = ["eth.src", "eth.dst", "arp.opcode", "arp.src.hw_mac", "arp.src.proto_ipv4", "arp.dst.hw_mac",
                  "arp.dst.proto_ipv4"]
        garp = f"arp.src.proto_ipv4 == {VIP4} && arp.dst.proto_ipv4 == {VIP4}"
        # 5 bursts (t0, +1.1, +2.2, +3.3, +4.4 s) of request + reply
        rows = wait_for(lambda: (r := cap.rows(fields, garp)) and len(r) >= 10 and r, 60, what="10 GARP frames")
        na = wait_for(lambda: (r := cap.rows(["eth.src", "eth.dst", "icmpv6.nd.na.target_address",
                                              "icmpv6.nd.na.flag.o", "icmpv6.nd.na.flag.s", "icmpv6.opt.linkaddr"],
                                             "icmpv6.type == 136")) and len(r) >= 5 and r, 60, what="5 NAs")
        # after the window closes nothing more is sent
        wait_for(lambda: not a.schedule.active(), 30, what="schedule window closed")
        rows = cap.rows(fields, garp)
        assert len(rows) == 10
        assert [r[2] for r in rows] == ["1", "2"] * 5
        for r in rows:
            assert r[0] == MAC_A and r[1] == "ff:ff:ff:ff:ff:ff" and r[3] == MAC_A
            assert r[5] == "ff:ff:ff:ff:ff:ff" and r[4] == r[6] == VIP4
        na = cap.rows(["eth.src", "eth.dst", "icmpv6.nd.na.target_address", "icmpv6.nd.na.flag.o",
                       "icmpv6.nd.na.flag.s", "icmpv6.opt.linkaddr"], "icmpv6.type == 136")
        assert len(na) == 5
        for r in na:
            assert r[0] == MAC_A and r[1] == "33:33:00:00:00:01" and r[2] == VIP6
            assert r[3] in ("1", "True") and r[4] in ("0", "False") and r[5] == MAC_A
        # the client's kernel resolves the VIP to A (requests answered by the owner only)
        poke(n["c"], VIP4)
        assert wait_for(lambda: neigh(n["c"], VIP4), 30, what="neighbour entry") == MAC_A
        poke(n["c"], VIP6)
        assert wait_for(lambda: neigh(n["c"], VIP6), 30, what="IPv6 neighbour entry") == MAC_A
        replies = wait_for(lambda: cap.rows(["eth.src", "eth.dst"], f"arp.opcode == 2 && arp.src.proto_ipv4 == {VIP4}"
                                            " && eth.dst != ff:ff:ff:ff:ff:ff"), 30, what="unicast ARP reply")
        assert {r[0] for r in replies} == {MAC_A}
        assert b.responder.counters.responses_sent == 0
        assert a.responder.counters.responses_sent >= 2
        # withdrawing stops the answers at once: a new request goes unanswered
        loop.call(lambda: a.withdraw(VIP4))
        n["c"].run("ip", "neigh", "flush", "dev", "eth0")
        poke(n["c"], VIP4)
        assert wait_for(lambda: "FAILED" in n["c"].run("ip", "neigh", "show", VIP4).stdout
                        or "INCOMPLETE" in n["c"].run("ip", "neigh", "show", VIP4).stdout, 30, what="unresolved")
        assert neigh(n["c"], VIP4) == ""
    finally:
        cap.stop()


def test_failover_moves_client_neighbour_entry(segment, loop, tmp_path: Path) -> None:
    topo, n = segment
    a = make_speaker(loop, n["a"])
    b = make_speaker(loop, n["b"])
    loop.call(lambda: a.announce(VIP4))
    poke(n["c"], VIP4)
    assert wait_for(lambda: neigh(n["c"], VIP4), 30, what="entry at A") == MAC_A
    cap = Capture(n["c"], tmp_path / "f.pcap")
    try:
        loop.call(a.stop())  # A's speaker dies: no goodbye
        loop.call(lambda: b.announce(VIP4))
        assert wait_for(lambda: neigh(n["c"], VIP4) == MAC_B, 30, what="entry moved to B")
        first = wait_for(lambda: cap.rows(["eth.src"], f"arp.src.proto_ipv4 == {VIP4}"), 30, what="GARP from B")
        assert first[0][0] == MAC_B
    finally:
        cap.stop()


def test_rate_limit_still_serves_every_ip(segment, loop, tmp_path: Path) -> None:
    """With --arp-rate-limit 50, a 40-IP gain is spread over time yet every IP gets its first burst before
    any IP gets a second frame from the limiter's queue."""
    topo, n = segment
    cap = Capture(n["c"], tmp_path / "r.pcap")
    try:
        a = make_speaker(loop, n["a"], rate_limit=50.0, window=1.0)
        ips = [f"10.88.1.{i}" for i in range(1, 41)]
        loop.call(lambda: [a.announce(ip) for ip in ips])
        rows = wait_for(lambda: (r := cap.rows(["arp.src.proto_ipv4", "arp.opcode"], "arp.src.proto_ipv4 == 10.88.1.0/24"))
                        and len(r) >= 80 and r, 60, what="80 frames")
        order = [r[0] for r in rows[:40]]
        assert sorted(order, key=lambda s: int(s.rsplit(".", 1)[1])) == ips  # each IP once in the first 40
        assert all(r[1] == "1" for r in rows[:40])  # requests first for all, then replies
    finally:
        cap.stop()
