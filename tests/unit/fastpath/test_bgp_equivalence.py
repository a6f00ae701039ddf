"""Hypothesis: the compiled BGP builders produce the pure twin's bytes, including where packing splits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fastpath import _bgp_py as py
from fastpath import model
from tests import strategies_fastpath as fst
from tests.unit.fastpath.conftest import NO_EXTENSIONS

pytestmark = pytest.mark.skipif(NO_EXTENSIONS, reason="pure-twin run: nothing compiled to compare")


def _c():
    from fastpath import _bgp

    return _bgp


def _same(fn: str, *args, **kw) -> None:
    """Same bytes, or the same exception type."""
    try:
        want = getattr(py, fn)(*args, **kw)
    except ValueError:
        with pytest.raises(ValueError):
            getattr(_c(), fn)(*args, **kw)
        return
    assert getattr(_c(), fn)(*args, **kw) == want


# Many communities shrink the room left for NLRI, so small prefix lists already split into several messages.
big_attrs = st.builds(
    lambda a, n: model.Attrs(origin=a.origin, as_path=a.as_path, next_hop=a.next_hop, med=a.med,
                             local_pref=a.local_pref, communities=tuple(range(n)),
                             large_communities=a.large_communities, as4_path=a.as4_path),
    fst.attrs(), st.integers(0, 1000),
)
prefix_items = st.one_of(fst.prefixes4(), fst.ip4s, st.lists(st.integers(0, 40), min_size=2, max_size=2),
                         st.tuples(st.integers(-5, 2**33), st.integers(-2, 40)))


@given(st.lists(prefix_items, max_size=400), big_attrs, st.booleans(), st.sampled_from([4096, 5000, 65535]))
def test_pack_updates_ipv4(prefixes, attrs, as4, max_len) -> None:
    _same("pack_updates", prefixes, attrs, as4=as4, max_len=max_len)


@given(st.lists(st.one_of(fst.prefixes6(), fst.ip6s), max_size=300), big_attrs,
       st.one_of(fst.ip6s, st.tuples(fst.ip6s, fst.ip6s)), st.sampled_from([4096, 65535]))
def test_pack_updates_ipv6(prefixes, attrs, nh, max_len) -> None:
    _same("pack_updates", prefixes, attrs, afi=2, next_hop=nh, max_len=max_len)


@given(st.lists(prefix_items, max_size=1200), st.sampled_from([4096, 4500]))
def test_pack_withdrawals_ipv4(prefixes, max_len) -> None:
    _same("pack_withdrawals", prefixes, max_len=max_len)


@given(st.lists(fst.prefixes6(), max_size=400))
def test_pack_withdrawals_ipv6(prefixes) -> None:
    _same("pack_withdrawals", prefixes, afi=2)


@given(fst.attrs(), st.booleans())
def test_encode_attrs(attrs, as4) -> None:
    _same("encode_attrs", attrs, as4)


@given(fst.asns, st.integers(0, 0xFFFF), fst.ip4s, st.one_of(st.none(), st.booleans()))
def test_build_open(asn, hold, rid, caps) -> None:
    capabilities = None if caps is None else (model.full_capabilities(asn) if caps else model.metallb_capabilities(asn))
    _same("build_open", asn, hold, rid, capabilities)


@given(st.integers(0, 256), st.integers(0, 256), st.binary(max_size=40))
def test_build_notification(code, sub, data) -> None:
    _same("build_notification", code, sub, data)


@given(st.integers(0, 0x10000), st.integers(0, 256), st.integers(0, 256))
def test_build_route_refresh_and_end_of_rib(afi, safi, subtype) -> None:
    _same("build_route_refresh", afi, safi, subtype)
    _same("build_end_of_rib", afi, safi)


def test_keepalive() -> None:
    assert _c().build_keepalive() == py.build_keepalive()
