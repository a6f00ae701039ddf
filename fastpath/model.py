"""Values the fast path builds from and decodes into, shared by both twins.

Conventions (the same everywhere in ``fastpath``):

* an IPv4 address is an ``int`` in 0..2**32-1, an IPv6 address an ``int`` in 0..2**128-1;
* a MAC is ``bytes`` of length 6;
* a prefix is a tuple ``(network: int, length: int)``; its family comes from where it sits (the IPv4 NLRI and
  withdrawn fields, or the AFI of MP_REACH/MP_UNREACH);
* messages and frames are frozen ``msgspec.Struct`` values, so ``decode(encode(m)) == m`` is a plain comparison.
"""

from __future__ import annotations

from typing import Union

import msgspec

from fastpath.constants import DEFAULT_LOCAL_PREF, AS_TRANS, Afi, AsSegmentType, Origin, Safi

Prefix = tuple[int, int]


class BgpError(Exception):
    """A BGP protocol error: the NOTIFICATION (RFC 4271 §4.5) that answers it.

    Decoders raise this and nothing else, whatever the input.
    """

    def __init__(self, code: int, subcode: int, data: bytes = b"", reason: str = "") -> None:
        self.code = code
        self.subcode = subcode
        self.data = bytes(data)
        self.reason = reason
        super().__init__(f"BGP error {code}/{subcode}" + (f": {reason}" if reason else ""))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BgpError):
            return NotImplemented
        return (self.code, self.subcode, self.data) == (other.code, other.subcode, other.data)

    def __hash__(self) -> int:
        return hash((self.code, self.subcode, self.data))


class FrameError(ValueError):
    """An Ethernet frame the L2 decoder cannot read (``streamlb frames decode``; not used by the responder)."""


# --- Layer 2 -------------------------------------------------------------------------------------------------------


class ArpRequest(msgspec.Struct, frozen=True):
    """An ARP request the responder may answer (RFC 826)."""

    eth_src: bytes
    sender_mac: bytes
    sender_ip: int
    target_ip: int


class NeighborSolicitation(msgspec.Struct, frozen=True):
    """A Neighbor Solicitation the responder may answer (RFC 4861 §4.3)."""

    eth_src: bytes
    src_ip: int
    dst_ip: int
    target: int
    source_lla: bytes


class ArpFrame(msgspec.Struct, frozen=True, tag="arp"):
    """Every field of an Ethernet II + ARP frame."""

    eth_dst: bytes
    eth_src: bytes
    op: int
    sender_mac: bytes
    sender_ip: int
    target_mac: bytes
    target_ip: int
    htype: int = 1
    ptype: int = 0x0800


class NdpOptionValue(msgspec.Struct, frozen=True):
    kind: int
    value: bytes  # option body after type and length (for link-layer options: the MAC)


class NdpFrame(msgspec.Struct, frozen=True, tag="ndp"):
    """Every field of an Ethernet II + IPv6 + ICMPv6 NS/NA frame."""

    eth_dst: bytes
    eth_src: bytes
    src_ip: int
    dst_ip: int
    hop_limit: int
    icmp_type: int
    code: int
    checksum: int
    checksum_ok: bool
    flags: int  # first byte of the reserved/flags word (R, S, O for an NA)
    target: int
    options: tuple[NdpOptionValue, ...] = ()
    traffic_class: int = 0
    flow_label: int = 0


# --- BGP -----------------------------------------------------------------------------------------------------------


class Cap(msgspec.Struct, frozen=True):
    """One capability of an OPEN (RFC 5492): its code and raw value.

    Known capabilities have helpers below; keeping the raw value makes decoding lossless for unknown ones.
    """

    code: int
    value: bytes = b""


class Open(msgspec.Struct, frozen=True, tag="open"):
    """OPEN, RFC 4271 §4.2. ``my_as`` is the 2-octet field (AS_TRANS when the real ASN needs 4 octets)."""

    my_as: int
    hold_time: int
    router_id: int
    capabilities: tuple[Cap, ...] = ()
    version: int = 4

    @property
    def asn(self) -> int:
        """The speaker's ASN: from the 4-octet AS capability when present (RFC 6793 §3), else ``my_as``."""
        for c in self.capabilities:
            if c.code == 65 and len(c.value) == 4:
                return int.from_bytes(c.value, "big")
        return self.my_as


class Keepalive(msgspec.Struct, frozen=True, tag="keepalive"):
    """KEEPALIVE, RFC 4271 §4.4."""


class Notification(msgspec.Struct, frozen=True, tag="notification"):
    """NOTIFICATION, RFC 4271 §4.5."""

    code: int
    subcode: int
    data: bytes = b""


class RouteRefresh(msgspec.Struct, frozen=True, tag="route-refresh"):
    """ROUTE-REFRESH, RFC 2918 §3 (``subtype`` is RFC 7313's, 0 for a plain request)."""

    afi: int
    safi: int
    subtype: int = 0


class AsSegment(msgspec.Struct, frozen=True, array_like=True):
    kind: int  # AsSegmentType
    asns: tuple[int, ...]


