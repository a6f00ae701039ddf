"""tshark (Wireshark 4.0) as an independent dissector: our ARP/NDP frames and BGP messages, written to a pcap,
read back by tshark, every field compared with what we asked the builders for (not with our own decoder).

BGP messages ride in IPv4/TCP packets to port 179 (scapy wraps them; the BGP bytes are ours). Each test also
requires that tshark reports no malformed packet and no expert warning or error.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import random
import shutil
import subprocess
from pathlib import Path

import pytest

from fastpath import bgp, l2, model
from tests import golden_hex

logging.getLogger("scapy").setLevel(logging.ERROR)
from scapy.layers.inet import IP, TCP  # noqa: E402
from scapy.layers.l2 import Ether  # noqa: E402
from scapy.packet import Raw  # noqa: E402
from scapy.utils import wrpcap  # noqa: E402

pytestmark = pytest.mark.integration

PI_WARN = 0x00600000  # Wireshark expert severity: warnings and errors are at or above this


@pytest.fixture(scope="module")
def tshark() -> str:
    exe = shutil.which("tshark")
    if exe is None:
        pytest.fail("tshark is not installed (scripts/test installs it with apt)")
    return exe


def _flatten(obj, out: dict[str, list[str]]) -> dict[str, list[str]]:
    """tshark's nested JSON → field name → values in packet order (leaf values only)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(value, str):
                out.setdefault(key, []).append(value)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, str):
                        out.setdefault(key, []).append(item)
                    else:
                        _flatten(item, out)
            else:
                _flatten(value, out)
    return out


