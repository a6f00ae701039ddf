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
