"""Layer-2 frames, pure-Python reference: the readable spec that ``_l2.pyx`` must match byte for byte.

Builders (MetalLB's frames, metallb-behaviour.md §5.4–§5.6 and §6.7):

* gratuitous ARP (RFC 826, RFC 5227 §3): broadcast, sender IP = target IP = the service IP, target MAC all ones,
  as a request (op 1) or a reply (op 2) — 42 bytes, unpadded;
* unicast ARP reply to a requester (§5.4);
* unsolicited Neighbor Advertisement to ff02::1 (RFC 4861 §4.4, §7.2.6): S=0, O=1, target link-layer option,
  sent from the MAC's modified-EUI-64 link-local address, hop limit 255, ICMPv6 checksum over the pseudo-header;
* solicited Neighbor Advertisement to a solicitor (§5.5): S=1, O=0;
* batch writers that put many frames back to back into one caller buffer (for ``sendmmsg``).

Parsers return the request the responder needs, or a named :class:`~fastpath.constants.DropReason`.
Arguments are checked once at each entry point; a bad argument raises ``ValueError``/``TypeError``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from fastpath.constants import (
    ARP_FRAME_LEN,
    ETH_ALL_NODES,
    ETH_BROADCAST,
    IPV6_ALL_NODES,
    NA_FLAG_OVERRIDE,
    NA_FLAG_SOLICITED,
    NDP_HOP_LIMIT,
    NDP_NA_FRAME_LEN,
    ArpOp,
    DropReason,
    EtherType,
    Icmp6Type,
    NdpOption,
)
from fastpath.model import ArpFrame, ArpRequest, FrameError, NdpFrame, NdpOptionValue, NeighborSolicitation

_ZERO_MAC = b"\x00" * 6


def _mac(mac: bytes, name: str = "mac") -> bytes:
    if not isinstance(mac, (bytes, bytearray)) or len(mac) != 6:
        raise ValueError(f"{name} must be 6 bytes, got {mac!r}")
    return bytes(mac)


def _ip4(ip: int, name: str = "ip4") -> int:
    if not isinstance(ip, int) or not 0 <= ip <= 0xFFFFFFFF:
        raise ValueError(f"{name} must be an int in 0..2**32-1, got {ip!r}")
    return ip


def _ip6(ip: int, name: str = "ip6") -> bytes:
    if not isinstance(ip, int) or not 0 <= ip < 1 << 128:
        raise ValueError(f"{name} must be an int in 0..2**128-1, got {ip!r}")
    return ip.to_bytes(16, "big")


def _op(op: int) -> int:
    if op not in (ArpOp.REQUEST, ArpOp.REPLY):
        raise ValueError(f"ARP op must be 1 (request) or 2 (reply), got {op!r}")
    return op


def link_local(mac: bytes) -> int:
    """The IPv6 link-local address fe80::/64 + modified EUI-64 of ``mac`` (RFC 4291 §2.5.1, appendix A)."""
    m = _mac(mac)
    iid = bytes([m[0] ^ 0x02, m[1], m[2], 0xFF, 0xFE, m[3], m[4], m[5]])
    return (0xFE80 << 112) | int.from_bytes(iid, "big")


# --- ARP -----------------------------------------------------------------------------------------------------------
#
# Ethernet II + ARP for IPv4 over Ethernet (RFC 826), 42 bytes:
#   0  dst MAC (6)      6  src MAC (6)      12 EtherType 0x0806 (2)
#   14 htype 1 (2)      16 ptype 0x0800 (2) 18 hlen 6 (1)  19 plen 4 (1)  20 op (2)
#   22 sender MAC (6)   28 sender IP (4)    32 target MAC (6)  38 target IP (4)


def _arp(eth_dst: bytes, eth_src: bytes, op: int, sha: bytes, spa: int, tha: bytes, tpa: int) -> bytes:
    return struct.pack("!6s6sHHHBBH6sI6sI", eth_dst, eth_src, EtherType.ARP, 1, EtherType.IPV4, 6, 4, op,
                       sha, spa, tha, tpa)


def build_arp_announce(op: int, mac: bytes, ip4: int) -> bytes:
    """A gratuitous ARP (RFC 5227 §3, as MetalLB sends it): broadcast, sender = (mac, ip4), target =
    (ff:ff:ff:ff:ff:ff, ip4); ``op`` 1 (request) or 2 (reply)."""
    m = _mac(mac)
    ip = _ip4(ip4)
    return _arp(ETH_BROADCAST, m, _op(op), m, ip, ETH_BROADCAST, ip)


def build_arp_reply(mac: bytes, ip4: int, dst_mac: bytes, dst_ip4: int) -> bytes:
    """The unicast reply to an ARP request for ``ip4`` from (``dst_mac``, ``dst_ip4``) (metallb-behaviour §5.4)."""
    m = _mac(mac)
    d = _mac(dst_mac, "dst_mac")
    return _arp(d, m, ArpOp.REPLY, m, _ip4(ip4), d, _ip4(dst_ip4, "dst_ip4"))


def write_arp_burst(out: bytearray, mac: bytes, ips: Sequence[int], offset: int = 0) -> int:
    """Write one gratuitous burst per address — a request frame then a reply frame, 42 bytes each, back to back —
    into ``out`` from ``offset``. Frame ``k`` starts at ``offset + 42 * k``. Returns the number of frames.

    Raises ``ValueError`` (writing nothing) when ``out`` is too small or an argument is invalid.
    """
    m = _mac(mac)
    checked = [_ip4(ip) for ip in ips]
    if offset < 0 or offset + 2 * ARP_FRAME_LEN * len(checked) > len(out):
        raise ValueError(f"buffer of {len(out)} bytes too small for {2 * len(checked)} ARP frames at {offset}")
    pos = offset
    for ip in checked:
        for op in (ArpOp.REQUEST, ArpOp.REPLY):
            out[pos:pos + ARP_FRAME_LEN] = _arp(ETH_BROADCAST, m, op, m, ip, ETH_BROADCAST, ip)
            pos += ARP_FRAME_LEN
    return 2 * len(checked)


# --- NDP -----------------------------------------------------------------------------------------------------------
#
# Ethernet II + IPv6 + ICMPv6 Neighbor Advertisement with a target link-layer option, 86 bytes:
#   0  dst MAC (6)   6 src MAC (6)   12 EtherType 0x86dd (2)
#   14 version/class/flow 0x60000000 (4)  18 payload length 32 (2)  20 next header 58 (1)  21 hop limit 255 (1)
#   22 source address (16)  38 destination address (16)
#   54 type 136 (1)  55 code 0 (1)  56 checksum (2)  58 flags R|S|O + reserved (4)  62 target address (16)
#   78 option type 2 (1)  79 option length 1 (1, in units of 8 bytes)  80 link-layer address (6)


def checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071): ones'-complement of the ones'-complement sum of 16-bit words."""
    if len(data) % 2:
        data += b"\x00"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _icmp6_checksum(src: bytes, dst: bytes, icmp: bytes) -> int:
    # RFC 8200 §8.1 pseudo-header: source, destination, upper-layer length (32 bits), 3 zero bytes, next header.
    return checksum(src + dst + struct.pack("!I3xB", len(icmp), 58) + icmp)


