"""``decode(encode(m)) == m`` for every message kind, and decoding the packer's output gives back its input."""

from __future__ import annotations

from hypothesis import given, note
from hypothesis import strategies as st

from fastpath import bgp, model
from tests import strategies_fastpath as fst


@given(fst.messages)
def test_decode_encode_round_trip(msg) -> None:
    data = bgp.encode(msg)
    note(data.hex())
    assert bgp.decode(data) == msg


@given(fst.updates(as4=False))
def test_round_trip_two_octet_sessions(msg) -> None:
    assert bgp.decode(bgp.encode(msg, as4=False), as4=False) == msg


@given(st.lists(fst.prefixes4(), max_size=300), fst.attrs(), st.sampled_from([4096, 65535]))
def test_packed_updates_decode_to_their_input(prefixes, attrs, max_len) -> None:
    as4 = not attrs.as4_path
    msgs = bgp.pack_updates(prefixes, attrs, as4=as4, max_len=max_len)
    decoded = [bgp.decode(m, as4=as4, max_len=max_len) for m in msgs]
    assert [p for d in decoded for p in d.nlri] == prefixes
    assert all(d.attrs == attrs and not d.withdrawn and d.mp_reach is None for d in decoded)
    assert all(len(m) <= max_len for m in msgs)
    # greedy: no message could have taken the next message's first prefix
    for m, nxt in zip(msgs, decoded[1:]):
        first = nxt.nlri[0]
        assert len(m) + 1 + (first[1] + 7) // 8 > max_len


@given(st.lists(fst.prefixes6(), max_size=200), fst.attrs(v4_next_hop=False), fst.ip6s)
def test_packed_ipv6_updates_decode_to_their_input(prefixes, attrs, nh) -> None:
    as4 = not attrs.as4_path
    msgs = bgp.pack_updates(prefixes, attrs, afi=2, next_hop=nh, as4=as4)
    decoded = [bgp.decode(m, as4=as4) for m in msgs]
    assert [p for d in decoded for p in d.mp_reach.nlri] == prefixes
    assert all(d.attrs == attrs and d.mp_reach.next_hop == (nh,) for d in decoded)


@given(st.lists(st.one_of(fst.prefixes4()), max_size=300))
def test_packed_withdrawals_decode_to_their_input(prefixes) -> None:
    msgs = bgp.pack_withdrawals(prefixes)
    assert [p for m in msgs for p in bgp.decode(m).withdrawn] == prefixes


@given(st.lists(fst.messages, max_size=5), st.integers(0, 50))
def test_split_cuts_a_stream_into_messages(msgs, cut) -> None:
    stream = b"".join(bgp.encode(m) for m in msgs)
    head, used = bgp.split(stream[:len(stream) - cut] if cut < len(stream) else b"")
    assert stream.startswith(b"".join(head)) and used == sum(map(len, head))
    full, used = bgp.split(stream)
    assert [bgp.decode(x) for x in full] == msgs and used == len(stream)


def test_end_of_rib_detection() -> None:
    assert bgp.is_end_of_rib(bgp.decode(bgp.build_end_of_rib())) == (1, 1)
    assert bgp.is_end_of_rib(bgp.decode(bgp.build_end_of_rib(2, 1))) == (2, 1)
    assert bgp.is_end_of_rib(bgp.decode(bgp.pack_withdrawals([1])[0])) is None
    assert bgp.is_end_of_rib(model.Keepalive()) is None


@given(fst.asns, st.one_of(st.just(0), st.integers(3, 0xFFFF)), st.integers(1, 2**32 - 1), st.booleans())
def test_built_open_decodes_to_its_arguments(asn, hold, rid, full) -> None:
    caps = model.full_capabilities(asn) if full else model.metallb_capabilities(asn)
    got = bgp.decode(bgp.build_open(asn, hold, rid, caps))
    assert got == model.Open(my_as=asn if asn <= 0xFFFF else 23456, hold_time=hold, router_id=rid, capabilities=caps)
    assert got.asn == asn


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=100), st.integers(0, 0xFFFF),
       st.integers(0, 255), st.integers(0, 255))
def test_built_notification_and_route_refresh_decode(code, sub, data, afi, safi, subtype) -> None:
    assert bgp.decode(bgp.build_notification(code, sub, data)) == model.Notification(code, sub, data)
    assert bgp.decode(bgp.build_route_refresh(afi, safi, subtype)) == model.RouteRefresh(afi, safi, subtype)
    assert bgp.decode(bgp.build_keepalive()) == model.Keepalive()
