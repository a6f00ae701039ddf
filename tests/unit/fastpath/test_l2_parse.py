"""The responder's parsers: what they accept, and a named drop reason for everything else."""

from __future__ import annotations

import logging
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastpath import l2
from fastpath.constants import DropReason
from fastpath.model import ArpFrame, ArpRequest, FrameError, NdpFrame, NeighborSolicitation
from tests import strategies_fastpath as fst

logging.getLogger("scapy").setLevel(logging.ERROR)
from scapy.layers.inet6 import ICMPv6ND_NS, ICMPv6NDOptSrcLLAddr, IPv6  # noqa: E402
from scapy.layers.l2 import ARP, Ether  # noqa: E402

IFACE = bytes.fromhex("020000000001")
REQ_MAC = "02:00:00:00:00:99"


def arp(op: int = 1, dst: str = "ff:ff:ff:ff:ff:ff", **kw) -> bytes:
    return bytes(Ether(dst=dst, src=REQ_MAC) / ARP(op=op, hwsrc=REQ_MAC, psrc="10.0.0.7", pdst="10.0.0.100", **kw))


def ns(slla: bool = True, hlim: int = 255, src: str = "2001:db8::7", tgt: str = "2001:db8::100",
       dst_mac: str = "33:33:ff:00:01:00", code: int = 0) -> bytes:
    pkt = Ether(dst=dst_mac, src=REQ_MAC) / IPv6(src=src, dst="ff02::1:ff00:100", hlim=hlim) / ICMPv6ND_NS(tgt=tgt, code=code)
    if slla:
        pkt = pkt / ICMPv6NDOptSrcLLAddr(lladdr=REQ_MAC)
    return bytes(pkt)


def test_arp_request_accepted() -> None:
    got = l2.parse_arp_request(arp(), IFACE)
    assert got == ArpRequest(eth_src=bytes.fromhex("020000000099"), sender_mac=bytes.fromhex("020000000099"),
                             sender_ip=0x0A000007, target_ip=0x0A000064)


def test_arp_request_to_our_mac_accepted() -> None:
    assert isinstance(l2.parse_arp_request(arp(dst="02:00:00:00:00:01"), IFACE), ArpRequest)


def test_padded_arp_request_accepted() -> None:
    assert isinstance(l2.parse_arp_request(arp() + b"\0" * 18, IFACE), ArpRequest)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (arp()[:41], DropReason.TRUNCATED),
        (arp(op=2), DropReason.NOT_ARP_REQUEST),
        (arp(dst="02:00:00:00:00:02"), DropReason.NOT_FOR_US),
        (arp()[:12] + b"\x08\x00" + arp()[14:], DropReason.NOT_ARP),
        (arp()[:18] + b"\x08" + arp()[19:], DropReason.BAD_ARP_HEADER),
        (arp()[:14] + b"\x00\x06" + arp()[16:], DropReason.BAD_ARP_HEADER),
    ],
)
def test_arp_drop_reasons(frame: bytes, reason: DropReason) -> None:
    assert l2.parse_arp_request(frame, IFACE) is reason


def test_ns_accepted() -> None:
    got = l2.parse_neighbor_solicitation(ns(), IFACE)
    assert got == NeighborSolicitation(
        eth_src=bytes.fromhex("020000000099"), src_ip=0x20010DB8 << 96 | 7,
        dst_ip=0xFF02_0000_0000_0000_0000_0001_FF00_0100,
        target=0x20010DB8 << 96 | 0x100, source_lla=bytes.fromhex("020000000099"),
    )


def test_ns_to_our_mac_accepted() -> None:
    assert isinstance(l2.parse_neighbor_solicitation(ns(dst_mac="02:00:00:00:00:01"), IFACE), NeighborSolicitation)


def _corrupt_checksum(frame: bytes) -> bytes:
    return frame[:56] + bytes([frame[56] ^ 0xFF]) + frame[57:]


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (ns(slla=False), DropReason.NO_SOURCE_LL_ADDRESS),  # includes DAD probes
        (ns(slla=False, src="::"), DropReason.NO_SOURCE_LL_ADDRESS),
        (ns(hlim=64), DropReason.BAD_HOP_LIMIT),
        (ns(code=1), DropReason.BAD_ICMP_CODE),
        (_corrupt_checksum(ns()), DropReason.BAD_CHECKSUM),
        (ns(tgt="ff02::1"), DropReason.MULTICAST_TARGET),
        (ns(dst_mac="02:00:00:00:00:02"), DropReason.NOT_FOR_US),
        (ns()[:60], DropReason.TRUNCATED),
        (arp(), DropReason.NOT_IPV6),
        (ns()[:20] + b"\x11" + ns()[21:], DropReason.NOT_ICMPV6),
    ],
)
def test_ns_drop_reasons(frame: bytes, reason: DropReason) -> None:
    assert l2.parse_neighbor_solicitation(frame, IFACE) is reason


def test_ns_zero_length_option_dropped() -> None:
    f = ns()
    bad = f[:-7] + b"\x00" + f[-6:]  # option length 0 (RFC 4861 §7.1.1); fix the checksum so only that is wrong
    assert l2.parse_neighbor_solicitation(bad, IFACE) is DropReason.BAD_CHECKSUM
    fixed = bytearray(bad)
    fixed[56:58] = b"\0\0"
    csum = l2.checksum(bytes(fixed[22:54]) + struct.pack("!I3xB", 32, 58) + bytes(fixed[54:]))
    fixed[56:58] = csum.to_bytes(2, "big")
    assert l2.parse_neighbor_solicitation(bytes(fixed), IFACE) is DropReason.BAD_OPTION


@given(st.binary(max_size=120))
def test_parsers_total_on_arbitrary_bytes(data: bytes) -> None:
    for parse in (l2.parse_arp_request, l2.parse_neighbor_solicitation):
        r = parse(data, IFACE)
        assert isinstance(r, (DropReason, ArpRequest, NeighborSolicitation))


@given(fst.macs, fst.ip4s, st.sampled_from([1, 2]))
def test_decode_frame_round_trips_arp(mac: bytes, ip: int, op: int) -> None:
    assert l2.decode_frame(l2.build_arp_announce(op, mac, ip)) == ArpFrame(
        eth_dst=b"\xff" * 6, eth_src=mac, op=op, sender_mac=mac, sender_ip=ip, target_mac=b"\xff" * 6, target_ip=ip)


@given(fst.macs, fst.ip6s)
def test_decode_frame_round_trips_na(mac: bytes, ip: int) -> None:
    d = l2.decode_frame(l2.build_ndp_advert(mac, ip))
    assert isinstance(d, NdpFrame)
    assert (d.eth_dst, d.eth_src, d.src_ip, d.dst_ip, d.hop_limit, d.icmp_type, d.code, d.flags, d.target) == (
        bytes.fromhex("333300000001"), mac, l2.link_local(mac), 0xFF02 << 112 | 1, 255, 136, 0, 0x20, ip)
    assert d.checksum_ok and [(o.kind, o.value) for o in d.options] == [(2, mac)]


@given(st.binary(max_size=100))
def test_decode_frame_raises_only_frame_error(data: bytes) -> None:
    try:
        l2.decode_frame(data)
    except FrameError:
        pass