def _na(eth_dst: bytes, mac: bytes, src: bytes, dst: bytes, flags: int, target: bytes) -> bytes:
    body = struct.pack("!BBHB3x16sBB6s", Icmp6Type.NEIGHBOR_ADVERTISEMENT, 0, 0, flags, target,
                       NdpOption.TARGET_LL_ADDRESS, 1, mac)
    csum = _icmp6_checksum(src, dst, body)
    body = body[:2] + csum.to_bytes(2, "big") + body[4:]
    ip6 = struct.pack("!IHBB16s16s", 0x60000000, len(body), 58, NDP_HOP_LIMIT, src, dst)
    return eth_dst + mac + EtherType.IPV6.to_bytes(2, "big") + ip6 + body


def build_ndp_advert(mac: bytes, ip6: int, src: int | None = None) -> bytes:
    """An unsolicited Neighbor Advertisement for ``ip6`` (RFC 4861 §7.2.6): to ff02::1 (33:33:00:00:00:01),
    S=0 O=1, target link-layer option = ``mac``, from ``src`` or the MAC's link-local address."""
    m = _mac(mac)
    s = _ip6(link_local(m) if src is None else src, "src")
    return _na(ETH_ALL_NODES, m, s, IPV6_ALL_NODES.to_bytes(16, "big"), NA_FLAG_OVERRIDE, _ip6(ip6))


