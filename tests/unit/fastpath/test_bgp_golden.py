"""BGP messages byte for byte against MetalLB's wire vectors (metallb-behaviour.md §6.7, tests/golden/frames)."""

from __future__ import annotations

import ipaddress

import pytest

from fastpath import bgp, model
from tests import golden_hex


def ip(s: str) -> int:
    return int(ipaddress.ip_address(s))


def _check(name: str, got: bytes) -> None:
    want = golden_hex.load(name)
    assert got == want, f"{name}\n" + golden_hex.diff(want, got)


def test_golden_corpus_is_not_empty() -> None:
    assert len(golden_hex.names("bgp-")) == 8


def test_open_metallb(bgpimpl) -> None:
    _check("bgp-open-metallb-65002.hex", bgpimpl.build_open(65002, 90, ip("185.236.240.39")))
    _check("bgp-open-metallb-4200000000.hex", bgpimpl.build_open(4200000000, 90, ip("10.0.0.1")))


def test_update_ebgp_two_octet_peer(bgpimpl) -> None:
    attrs = model.make_attrs(local_as=65000, peer_as=65001, next_hop=ip("192.168.123.10"), peer_4byte=False,
                             communities=(model.community(0, 1234), model.community(0, 2345)))
    msgs = bgpimpl.pack_updates([(ip("172.16.0.0"), 24)], attrs, as4=False)
    assert len(msgs) == 1
    _check("bgp-update-ebgp-as2.hex", msgs[0])


def test_update_ibgp(bgpimpl) -> None:
    attrs = model.make_attrs(local_as=64512, peer_as=64512, next_hop=ip("10.0.0.5"))
    assert attrs.local_pref == 100
    _check("bgp-update-ibgp.hex", bgpimpl.pack_updates([(ip("10.20.30.1"), 32)], attrs)[0])


def test_update_ebgp_four_octet(bgpimpl) -> None:
    attrs = model.make_attrs(local_as=4200000000, peer_as=65001, next_hop=ip("10.0.0.5"))
    _check("bgp-update-ebgp-as4.hex", bgpimpl.pack_updates([(ip("198.51.100.0"), 24)], attrs)[0])


def test_withdraw(bgpimpl) -> None:
    msgs = bgpimpl.pack_withdrawals([(ip("10.20.30.1"), 32), (ip("10.20.30.0"), 24)])
    assert len(msgs) == 1
    _check("bgp-withdraw.hex", msgs[0])


def test_keepalive(bgpimpl) -> None:
    _check("bgp-keepalive.hex", bgpimpl.build_keepalive())


def test_end_of_rib(bgpimpl) -> None:
    _check("bgp-end-of-rib-ipv6.hex", bgpimpl.build_end_of_rib(2, 1))
    assert bgpimpl.build_end_of_rib() == bytes.fromhex("ff" * 16 + "0017020000" + "0000")


def test_goldens_decode_to_what_was_built() -> None:
    o = bgp.decode(golden_hex.load("bgp-open-metallb-4200000000.hex"))
    assert (o.my_as, o.asn, o.hold_time, o.router_id) == (23456, 4200000000, 90, ip("10.0.0.1"))
    u = bgp.decode(golden_hex.load("bgp-update-ebgp-as2.hex"), as4=False)
    assert u.nlri == ((ip("172.16.0.0"), 24),) and u.attrs.communities == (1234, 2345)
    assert u.attrs.as_path == model.as_sequence(65000) and u.attrs.next_hop == ip("192.168.123.10")
    w = bgp.decode(golden_hex.load("bgp-withdraw.hex"))
    assert w.withdrawn == ((ip("10.20.30.1"), 32), (ip("10.20.30.0"), 24)) and w.attrs is None
    assert bgp.is_end_of_rib(bgp.decode(golden_hex.load("bgp-end-of-rib-ipv6.hex"))) == (2, 1)


def test_two_octet_peer_gets_as_trans_and_as4_path(bgpimpl) -> None:
    # RFC 6793 §4.2.2: AS_PATH carries AS_TRANS, AS4_PATH (type 17, optional transitive) the real ASN.
    attrs = model.make_attrs(local_as=4200000000, peer_as=65001, next_hop=ip("10.0.0.5"), peer_4byte=False)
    msg = bgpimpl.pack_updates([(ip("198.51.100.0"), 24)], attrs, as4=False)[0]
    assert bytes.fromhex("40020402015ba0") in msg  # AS_PATH [23456], 2-octet
    assert bytes.fromhex("c0110602 01fa56ea00".replace(" ", "")) in msg  # AS4_PATH [4200000000]
    d = bgp.decode(msg, as4=False)
    assert d.attrs.as_path == model.as_sequence(23456) and d.attrs.as4_path == model.as_sequence(4200000000)


def test_full_capabilities_open(bgpimpl) -> None:
    msg = bgpimpl.build_open(65002, 90, ip("10.0.0.1"), model.full_capabilities(65002))
    caps = bgp.decode(msg).capabilities
    assert [c.code for c in caps] == [1, 1, 65, 2, 64, 6]
    gr = caps[4].value
    assert int.from_bytes(gr[:2], "big") & 0xFFF == 120 and gr[2:] == bytes.fromhex("0001010000020100")


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.build_open(65002, 1, 1),
        lambda m: m.build_open(2**32, 90, 1),
        lambda m: m.pack_updates([(1, 32)], model.Attrs(next_hop=None)),  # IPv4 NLRI without NEXT_HOP
        lambda m: m.pack_updates([(1, 32)], model.Attrs(origin=None, next_hop=1)),
        lambda m: m.pack_updates([(1, 24)], model.Attrs(next_hop=1)),  # host bits past the length
        lambda m: m.pack_updates([(0, 33)], model.Attrs(next_hop=1)),
        lambda m: m.pack_updates([(2**32, 32)], model.Attrs(next_hop=1)),
        lambda m: m.pack_updates(["10.0.0.1"], model.Attrs(next_hop=1)),
        lambda m: m.pack_updates([(1, 32)], model.Attrs(next_hop=1), max_len=4095),
        lambda m: m.pack_updates([(1, 32)], model.Attrs(next_hop=1, as_path=model.as_sequence(70000)), as4=False),
        lambda m: m.pack_updates([(1, 128)], model.Attrs(), afi=2),  # IPv6 without a next hop
        lambda m: m.pack_updates([(1, 32)], model.Attrs(next_hop=1), afi=3),
        lambda m: m.pack_withdrawals([(1, 129)], afi=2),
        lambda m: m.build_notification(6, 256),
        lambda m: m.encode_attrs(model.Attrs(communities=(2**32,))),
    ],
)
def test_bad_arguments_raise_value_error(bgpimpl, call) -> None:
    with pytest.raises(ValueError):
        call(bgpimpl)