def dissect(tshark: str, tmp_path: Path, packets: list) -> list[dict[str, list[str]]]:
    pcap = tmp_path / "capture.pcap"
    wrpcap(str(pcap), packets)
    res = subprocess.run([tshark, "-n", "-r", str(pcap), "-T", "json", "--no-duplicate-keys"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    layers = [p["_source"]["layers"] for p in json.loads(res.stdout)]
    assert len(layers) == len(packets)
    flat = []
    for lay in layers:
        assert "_ws.malformed" not in lay, lay
        f = _flatten(lay, {})
        bad = [s for s in f.get("_ws.expert.severity", []) if int(s) >= PI_WARN]
        assert not bad, f.get("_ws.expert.message")
        flat.append(f)
    return flat


def mac_str(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


def tcp(msg: bytes, i: int):
    return Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(
        sport=40000 + i, dport=179, flags="PA", seq=1000, ack=1) / Raw(msg)


# --- layer 2 ---------------------------------------------------------------------------------------------------------


def test_arp_frames(tshark: str, tmp_path: Path) -> None:
    rng = random.Random(7)
    cases = []
    for _ in range(12):
        mac = bytes([rng.randrange(256) & 0xFE] + [rng.randrange(256) for _ in range(5)])
        ip = rng.randrange(1, 2**32 - 1)
        op = rng.choice([1, 2])
        cases.append(("announce", op, mac, ip, None, None, l2.build_arp_announce(op, mac, ip)))
        peer_mac, peer_ip = bytes([2, 0, 0, 0, 0, rng.randrange(256)]), rng.randrange(1, 2**32 - 1)
        cases.append(("reply", 2, mac, ip, peer_mac, peer_ip, l2.build_arp_reply(mac, ip, peer_mac, peer_ip)))
    flat = dissect(tshark, tmp_path, [Ether(c[-1]) for c in cases])
    for (kind, op, mac, ip, peer_mac, peer_ip, frame), f in zip(cases, flat):
        assert len(frame) == 42
        assert f["eth.type"] == ["0x0806"]
        assert f["eth.src"] == [mac_str(mac)]
        assert f["arp.hw.type"] == ["1"] and f["arp.proto.type"] == ["0x0800"]
        assert f["arp.hw.size"] == ["6"] and f["arp.proto.size"] == ["4"]
        assert f["arp.opcode"] == [str(op)]
        assert f["arp.src.hw_mac"] == [mac_str(mac)]
        assert f["arp.src.proto_ipv4"] == [str(ipaddress.IPv4Address(ip))]
        if kind == "announce":
            assert f["eth.dst"] == ["ff:ff:ff:ff:ff:ff"]
            assert f["arp.dst.hw_mac"] == ["ff:ff:ff:ff:ff:ff"]
            assert f["arp.dst.proto_ipv4"] == [str(ipaddress.IPv4Address(ip))]
            assert f["arp.isgratuitous"] == ["1"]  # tshark recognises it as gratuitous (sender IP = target IP)
        else:
            assert f["eth.dst"] == [mac_str(peer_mac)] and f["arp.dst.hw_mac"] == [mac_str(peer_mac)]
            assert f["arp.dst.proto_ipv4"] == [str(ipaddress.IPv4Address(peer_ip))]


def test_arp_burst_buffer(tshark: str, tmp_path: Path) -> None:
    mac = bytes.fromhex("020000000001")
    ips = [0x0AC80064 + i for i in range(16)]
    buf = bytearray(84 * len(ips))
    n = l2.write_arp_burst(buf, mac, ips)
    flat = dissect(tshark, tmp_path, [Ether(bytes(buf[42 * k:42 * (k + 1)])) for k in range(n)])
    assert [f["arp.opcode"][0] for f in flat] == ["1", "2"] * len(ips)
    assert [f["arp.src.proto_ipv4"][0] for f in flat] == [str(ipaddress.IPv4Address(ip)) for ip in ips for _ in (1, 2)]


def test_neighbor_advertisements(tshark: str, tmp_path: Path) -> None:
    rng = random.Random(11)
    cases = []
    for _ in range(12):
        mac = bytes([rng.randrange(256) & 0xFE] + [rng.randrange(256) for _ in range(5)])
        target = (0x20010DB8 << 96) | rng.randrange(2**64)
        cases.append(("unsolicited", mac, target, None, None, l2.build_ndp_advert(mac, target)))
        peer_mac = bytes([2, 0, 0, 0, 0, rng.randrange(256)])
        peer_ip = (0x20010DB8 << 96) | rng.randrange(2**64)
        cases.append(("solicited", mac, target, peer_mac, peer_ip, l2.build_ndp_reply(mac, target, peer_mac, peer_ip)))
    flat = dissect(tshark, tmp_path, [Ether(c[-1]) for c in cases])
    for (kind, mac, target, peer_mac, peer_ip, frame), f in zip(cases, flat):
        assert len(frame) == 86
        assert f["eth.type"] == ["0x86dd"] and f["eth.src"] == [mac_str(mac)]
        assert f["ipv6.version"] == ["6"] and f["ipv6.plen"] == ["32"] and f["ipv6.nxt"] == ["58"]
        assert f["ipv6.hlim"] == ["255"]
        assert f["ipv6.src"] == [str(ipaddress.IPv6Address(l2.link_local(mac)))]
        assert f["icmpv6.type"] == ["136"] and f["icmpv6.code"] == ["0"]
        assert f["icmpv6.checksum.status"] == ["1"]  # tshark recomputed the checksum and found it good
        assert f["icmpv6.nd.na.flag.r"] == ["0"]
        assert f["icmpv6.nd.na.target_address"] == [str(ipaddress.IPv6Address(target))]
        assert f["icmpv6.opt.type"] == ["2"] and f["icmpv6.opt.length"] == ["1"]
        assert f["icmpv6.opt.linkaddr"] == [mac_str(mac)]
        if kind == "unsolicited":
            assert f["eth.dst"] == ["33:33:00:00:00:01"] and f["ipv6.dst"] == ["ff02::1"]
            assert (f["icmpv6.nd.na.flag.s"], f["icmpv6.nd.na.flag.o"]) == (["0"], ["1"])
        else:
            assert f["eth.dst"] == [mac_str(peer_mac)] and f["ipv6.dst"] == [str(ipaddress.IPv6Address(peer_ip))]
            assert (f["icmpv6.nd.na.flag.s"], f["icmpv6.nd.na.flag.o"]) == (["1"], ["0"])


def test_conflict_probes(tshark: str, tmp_path: Path) -> None:
    """ARP probes (RFC 5227 §2.1.1) and DAD neighbour solicitations (RFC 4862 §5.4.2) as tshark reads them."""
    rng = random.Random(5)
    cases = []
    for _ in range(8):
        mac = bytes([rng.randrange(256) & 0xFE] + [rng.randrange(256) for _ in range(5)])
        ip4 = rng.randrange(1, 2**32)
        cases.append((4, mac, ip4, l2.build_arp_probe(mac, ip4)))
        target = (0x20010DB8 << 96) | rng.randrange(2**64)
        cases.append((6, mac, target, l2.build_ns_probe(mac, target)))
    flat = dissect(tshark, tmp_path, [Ether(c[-1]) for c in cases])
    for (version, mac, target, frame), f in zip(cases, flat):
        assert f["eth.src"] == [mac_str(mac)]
        if version == 4:
            assert len(frame) == 42 and f["eth.dst"] == ["ff:ff:ff:ff:ff:ff"] and f["arp.opcode"] == ["1"]
            assert f["arp.src.hw_mac"] == [mac_str(mac)] and f["arp.src.proto_ipv4"] == ["0.0.0.0"]
            assert f["arp.dst.hw_mac"] == ["00:00:00:00:00:00"]
            assert f["arp.dst.proto_ipv4"] == [str(ipaddress.IPv4Address(target))]
            assert f["arp.isprobe"] == ["1"]  # tshark's own RFC 5227 probe detection
            continue
        group = ipaddress.IPv6Address("ff02::1:ff00:0") + (target & 0xFFFFFF)
        assert len(frame) == 78
        assert f["eth.dst"] == ["33:33:" + ":".join(f"{b:02x}" for b in group.packed[12:])]
        assert f["ipv6.src"] == ["::"] and f["ipv6.dst"] == [str(group)] and f["ipv6.hlim"] == ["255"]
        assert f["icmpv6.type"] == ["135"] and f["icmpv6.code"] == ["0"]
        assert f["icmpv6.checksum.status"] == ["1"]
        assert f["icmpv6.nd.ns.target_address"] == [str(ipaddress.IPv6Address(target))]
        assert "icmpv6.opt.type" not in f  # DAD: no source link-layer address option


# --- BGP -------------------------------------------------------------------------------------------------------------


def test_open_messages(tshark: str, tmp_path: Path) -> None:
    cases = [(65002, 90, 0xB9ECF027, "metallb"), (4200000000, 90, 0x0A000001, "metallb"),
             (64512, 180, 0x0A000005, "full"), (4200000001, 0, 0xC0000201, "full")]
    msgs = [bgp.build_open(a, h, r, model.full_capabilities(a) if c == "full" else model.metallb_capabilities(a))
            for a, h, r, c in cases]
    flat = dissect(tshark, tmp_path, [tcp(m, i) for i, m in enumerate(msgs)])
    for (asn, hold, rid, caps), msg, f in zip(cases, msgs, flat):
        assert f["bgp.type"] == ["1"] and f["bgp.length"] == [str(len(msg))]
        assert f["bgp.marker"] == [":".join(["ff"] * 16)]
        assert f["bgp.open.version"] == ["4"]
        assert f["bgp.open.myas"] == [str(asn if asn <= 65535 else 23456)]
        assert f["bgp.open.holdtime"] == [str(hold)]
        assert f["bgp.open.identifier"] == [str(ipaddress.IPv4Address(rid))]
        assert f["bgp.open.opt.param.type"] == ["2"]
        want_types = ["1", "1", "65"] + (["2", "64", "6"] if caps == "full" else [])
        assert f["bgp.cap.type"] == want_types
        assert f["bgp.cap.mp.afi"] == ["1", "2"] and f["bgp.cap.mp.safi"] == ["1", "1"]
        assert f["bgp.cap.4as"] == [str(asn)]
        if caps == "full":
            assert f["bgp.cap.gr.timers.restart_time"] == ["120"]
            assert f["bgp.cap.gr.afi"] == ["1", "2"] and f["bgp.cap.gr.safi"] == ["1", "1"]


def _attr_expect(attrs: model.Attrs) -> list[str]:
    types = [1, 2]
    if attrs.next_hop is not None:
        types.append(3)
    if attrs.med is not None:
        types.append(4)
    if attrs.local_pref is not None:
        types.append(5)
    if attrs.communities:
        types.append(8)
    if attrs.as4_path:
        types.append(17)
    if attrs.large_communities:
        types.append(32)
    return [str(t) for t in types]


def test_updates(tshark: str, tmp_path: Path) -> None:
    rng = random.Random(3)
    cases = []
    for k in range(10):
        local_as = rng.choice([64512, 65000, 4200000000, 4200000123])
        peer_as = local_as if k % 3 == 0 else 65001
        peer_4byte = k % 2 == 0
        attrs = model.make_attrs(
            local_as=local_as, peer_as=peer_as, next_hop=rng.randrange(1, 2**32 - 1),
            communities=tuple(model.community(rng.randrange(1, 65535), rng.randrange(65536)) for _ in range(k % 4)),
            large_communities=tuple((rng.randrange(2**32), rng.randrange(2**32), rng.randrange(2**32))
                                    for _ in range(k % 3)),
            local_pref=rng.choice([None, 200]), med=rng.choice([None, 50]), peer_4byte=peer_4byte,
        )
        plens = [rng.choice([32, 24, 16, 8]) for _ in range(1 + k)]
        prefixes = [(rng.randrange(2**32) >> (32 - n) << (32 - n), n) for n in plens]
        msgs = bgp.pack_updates(prefixes, attrs, as4=peer_4byte)
        assert len(msgs) == 1
        cases.append((attrs, prefixes, peer_4byte, msgs[0]))
    flat = dissect(tshark, tmp_path, [tcp(c[-1], i) for i, c in enumerate(cases)])
    for (attrs, prefixes, peer_4byte, msg), f in zip(cases, flat):
        assert f["bgp.type"] == ["2"] and f["bgp.length"] == [str(len(msg))]
        assert f["bgp.update.withdrawn_routes.length"] == ["0"]
        assert f["bgp.update.path_attribute.type_code"] == _attr_expect(attrs)
        assert f["bgp.update.path_attribute.origin"] == ["0"]
        assert f["bgp.update.path_attribute.next_hop"] == [str(ipaddress.IPv4Address(attrs.next_hop))]
        path = [str(a) for s in attrs.as_path for a in s.asns]
        as4_path = [str(a) for s in attrs.as4_path for a in s.asns]
        got_path = f.get("bgp.update.path_attribute.as_path_segment.as2", []) + f.get(
            "bgp.update.path_attribute.as_path_segment.as4", [])
        assert got_path == path + as4_path
        if path and not peer_4byte:
            assert f["bgp.update.path_attribute.as_path_segment.as2"][0] == path[0]  # 2-octet ASNs on the wire
        assert f.get("bgp.update.path_attribute.multi_exit_disc", []) == ([] if attrs.med is None else [str(attrs.med)])
        assert f.get("bgp.update.path_attribute.local_pref", []) == (
            [] if attrs.local_pref is None else [str(attrs.local_pref)])
        assert f.get("bgp.update.path_attribute.community_as", []) == [str(c >> 16) for c in attrs.communities]
        assert f.get("bgp.update.path_attribute.community_value", []) == [str(c & 0xFFFF) for c in attrs.communities]
        assert f.get("bgp.large_communities.ga", []) == [str(x[0]) for x in attrs.large_communities]
        assert f.get("bgp.large_communities.ldp1", []) == [str(x[1]) for x in attrs.large_communities]
        assert f.get("bgp.large_communities.ldp2", []) == [str(x[2]) for x in attrs.large_communities]
        want = sorted(f"{ipaddress.IPv4Address(a)}/{n}" for a, n in prefixes)
        got = sorted(f"{a}/{n}" for a, n in zip(f["bgp.nlri_prefix"], f["bgp.prefix_length"]))
        assert got == want


def test_packed_updates_and_withdrawals(tshark: str, tmp_path: Path) -> None:
    attrs = model.Attrs(as_path=model.as_sequence(64513), next_hop=0x0AC80001,
                        communities=(model.community(64513, 100),))
    prefixes = [0xC6120000 + i for i in range(2000)]
    msgs = bgp.pack_updates(prefixes, attrs) + bgp.pack_withdrawals(prefixes)
    flat = dissect(tshark, tmp_path, [tcp(m, i) for i, m in enumerate(msgs)])
    announced = [p for f in flat[:3] for p in f["bgp.nlri_prefix"]]
    withdrawn = [p for f in flat[3:] for p in f["bgp.withdrawn_prefix"]]
    want = [str(ipaddress.IPv4Address(p)) for p in prefixes]
    assert [len(f["bgp.nlri_prefix"]) for f in flat[:3]] == [809, 809, 382]
    assert announced == want and withdrawn == want
    assert all(int(f["bgp.length"][0]) <= 4096 for f in flat)


def test_ipv6_and_markers(tshark: str, tmp_path: Path) -> None:
    attrs = model.make_attrs(local_as=65000, peer_as=65001, next_hop=None)
    v6 = [(0x20010DB8 << 96 | i << 64, 64) for i in range(5)]
    gw, ll = 0x20010DB8 << 96 | 1, 0xFE80 << 112 | 1
    msgs = [
        bgp.pack_updates(v6, attrs, afi=2, next_hop=(gw, ll))[0],
        bgp.pack_withdrawals(v6, afi=2)[0],
        bgp.build_end_of_rib(), bgp.build_end_of_rib(2, 1), bgp.build_keepalive(),
        bgp.build_notification(6, 2, b"ab"), bgp.build_route_refresh(2, 1),
    ] + [golden_hex.load(n) for n in golden_hex.names("bgp-")]
    flat = dissect(tshark, tmp_path, [tcp(m, i) for i, m in enumerate(msgs)])
    want6 = [str(ipaddress.IPv6Address(a)) for a, _ in v6]
    reach, unreach, eor4, eor6, ka, notif, rr = flat[:7]
    assert reach["bgp.update.path_attribute.type_code"] == ["1", "2", "14"]
    assert reach["bgp.update.path_attribute.mp_reach_nlri.afi"] == ["2"]
    assert reach["bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6"] == [str(ipaddress.IPv6Address(gw))]
    assert reach["bgp.update.path_attribute.mp_reach_nlri.next_hop.ipv6.link_local"] == ["fe80::1"]
    assert reach["bgp.mp_reach_nlri_ipv6_prefix"] == want6
    assert unreach["bgp.mp_unreach_nlri_ipv6_prefix"] == want6
    assert eor4["bgp.length"] == ["23"] and eor4["bgp.update.path_attributes.length"] == ["0"]
    assert eor6["bgp.update.path_attribute.type_code"] == ["15"]
    assert eor6["bgp.update.path_attribute.mp_unreach_nlri.afi"] == ["2"]
    assert ka["bgp.type"] == ["4"] and ka["bgp.length"] == ["19"]
    assert (notif["bgp.notify.major_error"], notif["bgp.notify.minor_error_cease"]) == (["6"], ["2"])
    assert (rr["bgp.route_refresh.afi"], rr["bgp.route_refresh.safi"]) == (["2"], ["1"])
    for f, m in zip(flat[7:], msgs[7:]):  # MetalLB's vectors dissect cleanly with the right length and type
        assert f["bgp.length"] == [str(len(m))] and f["bgp.type"] == [str(m[18])]


def test_l2_goldens(tshark: str, tmp_path: Path) -> None:
    names = golden_hex.names("l2-")
    flat = dict(zip(names, dissect(tshark, tmp_path, [Ether(golden_hex.load(n)) for n in names])))
    for n in ("l2-garp-request.hex", "l2-garp-reply.hex"):
        f = flat[n]
        assert f["arp.isgratuitous"] == ["1"] and f["arp.src.proto_ipv4"] == f["arp.dst.proto_ipv4"] == ["10.200.0.100"]
        assert f["arp.opcode"] == (["1"] if "request" in n else ["2"])
    assert flat["l2-arp-reply.hex"]["arp.dst.proto_ipv4"] == ["10.200.0.7"]
    for n in ("l2-ndp-unsolicited-na.hex", "l2-ndp-solicited-na.hex"):
        f = flat[n]
        assert f["icmpv6.checksum.status"] == ["1"] and f["icmpv6.nd.na.target_address"] == ["2001:db8::100"]
        assert f["icmpv6.checksum"] == (["0x2864"] if "unsolicited" in n else ["0xd9a7"])