def build_ndp_reply(mac: bytes, ip6: int, dst_mac: bytes, dst_ip6: int, src: int | None = None) -> bytes:
    """The solicited Neighbor Advertisement answering a solicitation for ``ip6`` (metallb-behaviour §5.5):
    unicast to (``dst_mac``, ``dst_ip6``), S=1 O=0, target link-layer option = ``mac``."""
    m = _mac(mac)
    s = _ip6(link_local(m) if src is None else src, "src")
    return _na(_mac(dst_mac, "dst_mac"), m, s, _ip6(dst_ip6, "dst_ip6"), NA_FLAG_SOLICITED, _ip6(ip6))


def write_ndp_burst(out: bytearray, mac: bytes, ips: Sequence[int], offset: int = 0, src: int | None = None) -> int:
    """Write one unsolicited NA per address (86 bytes each) into ``out`` from ``offset``; returns the count."""
    m = _mac(mac)
    frames = [build_ndp_advert(m, ip, src) for ip in ips]
    if offset < 0 or offset + NDP_NA_FRAME_LEN * len(frames) > len(out):
        raise ValueError(f"buffer of {len(out)} bytes too small for {len(frames)} NA frames at {offset}")
    for k, f in enumerate(frames):
        out[offset + k * NDP_NA_FRAME_LEN:offset + (k + 1) * NDP_NA_FRAME_LEN] = f
    return len(frames)


# --- conflict probes ----------------------------------------------------------------------------------------------
#
# A speaker asks whether anybody else uses an address it owns without claiming the address itself, so that the
# question never changes a neighbour's cache: RFC 5227 §2.1.1 for IPv4 and the DAD form of RFC 4862 §5.4.2 for IPv6.


def build_arp_probe(mac: bytes, ip4: int) -> bytes:
    """An ARP probe (RFC 5227 §2.1.1) for ``ip4``: broadcast request, sender = (``mac``, 0.0.0.0), target MAC all
    zero, target IP = ``ip4``; 42 bytes. A host using ``ip4`` answers with a reply whose sender IP is ``ip4``."""
    m = _mac(mac)
    return _arp(ETH_BROADCAST, m, ArpOp.REQUEST, m, 0, _ZERO_MAC, _ip4(ip4))


def solicited_node(ip6: int) -> int:
    """The solicited-node multicast address ff02::1:ff00:0/104 + the low 24 bits of ``ip6`` (RFC 4291 §2.7.1)."""
    return (0xFF02 << 112) | (1 << 32) | (0xFF << 24) | (int.from_bytes(_ip6(ip6)[13:], "big"))


def build_ns_probe(mac: bytes, ip6: int) -> bytes:
    """A duplicate-address-detection Neighbor Solicitation (RFC 4862 §5.4.2) for ``ip6``: from the unspecified
    address ::, to the target's solicited-node group (Ethernet 33:33 + its low 32 bits), hop limit 255, no
    source link-layer option; 78 bytes. A host using ``ip6`` answers with an advertisement to ff02::1."""
    m = _mac(mac)
    target = _ip6(ip6)
    group = solicited_node(ip6).to_bytes(16, "big")
    src = bytes(16)
    body = struct.pack("!BBH4x16s", Icmp6Type.NEIGHBOR_SOLICITATION, 0, 0, target)
    csum = _icmp6_checksum(src, group, body)
    body = body[:2] + csum.to_bytes(2, "big") + body[4:]
    ip6h = struct.pack("!IHBB16s16s", 0x60000000, len(body), 58, NDP_HOP_LIMIT, src, group)
    return b"\x33\x33" + group[12:] + m + EtherType.IPV6.to_bytes(2, "big") + ip6h + body


