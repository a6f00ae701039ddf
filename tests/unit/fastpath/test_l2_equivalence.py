"""Hypothesis: the compiled layer-2 builders produce the pure twin's bytes, byte for byte."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastpath import _l2_py as py
from tests import strategies_fastpath as fst
from tests.unit.fastpath.conftest import NO_EXTENSIONS

pytestmark = pytest.mark.skipif(NO_EXTENSIONS, reason="pure-twin run: nothing compiled to compare")


def _c():
    from fastpath import _l2

    return _l2


@given(st.sampled_from([1, 2]), fst.macs, fst.ip4s)
def test_arp_announce(op, mac, ip) -> None:
    assert _c().build_arp_announce(op, mac, ip) == py.build_arp_announce(op, mac, ip)


@given(fst.macs, fst.ip4s, fst.macs, fst.ip4s)
def test_arp_reply(mac, ip, dmac, dip) -> None:
    assert _c().build_arp_reply(mac, ip, dmac, dip) == py.build_arp_reply(mac, ip, dmac, dip)


@given(fst.macs, fst.ip6s, st.one_of(st.none(), fst.ip6s))
def test_ndp_advert(mac, ip, src) -> None:
    assert _c().build_ndp_advert(mac, ip, src) == py.build_ndp_advert(mac, ip, src)


@given(fst.macs, fst.ip6s, fst.macs, fst.ip6s, st.one_of(st.none(), fst.ip6s))
def test_ndp_reply(mac, ip, dmac, dip, src) -> None:
    assert _c().build_ndp_reply(mac, ip, dmac, dip, src) == py.build_ndp_reply(mac, ip, dmac, dip, src)


@given(fst.macs, st.lists(fst.ip4s, max_size=40), st.integers(0, 50), st.integers(0, 100))
def test_arp_burst(mac, ips, offset, slack) -> None:
    a = bytearray(b"\x5a" * (offset + 84 * len(ips) + slack))
    b = bytearray(a)
    assert _c().write_arp_burst(a, mac, ips, offset) == py.write_arp_burst(b, mac, ips, offset) == 2 * len(ips)
    assert a == b


@given(fst.macs, st.lists(fst.ip6s, max_size=10), st.integers(0, 20), st.one_of(st.none(), fst.ip6s))
def test_ndp_burst(mac, ips, offset, src) -> None:
    a = bytearray(offset + 86 * len(ips))
    b = bytearray(a)
    assert _c().write_ndp_burst(a, mac, ips, offset, src) == py.write_ndp_burst(b, mac, ips, offset, src)
    assert a == b


@given(st.binary(max_size=200))
def test_checksum(data) -> None:
    assert _c().checksum(data) == py.checksum(data)


@given(fst.macs)
def test_link_local(mac) -> None:
    assert _c().link_local(mac) == py.link_local(mac)


def _valid_frames(mac: bytes, ip6: int, ip4: int) -> list[bytes]:
    """An ARP request and a Neighbor Solicitation with a source link-layer option, both valid for the parsers."""
    arp = py.build_arp_announce(1, mac, ip4)
    na = bytearray(py.build_ndp_reply(mac, ip6, b"\x33\x33\xff\x00\x00\x01", 0xFF02 << 112 | 1, None))
    na[54] = 135  # make it a solicitation: type 135, option 1 (source link-layer address), fix the checksum
    na[58] = 0
    na[78] = 1
    na[56:58] = b"\0\0"
    csum = py.checksum(bytes(na[22:54]) + (32).to_bytes(4, "big") + b"\0\0\0\x3a" + bytes(na[54:]))
    na[56:58] = csum.to_bytes(2, "big")
    return [arp, bytes(na)]


@given(st.binary(max_size=120), fst.macs)
def test_parsers_on_arbitrary_bytes(data, iface) -> None:
    assert _c().parse_arp_request(data, iface) == py.parse_arp_request(data, iface)
    assert _c().parse_neighbor_solicitation(data, iface) == py.parse_neighbor_solicitation(data, iface)


@given(fst.macs, fst.ip6s, fst.ip4s, st.lists(st.tuples(st.integers(0, 120), st.integers(0, 255)), max_size=4),
       st.integers(0, 100), st.booleans())
def test_parsers_on_mutated_valid_frames(mac, ip6, ip4, edits, cut, to_us) -> None:
    iface = mac if to_us else b"\x02" * 6
    for frame in _valid_frames(mac, ip6, ip4):
        assert type(py.parse_arp_request(frame, iface)).__name__ in ("ArpRequest", "DropReason")
        buf = bytearray(frame)
        for pos, value in edits:
            if pos < len(buf):
                buf[pos] = value
        data = bytes(buf[:len(buf) - cut] if cut < len(buf) else buf)
        for parse in ("parse_arp_request", "parse_neighbor_solicitation"):
            assert getattr(_c(), parse)(data, iface) == getattr(py, parse)(data, iface)
            assert getattr(_c(), parse)(bytearray(data), iface) == getattr(py, parse)(data, iface)


def test_valid_frames_are_accepted_by_both() -> None:
    arp, ns = _valid_frames(b"\x02\0\0\0\0\x05", 0x20010DB8 << 96 | 1, 0x0A000001)
    for mod in (py, _c()):
        assert type(mod.parse_arp_request(arp, b"\x02" * 6)).__name__ == "ArpRequest"
        got = mod.parse_neighbor_solicitation(ns, b"\x02" * 6)
        assert type(got).__name__ == "NeighborSolicitation" and got.target == 0x20010DB8 << 96 | 1


@given(fst.macs, fst.ip4s)
def test_arp_probe(mac, ip) -> None:
    assert _c().build_arp_probe(mac, ip) == py.build_arp_probe(mac, ip)


@given(fst.macs, fst.ip6s)
def test_ns_probe(mac, ip) -> None:
    assert _c().build_ns_probe(mac, ip) == py.build_ns_probe(mac, ip)
    assert _c().solicited_node(ip) == py.solicited_node(ip)
