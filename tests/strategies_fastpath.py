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
