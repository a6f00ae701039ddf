"""Layer-2 frames byte for byte against the goldens (tests/golden/frames/l2-*.hex), and scapy as a second
dissector/builder that was written independently of ours."""

from __future__ import annotations

import logging

import pytest

from tests import golden_hex

logging.getLogger("scapy").setLevel(logging.ERROR)
from scapy.layers.inet6 import ICMPv6ND_NA, ICMPv6NDOptDstLLAddr, IPv6  # noqa: E402
from scapy.layers.l2 import ARP, Ether  # noqa: E402

MAC = bytes.fromhex("020000000001")
PEER_MAC = bytes.fromhex("020000000099")
VIP4 = 0x0AC80064  # 10.200.0.100
VIP6 = 0x20010DB8 << 96 | 0x100  # 2001:db8::100
PEER6 = 0x20010DB8 << 96 | 7


def _check(name: str, got: bytes) -> None:
    want = golden_hex.load(name)
    assert got == want, f"{name}\n" + golden_hex.diff(want, got)


def test_golden_corpus_is_not_empty() -> None:
    assert len(golden_hex.names("l2-")) == 5


def test_garp_request_and_reply(l2impl) -> None:
    _check("l2-garp-request.hex", l2impl.build_arp_announce(1, MAC, VIP4))
    _check("l2-garp-reply.hex", l2impl.build_arp_announce(2, MAC, VIP4))


def test_arp_reply(l2impl) -> None:
    _check("l2-arp-reply.hex", l2impl.build_arp_reply(MAC, VIP4, PEER_MAC, 0x0AC80007))


def test_unsolicited_na(l2impl) -> None:
    _check("l2-ndp-unsolicited-na.hex", l2impl.build_ndp_advert(MAC, VIP6))


def test_solicited_na(l2impl) -> None:
    _check("l2-ndp-solicited-na.hex", l2impl.build_ndp_reply(MAC, VIP6, PEER_MAC, PEER6))


def test_link_local_is_modified_eui64(l2impl) -> None:
    # RFC 4291 appendix A: flip the universal/local bit, insert ff:fe in the middle.
    assert l2impl.link_local(bytes.fromhex("001122334455")) == 0xFE80_0000_0000_0000_0211_22FF_FE33_4455


def test_explicit_source_address(l2impl) -> None:
    src = 0xFE80 << 112 | 0x1234
    f = l2impl.build_ndp_advert(MAC, VIP6, src)
    assert f[22:38] == src.to_bytes(16, "big")
    pkt = Ether(f)
    declared = pkt[ICMPv6ND_NA].cksum
    del pkt[ICMPv6ND_NA].cksum
    assert Ether(bytes(pkt))[ICMPv6ND_NA].cksum == declared


@pytest.mark.parametrize("op", [1, 2])
def test_scapy_builds_the_same_garp(l2impl, op: int) -> None:
    ip = "10.200.0.100"
    want = bytes(Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:01")
                 / ARP(op=op, hwsrc="02:00:00:00:00:01", psrc=ip, hwdst="ff:ff:ff:ff:ff:ff", pdst=ip))
    assert l2impl.build_arp_announce(op, MAC, VIP4) == want


def test_scapy_verifies_na_checksums(l2impl) -> None:
    for frame in (l2impl.build_ndp_advert(MAC, VIP6), l2impl.build_ndp_reply(MAC, VIP6, PEER_MAC, PEER6)):
        pkt = Ether(frame)
        declared = pkt[ICMPv6ND_NA].cksum
        del pkt[ICMPv6ND_NA].cksum  # let scapy compute it from scratch
        assert Ether(bytes(pkt))[ICMPv6ND_NA].cksum == declared
        assert pkt[IPv6].hlim == 255 and pkt[ICMPv6NDOptDstLLAddr].lladdr == "02:00:00:00:00:01"


def test_burst_layout(l2impl) -> None:
    ips = [VIP4, VIP4 + 1, 0xFFFFFFFF, 0]
    buf = bytearray(b"\xee" * (10 + 84 * len(ips) + 5))
    n = l2impl.write_arp_burst(buf, MAC, ips, 10)
    assert n == 8
    assert buf[:10] == b"\xee" * 10 and buf[-5:] == b"\xee" * 5  # nothing written outside the frames
    for k, ip in enumerate(ips):
        base = 10 + 84 * k
        assert buf[base:base + 42] == l2impl.build_arp_announce(1, MAC, ip)
        assert buf[base + 42:base + 84] == l2impl.build_arp_announce(2, MAC, ip)


def test_ndp_burst_layout(l2impl) -> None:
    ips = [VIP6, 1, 2**128 - 1]
    buf = bytearray(86 * 3)
    assert l2impl.write_ndp_burst(buf, MAC, ips) == 3
    for k, ip in enumerate(ips):
        assert buf[86 * k:86 * (k + 1)] == l2impl.build_ndp_advert(MAC, ip)


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.build_arp_announce(3, MAC, 1),
        lambda m: m.build_arp_announce(1, MAC[:5], 1),
        lambda m: m.build_arp_announce(1, "02:00:00:00:00:01", 1),
        lambda m: m.build_arp_announce(1, MAC, -1),
        lambda m: m.build_arp_announce(1, MAC, 2**32),
        lambda m: m.build_arp_announce(1, MAC, "10.0.0.1"),
        lambda m: m.build_ndp_advert(MAC, 2**128),
        lambda m: m.build_ndp_advert(MAC, -5),
        lambda m: m.build_ndp_reply(MAC, 1, b"x", 1),
        lambda m: m.write_arp_burst(bytearray(83), MAC, [1]),
        lambda m: m.write_arp_burst(bytearray(84), MAC, [1], 1),
        lambda m: m.write_arp_burst(bytearray(840), MAC, [1, 2**40]),
        lambda m: m.write_arp_burst(bytearray(840), MAC, [1, -1]),
        lambda m: m.write_ndp_burst(bytearray(85), MAC, [1]),
    ],
)
def test_bad_arguments_raise_value_error(l2impl, call) -> None:
    with pytest.raises(ValueError):
        call(l2impl)


def test_failed_burst_writes_nothing(l2impl) -> None:
    buf = bytearray(84 * 2)
    with pytest.raises(ValueError):
        l2impl.write_arp_burst(buf, MAC, [1, 2, 3])
    with pytest.raises(ValueError):
        l2impl.write_arp_burst(buf, MAC, [1, 2**33])
    assert buf == bytearray(84 * 2)
