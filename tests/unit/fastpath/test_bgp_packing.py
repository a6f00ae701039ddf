"""Packing: as many prefixes per UPDATE as the negotiated maximum allows, in input order, attributes once."""

from __future__ import annotations

from fastpath import bgp, model

ATTRS = model.Attrs(as_path=model.as_sequence(64513), next_hop=0x0AC80001, communities=(model.community(64513, 100),))
BASE = 0xC6120000  # 198.18.0.0


def test_gobgp_figure_809_per_4096_byte_update(bgpimpl) -> None:
    assert len(bgpimpl.encode_attrs(ATTRS)) == 27
    msgs = bgpimpl.pack_updates([BASE + i for i in range(100_000)], ATTRS)
    assert len(msgs) == 124  # ceil(100000 / 809)
    counts = [len(bgp.decode(m).nlri) for m in msgs]
    assert counts[:-1] == [809] * 123 and counts[-1] == 100_000 - 123 * 809
    assert max(len(m) for m in msgs) == 19 + 4 + 27 + 809 * 5 == 4095
    got = [p for m in msgs for p in bgp.decode(m).nlri]
    assert got == [(BASE + i, 32) for i in range(100_000)]  # input order, nothing lost


def test_extended_message_packs_to_65535(bgpimpl) -> None:
    msgs = bgpimpl.pack_updates([BASE + i for i in range(30_000)], ATTRS, max_len=65535)
    per = (65535 - 19 - 4 - 27) // 5
    assert [len(bgp.decode(m, max_len=65535).nlri) for m in msgs] == [per, per, 30_000 - 2 * per]
    assert all(len(m) <= 65535 for m in msgs)


def test_withdrawals_pack_the_same_way(bgpimpl) -> None:
    msgs = bgpimpl.pack_withdrawals([BASE + i for i in range(2000)])
    assert [len(bgp.decode(m).withdrawn) for m in msgs] == [814, 814, 372]  # (4096 - 23) // 5 = 814


def test_ipv6_mp_reach_packing(bgpimpl) -> None:
    attrs = model.make_attrs(local_as=65000, peer_as=65001, next_hop=None, large_communities=((1, 2, 3),))
    prefixes = [(0x20010DB8 << 96 | i << 64, 64) for i in range(1000)]
    msgs = bgpimpl.pack_updates(prefixes, attrs, afi=2, next_hop=(0x20010DB8 << 96 | 1, 0xFE80 << 112 | 1))
    decoded = [bgp.decode(m) for m in msgs]
    assert all(len(m) <= 4096 for m in msgs) and len(msgs) == 3
    assert [p for d in decoded for p in d.mp_reach.nlri] == prefixes
    assert {d.attrs for d in decoded} == {attrs}
    assert decoded[0].mp_reach.next_hop == (0x20010DB8 << 96 | 1, 0xFE80 << 112 | 1)
    # the general encoder agrees with the packer
    assert [bgp.encode(d) for d in decoded] == msgs


def test_ipv6_withdrawals(bgpimpl) -> None:
    prefixes = [(i << 100, 28) for i in range(1, 900)]
    msgs = bgpimpl.pack_withdrawals(prefixes, afi=2)
    assert [p for m in msgs for p in bgp.decode(m).mp_unreach.withdrawn] == prefixes
    assert all(len(m) <= 4096 for m in msgs) and len(msgs) > 1


def test_no_prefixes_no_messages(bgpimpl) -> None:
    assert bgpimpl.pack_updates([], ATTRS) == [] and bgpimpl.pack_withdrawals([]) == []


def test_many_communities_use_extended_length(bgpimpl) -> None:
    attrs = model.Attrs(as_path=(), next_hop=1, communities=tuple(range(100)))
    block = bgpimpl.encode_attrs(attrs)
    assert bytes([0xD0, 8, 0x01, 0x90]) in block  # flags with Extended Length, length 400
    assert bgp.decode(bgpimpl.pack_updates([1], attrs)[0]).attrs == attrs
