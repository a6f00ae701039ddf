"""Hypothesis strategies for the fast path: MACs, addresses, prefixes, BGP attributes."""

from __future__ import annotations

from hypothesis import strategies as st

from fastpath import model

macs = st.binary(min_size=6, max_size=6)
ip4s = st.integers(0, 2**32 - 1)
ip6s = st.integers(0, 2**128 - 1)
asns = st.integers(1, 2**32 - 1)


@st.composite
def prefixes4(draw, min_len: int = 0):
    plen = draw(st.integers(min_len, 32))
    addr = draw(ip4s) & (((1 << plen) - 1) << (32 - plen)) if plen else 0
    return (addr, plen)


@st.composite
def prefixes6(draw, min_len: int = 0):
    plen = draw(st.integers(min_len, 128))
    addr = draw(ip6s) & (((1 << plen) - 1) << (128 - plen)) if plen else 0
    return (addr, plen)


communities = st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFF)).map(lambda t: model.community(*t))
large_communities = st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))


@st.composite
def attrs(draw, v4_next_hop: bool = True):
    local_as = draw(asns)
    peer_as = draw(st.one_of(st.just(local_as), asns))
    return model.make_attrs(
        local_as=local_as,
        peer_as=peer_as,
        next_hop=draw(ip4s) if v4_next_hop else None,
        communities=tuple(draw(st.lists(communities, max_size=70))),
        large_communities=tuple(draw(st.lists(large_communities, max_size=30))),
        local_pref=draw(st.one_of(st.none(), st.integers(0, 2**32 - 1))),
        med=draw(st.one_of(st.none(), st.integers(0, 2**32 - 1))),
        peer_4byte=draw(st.booleans()),
    )


def _caps():
    known = st.one_of(
        st.tuples(st.just(1), st.binary(min_size=4, max_size=4)),
        st.tuples(st.sampled_from([2, 6]), st.just(b"")),
        st.tuples(st.just(65), st.binary(min_size=4, max_size=4)),
        st.tuples(st.just(64), st.integers(0, 5).flatmap(lambda k: st.binary(min_size=2 + 4 * k, max_size=2 + 4 * k))),
        st.tuples(st.integers(70, 255), st.binary(max_size=20)),
    )
    return st.lists(known.map(lambda t: model.Cap(*t)), max_size=8)


opens = st.builds(
    model.Open,
    my_as=st.integers(0, 0xFFFF),
    hold_time=st.one_of(st.just(0), st.integers(3, 0xFFFF)),
    router_id=st.integers(1, 2**32 - 1),
    capabilities=_caps().map(tuple),
)


def segments(as4: bool):
    asn = st.integers(0, 2**32 - 1 if as4 else 0xFFFF)
    seg = st.builds(model.AsSegment, kind=st.integers(1, 4), asns=st.lists(asn, min_size=1, max_size=8).map(tuple))
    return st.lists(seg, max_size=3).map(tuple)


def full_attrs(as4: bool, needs_next_hop: bool):
    return st.builds(
        model.Attrs,
        origin=st.integers(0, 2),
        as_path=segments(as4),
        next_hop=ip4s if needs_next_hop else st.one_of(st.none(), ip4s),
        med=st.one_of(st.none(), ip4s),
        local_pref=st.one_of(st.none(), ip4s),
        atomic_aggregate=st.booleans(),
        communities=st.lists(ip4s, max_size=10).map(tuple),
        as4_path=segments(True),
        large_communities=st.lists(large_communities, max_size=4).map(tuple),
        other=st.lists(st.tuples(st.sampled_from([0x80, 0xC0, 0xE0]), st.integers(40, 255), st.binary(max_size=10)),
                       max_size=3, unique_by=lambda t: t[1]).map(lambda xs: tuple(sorted(xs, key=lambda t: t[1]))),
    )


@st.composite
def updates(draw, as4: bool = True):
    withdrawn = tuple(draw(st.lists(prefixes4(), max_size=20)))
    nlri = tuple(draw(st.lists(prefixes4(), max_size=20)))
    kind = draw(st.sampled_from(["none", "v6", "v4mp"]))
    mp_reach = None
    if kind == "v6":
        hops = tuple(draw(st.lists(ip6s, min_size=1, max_size=2)))
        mp_reach = model.MpReach(2, 1, hops, tuple(draw(st.lists(prefixes6(), max_size=10))))
    elif kind == "v4mp":
        mp_reach = model.MpReach(1, 1, (draw(ip4s),), tuple(draw(st.lists(prefixes4(), max_size=10))))
    mp_unreach = draw(st.one_of(
        st.none(),
        st.builds(model.MpUnreach, afi=st.just(2), safi=st.just(1), withdrawn=st.lists(prefixes6(), max_size=10).map(tuple)),
    ))
    announce = bool(nlri) or mp_reach is not None
    attrs = draw(full_attrs(as4, bool(nlri)) if announce else st.one_of(st.none(), full_attrs(as4, False)))
    return model.Update(withdrawn=withdrawn, attrs=attrs, nlri=nlri, mp_reach=mp_reach, mp_unreach=mp_unreach)


messages = st.one_of(
    opens,
    st.just(model.Keepalive()),
    st.builds(model.Notification, code=st.integers(0, 255), subcode=st.integers(0, 255), data=st.binary(max_size=30)),
    st.builds(model.RouteRefresh, afi=st.integers(0, 0xFFFF), safi=st.integers(0, 255), subtype=st.integers(0, 255)),
    updates(),
)