# --- parsers for the responder ---------------------------------------------------------------------------------------


def parse_arp_request(frame: bytes, iface_mac: bytes) -> ArpRequest | DropReason:
    """Read an incoming frame as an ARP request for the responder (metallb-behaviour §5.4), or say why not.

    Checks, in order: length, EtherType, the IPv4-over-Ethernet header (RFC 826), op = request, Ethernet
    destination broadcast or ``iface_mac``. Whether the target is announced here is the responder's question.
    """
    m = _mac(iface_mac, "iface_mac")
    if len(frame) < 14:
        return DropReason.TRUNCATED
    if frame[12:14] != b"\x08\x06":
        return DropReason.NOT_ARP
    if len(frame) < ARP_FRAME_LEN:
        return DropReason.TRUNCATED
    htype, ptype, hlen, plen, op = struct.unpack_from("!HHBBH", frame, 14)
    if (htype, ptype, hlen, plen) != (1, 0x0800, 6, 4):
        return DropReason.BAD_ARP_HEADER
    if op != ArpOp.REQUEST:
        return DropReason.NOT_ARP_REQUEST
    dst = bytes(frame[0:6])
    if dst != ETH_BROADCAST and dst != m:
        return DropReason.NOT_FOR_US
    sha, spa, _tha, tpa = struct.unpack_from("!6sI6sI", frame, 22)
    return ArpRequest(eth_src=bytes(frame[6:12]), sender_mac=sha, sender_ip=spa, target_ip=tpa)


def parse_neighbor_solicitation(frame: bytes, iface_mac: bytes) -> NeighborSolicitation | DropReason:
    """Read an incoming frame as a Neighbor Solicitation for the responder (metallb-behaviour §5.5), or say why not.

    Applies RFC 4861 §7.1.1 validity checks (hop limit 255, code 0, checksum, length ≥ 24, non-multicast target,
    options of non-zero length inside the packet) and MetalLB's rule: only solicitations carrying a source
    link-layer address option are answered (this also skips DAD probes from ::). The Ethernet destination must be
    ``iface_mac`` or IPv6 multicast (33:33:…).
    """
    m = _mac(iface_mac, "iface_mac")
    if len(frame) < 14:
        return DropReason.TRUNCATED
    if frame[12:14] != b"\x86\xdd":
        return DropReason.NOT_IPV6
    if len(frame) < 14 + 40 + 24:
        return DropReason.TRUNCATED
    if frame[14] >> 4 != 6:
        return DropReason.NOT_IPV6
    plen, nh, hop = struct.unpack_from("!HBB", frame, 18)
    if nh != 58:
        return DropReason.NOT_ICMPV6
    if plen < 24 or 54 + plen > len(frame):
        return DropReason.TRUNCATED
    icmp = bytes(frame[54:54 + plen])
    if icmp[0] != Icmp6Type.NEIGHBOR_SOLICITATION:
        return DropReason.NOT_NEIGHBOR_SOLICITATION
    if hop != NDP_HOP_LIMIT:
        return DropReason.BAD_HOP_LIMIT
    if icmp[1] != 0:
        return DropReason.BAD_ICMP_CODE
    dst = bytes(frame[0:6])
    if dst != m and dst[:2] != b"\x33\x33":
        return DropReason.NOT_FOR_US
    src_ip = bytes(frame[22:38])
    dst_ip = bytes(frame[38:54])
    if _icmp6_checksum(src_ip, dst_ip, icmp) != 0:
        return DropReason.BAD_CHECKSUM
    target = icmp[8:24]
    if target[0] == 0xFF:
        return DropReason.MULTICAST_TARGET
    slla = None
    pos = 24
    while pos < plen:
        if pos + 2 > plen:
            return DropReason.BAD_OPTION
        kind, units = icmp[pos], icmp[pos + 1]
        if units == 0 or pos + 8 * units > plen:
            return DropReason.BAD_OPTION
        if kind == NdpOption.SOURCE_LL_ADDRESS and units == 1 and slla is None:
            slla = icmp[pos + 2:pos + 8]
        pos += 8 * units
    if slla is None:
        return DropReason.NO_SOURCE_LL_ADDRESS
    return NeighborSolicitation(
        eth_src=bytes(frame[6:12]),
        src_ip=int.from_bytes(src_ip, "big"),
        dst_ip=int.from_bytes(dst_ip, "big"),
        target=int.from_bytes(target, "big"),
        source_lla=slla,
    )