class Attrs(msgspec.Struct, frozen=True):
    """Path attributes shared by the NLRI of an UPDATE (everything but MP_REACH/MP_UNREACH).

    Encoded in type-code order, each only when set. ``as_path`` and ``as4_path`` are encoded with the AS width of
    the session: a 2-octet peer gets AS_TRANS in ``as_path`` and the real path in ``as4_path`` (RFC 6793 §4.2.2);
    :func:`make_attrs` applies that rule.
    """

    origin: int | None = Origin.IGP  # None: no ORIGIN attribute (only seen when decoding)
    as_path: tuple[AsSegment, ...] | None = ()  # () is an empty AS_PATH (iBGP); None: no AS_PATH attribute
    next_hop: int | None = None  # the IPv4 NEXT_HOP attribute
    med: int | None = None
    local_pref: int | None = None
    atomic_aggregate: bool = False
    communities: tuple[int, ...] = ()  # RFC 1997: (high 16 bits << 16) | low 16 bits
    as4_path: tuple[AsSegment, ...] = ()
    large_communities: tuple[tuple[int, int, int], ...] = ()  # RFC 8092
    other: tuple[tuple[int, int, bytes], ...] = ()  # attributes kept raw: (flags, type, value)


class MpReach(msgspec.Struct, frozen=True):
    """MP_REACH_NLRI, RFC 4760 §3. ``next_hop`` holds one address, or global + link-local for IPv6 (RFC 2545)."""

    afi: int
    safi: int
    next_hop: tuple[int, ...]
    nlri: tuple[Prefix, ...] = ()


class MpUnreach(msgspec.Struct, frozen=True):
    """MP_UNREACH_NLRI, RFC 4760 §4. Empty ``withdrawn`` is the End-of-RIB marker for that family (RFC 4724)."""

    afi: int
    safi: int
    withdrawn: tuple[Prefix, ...] = ()


class Update(msgspec.Struct, frozen=True, tag="update"):
    """UPDATE, RFC 4271 §4.3. An UPDATE with nothing in it is the IPv4 End-of-RIB marker (RFC 4724 §2)."""

    withdrawn: tuple[Prefix, ...] = ()
    attrs: Attrs | None = None
    nlri: tuple[Prefix, ...] = ()
    mp_reach: MpReach | None = None
    mp_unreach: MpUnreach | None = None


Message = Union[Open, Update, Notification, Keepalive, RouteRefresh]


# --- helpers that build values (policy lives here, not in the encoders) ----------------------------------------------


def as_sequence(*asns: int) -> tuple[AsSegment, ...]:
    """An AS_PATH of one AS_SEQUENCE (empty tuple for no ASNs)."""
    return (AsSegment(AsSegmentType.AS_SEQUENCE, tuple(asns)),) if asns else ()


def community(high: int, low: int) -> int:
    """The 32-bit value of the standard community ``high:low`` (RFC 1997)."""
    if not (0 <= high <= 0xFFFF and 0 <= low <= 0xFFFF):
        raise ValueError(f"community {high}:{low}: both halves must be in 0..65535")
    return (high << 16) | low


def make_attrs(
    *,
    local_as: int,
    peer_as: int,
    next_hop: int | None,
    communities: tuple[int, ...] = (),
    large_communities: tuple[tuple[int, int, int], ...] = (),
    local_pref: int | None = None,
    med: int | None = None,
    peer_4byte: bool = True,
) -> Attrs:
    """Attributes for one advertisement, following design.md §6 and metallb-behaviour.md §6.4.

    iBGP (``local_as == peer_as``): empty AS_PATH and LOCAL_PREF (``local_pref`` or 100). eBGP: AS_PATH = local
    AS, no LOCAL_PREF. Towards a 2-octet peer an ASN above 65535 becomes AS_TRANS, and AS4_PATH carries the real
    path (RFC 6793 §4.2.2). ``next_hop`` is the IPv4 NEXT_HOP (``None`` for IPv6-only UPDATEs, whose next hop
    travels in MP_REACH_NLRI).
    """
    for asn in (local_as, peer_as):
        if not 0 < asn <= 0xFFFFFFFF:
            raise ValueError(f"ASN {asn} out of range 1..4294967295")
    ibgp = local_as == peer_as
    as_path: tuple[AsSegment, ...] = ()
    as4_path: tuple[AsSegment, ...] = ()
    if not ibgp:
        if peer_4byte or local_as <= 0xFFFF:
            as_path = as_sequence(local_as)
        else:
            as_path = as_sequence(AS_TRANS)
            as4_path = as_sequence(local_as)
    return Attrs(
        origin=Origin.IGP,
        as_path=as_path,
        next_hop=next_hop,
        med=med,
        local_pref=(DEFAULT_LOCAL_PREF if local_pref is None else local_pref) if ibgp else None,
        communities=tuple(communities),
        as4_path=as4_path,
        large_communities=tuple(large_communities),
    )


def metallb_capabilities(asn: int) -> tuple[Cap, ...]:
    """MetalLB's native OPEN capabilities: MP IPv4/IPv6 unicast and 4-octet AS (metallb-behaviour.md §6.5)."""
    return (
        Cap(1, bytes([0, Afi.IPV4, 0, Safi.UNICAST])),
        Cap(1, bytes([0, Afi.IPV6, 0, Safi.UNICAST])),
        Cap(65, asn.to_bytes(4, "big")),
    )


def full_capabilities(asn: int, *, restart_time: int = 120, restarting: bool = False) -> tuple[Cap, ...]:
    """streamlb's own OPEN: MetalLB's set plus route refresh, graceful restart (IPv4 and IPv6 unicast, forwarding
    state not preserved) and extended message (design.md §6)."""
    if not 0 <= restart_time <= 0xFFF:
        raise ValueError("graceful-restart time must be in 0..4095 s (RFC 4724 §3)")
    gr = ((0x8000 if restarting else 0) | restart_time).to_bytes(2, "big")
    gr += bytes([0, Afi.IPV4, Safi.UNICAST, 0, 0, Afi.IPV6, Safi.UNICAST, 0])
    return metallb_capabilities(asn) + (Cap(2), Cap(64, gr), Cap(6))