# --- a lossless decoder for people and tests ---------------------------------------------------------------------------


def decode_frame(frame: bytes) -> ArpFrame | NdpFrame:
    """Every field of an ARP or ICMPv6 NS/NA frame (``streamlb frames decode``); ``FrameError`` otherwise.

    Ethernet padding after the ARP payload or the IPv6 payload is ignored.
    """
    frame = bytes(frame)
    if len(frame) < 14:
        raise FrameError(f"{len(frame)} bytes: shorter than an Ethernet header")
    etype = int.from_bytes(frame[12:14], "big")
    if etype == EtherType.ARP:
        if len(frame) < ARP_FRAME_LEN:
            raise FrameError(f"ARP frame of {len(frame)} bytes, need 42")
        htype, ptype, hlen, plen, op, sha, spa, tha, tpa = struct.unpack_from("!HHBBH6sI6sI", frame, 14)
        if (hlen, plen) != (6, 4):
            raise FrameError(f"ARP with hardware/protocol lengths {hlen}/{plen}: only Ethernet/IPv4 is read")
        return ArpFrame(eth_dst=frame[0:6], eth_src=frame[6:12], op=op, sender_mac=sha, sender_ip=spa,
                        target_mac=tha, target_ip=tpa, htype=htype, ptype=ptype)
    if etype == EtherType.IPV6:
        if len(frame) < 54:
            raise FrameError("IPv6 frame shorter than its header")
        vtf, plen, nh, hop = struct.unpack_from("!IHBB", frame, 14)
        if vtf >> 28 != 6:
            raise FrameError(f"IP version {vtf >> 28} in an IPv6 frame")
        if nh != 58:
            raise FrameError(f"next header {nh}: only ICMPv6 (58) is read")
        if 54 + plen > len(frame) or plen < 24:
            raise FrameError(f"ICMPv6 payload length {plen} does not fit the {len(frame)}-byte frame")
        src, dst = frame[22:38], frame[38:54]
        icmp = frame[54:54 + plen]
        if icmp[0] not in (Icmp6Type.NEIGHBOR_SOLICITATION, Icmp6Type.NEIGHBOR_ADVERTISEMENT):
            raise FrameError(f"ICMPv6 type {icmp[0]}: only NS (135) and NA (136) are read")
        options = []
        pos = 24
        while pos < plen:
            if pos + 2 > plen or icmp[pos + 1] == 0 or pos + 8 * icmp[pos + 1] > plen:
                raise FrameError(f"malformed NDP option at ICMPv6 offset {pos}")
            n = 8 * icmp[pos + 1]
            options.append(NdpOptionValue(kind=icmp[pos], value=icmp[pos + 2:pos + n]))
            pos += n
        return NdpFrame(
            eth_dst=frame[0:6], eth_src=frame[6:12], src_ip=int.from_bytes(src, "big"),
            dst_ip=int.from_bytes(dst, "big"), hop_limit=hop, icmp_type=icmp[0], code=icmp[1],
            checksum=int.from_bytes(icmp[2:4], "big"), checksum_ok=_icmp6_checksum(src, dst, icmp) == 0,
            flags=icmp[4], target=int.from_bytes(icmp[8:24], "big"), options=tuple(options),
            traffic_class=(vtf >> 20) & 0xFF, flow_label=vtf & 0xFFFFF,
        )
    raise FrameError(f"EtherType 0x{etype:04x}: only ARP (0x0806) and IPv6 (0x86dd) are read")
